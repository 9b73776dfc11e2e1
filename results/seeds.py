"""Repeats of one study across seeds: intervals for the headline figure, attainment surfaces.

A repeat is a sweep of the same search space with another seed (`sweeper launch ... seed=S`
or `--seeds`); the sweeps passed together are the repeats. Per objective:

- `seed_intervals`: each sweep's start model, best accuracy at ASR <= threshold and its
  relative change (`results.best`, the one success rule), then their mean with a two-sided
  95% Student-t interval across sweeps: mean +- t(0.975, n-1) * sd / sqrt(n), sd with n-1.
  A sweep without a candidate contributes no best figure (it is counted in `n_none`).
- `attainment_surfaces`: the empirical attainment function (moocore.eaf, exact in 2-D) of
  the sweeps' cleaning candidates (every cleaning epoch >= 1 of every trial, as the
  frontiers take them) over (accuracy up, ASR down). The k/n surface is what at least k of
  the n sweeps reached: 1/n the best case, the median (50%), n/n the worst case.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np

from results.best import best_clean
from results.candidates import candidates

# Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30 (any statistics table);
# beyond 30 the normal 1.96 is within 2%.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class SeedSummary:
    objective: str | None
    sweeps: tuple[str, ...]
    start_acc: Interval
    start_asr: Interval
    best_acc: Interval | None
    relative_change: Interval | None
    n_none: int  # sweeps with no candidate at ASR <= threshold


def t_quantile(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96


def interval(values: list[float]) -> Interval:
    """Mean with its 95% t-interval; a single value has an interval of itself."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return Interval(mean, mean, mean, n)
    half = t_quantile(n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def seed_intervals(data: Any, threshold: float = 5.0) -> list[SeedSummary]:
    """Per objective, across the sweeps in `data` (each sweep one seed)."""
    per = best_clean(data, threshold, ("sweep_id", "objective"))
    by_objective: dict[Any, list[Any]] = defaultdict(list)
    for b in per:
        by_objective[b.group.as_dict()["objective"]].append(b)
    out = []
    for objective, items in sorted(by_objective.items(), key=lambda kv: str(kv[0])):
        starts = [b.origin or b.start for b in items]
        won = [b for b in items if b.best is not None]
        out.append(
            SeedSummary(
                objective=objective,
                sweeps=tuple(str(b.group.as_dict()["sweep_id"]) for b in items),
                start_acc=interval([s.clean_acc for s in starts]),
                start_asr=interval([s.asr for s in starts]),
                best_acc=interval([b.best.clean_acc for b in won]) if won else None,
                relative_change=(
                    interval([b.relative_change for b in won if b.relative_change is not None])
                    if won
                    else None
                ),
                n_none=len(items) - len(won),
            )
        )  # fmt: skip
    return out


def attainment_surfaces(
    data: Any, percentiles: tuple[float, ...] | None = None
) -> dict[Any, dict[float, list[tuple[float, float]]]]:
    """objective -> percentile -> the surface's corner points as (accuracy, ASR), sorted by
    accuracy. By default every k/n level of the n sweeps an objective has."""
    cands = candidates(data, ("objective",))
    table = cands.table
    rows = table.select(["sweep_id", "objective", "epoch", "clean_acc", "asr"]).to_pylist()
    out: dict[Any, dict[float, list[tuple[float, float]]]] = {}
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if int(r["epoch"]) >= 1 and r["clean_acc"] is not None and r["asr"] is not None:
            groups[r["objective"]].append(r)
    for objective, grows in groups.items():
        sweeps = sorted({r["sweep_id"] for r in grows})
        code = {s: i + 1 for i, s in enumerate(sweeps)}
        # moocore minimises every objective: accuracy enters negated.
        points = np.array([[-r["clean_acc"], r["asr"]] for r in grows], dtype=float)
        sets = np.array([code[r["sweep_id"]] for r in grows])
        levels = percentiles or tuple(100.0 * k / len(sweeps) for k in range(1, len(sweeps) + 1))
        eaf = moocore.eaf(points, sets, percentiles=list(levels))
        surf: dict[float, list[tuple[float, float]]] = {}
        for x, y, level in eaf:
            surf.setdefault(float(level), []).append((-float(x), float(y)))
        out[objective] = {k: sorted(v) for k, v in sorted(surf.items())}
    return out
