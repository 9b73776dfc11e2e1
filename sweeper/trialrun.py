"""What a Ray worker does with one trial payload (no Ray here: `emit` is handed in).

The payload is a planned trial (`sweeper.plan.TrialPlan` as a dict) whose config the driver
has completed (data paths, starting checkpoint, checkpoint directory).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from results.best import DEFAULT_THRESHOLD
from trainers.reporter import EpochRecord

Emit = Callable[[str, dict[str, Any]], None]
# What Optuna optimises per trial: every epoch is a candidate model, so a trial's point is
# its best epoch by the paper's success rule (highest accuracy with ASR <= 5%), or, when no
# epoch gets there, the epoch with the lowest ASR.
SUCCESS_ASR = DEFAULT_THRESHOLD


class _Collect:
    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.records: list[EpochRecord] = []

    def report(self, record: EpochRecord) -> None:
        self.records.append(record)
        # Every result carries the trial's best point so far: Optuna reads it at the end,
        # and Tune insists that each result holds the searcher's metrics.
        acc, asr = best_point(self.records)
        self.emit("epoch", {**record.to_dict(), "objective_acc": acc, "objective_asr": asr})


def best_point(records: list[EpochRecord]) -> tuple[float, float]:
    ok = [r for r in records if r.asr <= SUCCESS_ASR]
    if ok:
        r = max(ok, key=lambda r: r.clean_acc)
    else:
        r = min(records, key=lambda r: (r.asr, -r.clean_acc))
    return r.clean_acc, r.asr


def run_payload(payload: dict[str, Any], emit: Emit) -> None:
    from sweeper.plan import apply_params
    from trainers.entries import ENTRYPOINTS

    config = payload["config"]
    if payload.get("params") and payload.get("search"):
        config = apply_params(config, payload["params"])
    reporter = _Collect(emit)
    outcome = ENTRYPOINTS[payload["entry"]](config, reporter)
    acc, asr = best_point(reporter.records) if reporter.records else (0.0, 100.0)
    emit(
        "outcome",
        {
            "status": outcome.status,
            "reason": outcome.reason,
            "final_checkpoint": outcome.final_checkpoint,
            "epochs_done": outcome.epochs_done,
            "skipped": outcome.skipped,
            "objective_acc": acc,
            "objective_asr": asr,
        },
    )
