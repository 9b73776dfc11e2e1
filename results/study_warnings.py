"""When a study cannot answer its question: warnings for the report and `sweeper report`.

A backdoor-cleaning figure means something only if the start model carries a backdoor, is
better than chance, the eval set resolves the differences shown, and the grid reaches past
its own edges. Each check here reads the cleaning stage's epoch rows of one
(sweep, objective) group and says, in one sentence with its numbers, why a reader should
not trust a figure:

- `no_backdoor`: the start model's ASR is below `min_start_asr` (default 50%): "cleaning"
  it shows nothing.
- `chance`: the start model's accuracy is within two binomial standard errors of chance
  (100 / n_classes) on its `n_eval` images.
- `asr_rises`: a cleaning trial ends with a higher ASR than it started with, by more than
  two standard errors of the difference.
- `small_eval`: the headline difference (best accuracy at ASR <= threshold minus the
  start's) is within two standard errors, or the ASR threshold amounts to fewer than
  `min_threshold_images` images.
- `edge_of_grid`: every successful candidate comes from one extreme value (the smallest or
  the largest) of a swept parameter with three or more values.
- `asr_floor`: the start model or the best candidate sends at least half the threshold of
  the *untriggered* non-target images to the target (`asr_untriggered`): ASR <= threshold
  is then decided as much by the model's bias toward the target as by the backdoor.

Standard errors are binomial: sqrt(p (1 - p) / n) for a proportion p measured on n images.
The start model of a shrink-and-perturb study is the unperturbed one the screen evaluated
(`results.best.screen_origins`), not the perturbed epoch 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from results.best import (
    BASELINE_METHODS,
    DEFAULT_THRESHOLD,
    best_of_rows,
    is_success,
    screen_origins,
)

MIN_START_ASR = 50.0
MIN_THRESHOLD_IMAGES = 10

Row = Mapping[str, Any]


@dataclass(frozen=True)
class StudyWarning:
    kind: str
    sweep_id: str
    objective: str | None
    message: str

    def line(self) -> str:
        who = f"{self.sweep_id} {self.objective or ''}".strip()
        return f"warning [{self.kind}] {who}: {self.message}"


def binomial_se(percent: float, n: int) -> float:
    """Standard error, in percentage points, of a proportion `percent` measured on n items."""
    p = min(max(percent / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(p * (1.0 - p) / n) if n > 0 else math.inf


def study_warnings(
    data: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_start_asr: float = MIN_START_ASR,
    min_threshold_images: int = MIN_THRESHOLD_IMAGES,
) -> list[StudyWarning]:
    """Every warning the cleaning rows of `data` deserve, group by group (`data`: epoch rows
    as a pyarrow Table, a pandas DataFrame or a list of dicts)."""
    table = _table(data)
    rows = table.to_pylist()
    origins = screen_origins(table) if rows else {}
    groups: dict[tuple[str, Any], list[Row]] = defaultdict(list)
    for r in rows:
        # A baseline (bn_only) is no cleaning: its ASR may rise without a warning.
        if r.get("stage") == "clean" and r.get("method") not in BASELINE_METHODS:
            groups[(r["sweep_id"], r.get("objective"))].append(r)
    out: list[StudyWarning] = []
    for (sweep, objective), group in sorted(groups.items(), key=lambda kv: str(kv[0])):
        start = _start(group, origins.get((sweep, objective)))
        if start is None:
            continue
        best = best_of_rows(group, threshold)
        found = [
            *_start_checks(start, min_start_asr),
            *_rising(group),
            *_small_eval(start, best, threshold, min_threshold_images),
            *_edge_of_grid(group, threshold),
            *_floor(start, best, threshold),
        ]
        out += [StudyWarning(kind, sweep, objective, msg) for kind, msg in found]
    return out


def _table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        return pa.Table.from_pandas(data, preserve_index=False)
    rows = list(data)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows])


def _start(group: list[Row], origin: Any) -> dict[str, Any] | None:
    zeros = [r for r in group if int(r["epoch"]) == 0]
    if not zeros:
        return None
    ref = dict(zeros[0])
    if origin is not None:
        ref.update(clean_acc=origin.clean_acc, asr=origin.asr)
    return ref


def _start_checks(start: Row, min_start_asr: float) -> list[tuple[str, str]]:
    out = []
    acc, asr = float(start["clean_acc"]), float(start["asr"])
    if asr < min_start_asr:
        out.append(
            (
                "no_backdoor",
                f"the start model's ASR is {asr:.1f}% (< {min_start_asr:g}%): it carries no "
                "backdoor to clean, so a low ASR after cleaning shows nothing",
            )
        )
    n, k = start.get("n_eval"), start.get("n_classes")
    if n and k:
        chance = 100.0 / int(k)
        if acc <= chance + 2 * binomial_se(chance, int(n)):
            out.append(
                (
                    "chance",
                    f"the start model's accuracy {acc:.1f}% is within two standard errors of "
                    f"chance ({chance:.1f}% for {k} classes, {n} eval images)",
                )
            )
    return out


def _rising(group: list[Row]) -> list[tuple[str, str]]:
    by_trial: dict[str, list[Row]] = defaultdict(list)
    for r in group:
        by_trial[r["trial_id"]].append(r)
    risen = []
    for trial, trows in by_trial.items():
        trows.sort(key=lambda r: int(r["epoch"]))
        first, last = trows[0], trows[-1]
        if int(first["epoch"]) != 0 or int(last["epoch"]) == 0:
            continue
        rise = float(last["asr"]) - float(first["asr"])
        n = last.get("n_asr_eval") or 0
        noise = math.hypot(binomial_se(first["asr"], n), binomial_se(last["asr"], n))
        if rise > 0 and rise > 2 * noise:
            risen.append((rise, trial))
    if not risen:
        return []
    worst = max(risen)
    return [
        (
            "asr_rises",
            f"cleaning raised the ASR in {len(risen)} of {len(by_trial)} trial(s), by up to "
            f"{worst[0]:.1f} points ({worst[1]})",
        )
    ]


def _small_eval(
    start: Row, best: Row | None, threshold: float, min_images: int
) -> list[tuple[str, str]]:
    out = []
    n_asr = start.get("n_asr_eval")
    if n_asr and threshold / 100.0 * int(n_asr) < min_images:
        allowed = math.floor(threshold / 100.0 * int(n_asr))
        out.append(
            (
                "small_eval",
                f"ASR <= {threshold:g}% allows only {allowed} of {n_asr} non-target eval images "
                f"to flip: fewer than {min_images}, so success hangs on a handful of images",
            )
        )
    n = start.get("n_eval")
    if best is not None and n:
        diff = float(best["clean_acc"]) - float(start["clean_acc"])
        noise = math.hypot(
            binomial_se(float(start["clean_acc"]), int(n)),
            binomial_se(float(best["clean_acc"]), int(best.get("n_eval") or n)),
        )
        if abs(diff) <= 2 * noise:
            out.append(
                (
                    "small_eval",
                    f"the best accuracy at ASR <= {threshold:g}% differs from the start's by "
                    f"{diff:+.1f} points, within two standard errors ({2 * noise:.1f}) of "
                    f"{n} eval images",
                )
            )
    return out


def _edge_of_grid(group: list[Row], threshold: float) -> list[tuple[str, str]]:
    out = []
    params = sorted({k for r in group for k in r if k.startswith("p_")})
    winners = [r for r in group if is_success(r, threshold)]
    if not winners:
        return out
    for p in params:
        values = sorted({r[p] for r in group if _number(r.get(p))})
        if len(values) < 3:
            continue
        won = {r[p] for r in winners if _number(r.get(p))}
        for edge, name in ((values[0], "smallest"), (values[-1], "largest")):
            if won == {edge}:
                out.append(
                    (
                        "edge_of_grid",
                        f"every candidate at ASR <= {threshold:g}% comes from {p[2:]}={edge:g}, "
                        f"the grid's {name} value: the grid may end before the regime where "
                        "cleaning works",
                    )
                )
    return out


def _floor(start: Row, best: Row | None, threshold: float) -> list[tuple[str, str]]:
    for who, row in (("the start model", start), ("the best candidate", best)):
        floor = None if row is None else row.get("asr_untriggered")
        if isinstance(floor, int | float) and _number(floor) and floor >= threshold / 2:
            return [
                (
                    "asr_floor",
                    f"{who} sends {floor:.1f}% of the untriggered non-target eval images to "
                    f"the target: ASR <= {threshold:g}% is within reach of its bias alone, "
                    "trigger or not",
                )
            ]
    return []


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
