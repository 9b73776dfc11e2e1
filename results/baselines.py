"""Baseline points beside the cleaning trials, read back from the store.

`bn_only` (one trial per start model, `trainers.bn_only`): the start model with BatchNorm's
statistics re-estimated on the cleaning set and no weight update. Its epoch 0 is the start,
its epoch 1 the baseline: a cleaning result is worth reporting only where it beats this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from results.candidates import as_table


@dataclass(frozen=True)
class BaselinePoint:
    sweep_id: str
    objective: str | None
    trial_id: str
    method: str
    start_acc: float
    start_asr: float
    clean_acc: float
    asr: float


def baseline_points(data: Any, method: str = "bn_only") -> list[BaselinePoint]:
    """One point per baseline trial of `method` that reported both its epochs."""
    table = as_table(data)
    if table.num_rows == 0 or "method" not in table.column_names:
        return []
    cols = ["sweep_id", "trial_id", "method", "objective", "stage", "epoch", "clean_acc", "asr"]
    rows = table.select([c for c in cols if c in table.column_names]).to_pylist()
    by_trial: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["method"] == method and r.get("stage") == "clean":
            by_trial.setdefault((r["sweep_id"], r["trial_id"]), {})[int(r["epoch"])] = r
    out = []
    for (sweep, trial), epochs in sorted(by_trial.items()):
        if 0 in epochs and 1 in epochs:
            start, after = epochs[0], epochs[1]
            out.append(
                BaselinePoint(
                    sweep, after.get("objective"), trial, method,
                    float(start["clean_acc"]), float(start["asr"]),
                    float(after["clean_acc"]), float(after["asr"]),
                )
            )  # fmt: skip
    return out
