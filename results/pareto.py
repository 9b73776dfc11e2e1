"""Pareto frontier of candidate models: accuracy up, attack success rate down.

A candidate is on the frontier when no other candidate is at least as accurate and at most
as attacked, and strictly better in one of the two. Exact duplicates (the same accuracy and
ASR from two epochs or trials) do not dominate each other, so every one of them is a
frontier member: `pareto_indices` and `Frontier.members` keep them all, since each is a
distinct model a practitioner could pick. `Frontier.points` keeps one point per distinct
(accuracy, ASR) pair, which is what plots, hypervolumes and the JSON summary use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from results.candidates import DEFAULT_GROUP, Candidates, Group, candidates


def pareto_indices(clean_acc: Any, asr: Any) -> np.ndarray:
    """Indices of the non-dominated points, sorted by ASR then accuracy (both ascending).

    O(n log n): one sort by accuracy (descending) and ASR (ascending), then one pass.
    Points with a NaN in either metric are never on the frontier.
    """
    acc = np.asarray(clean_acc, dtype=float)
    att = np.asarray(asr, dtype=float)
    if acc.shape != att.shape or acc.ndim != 1:
        raise ValueError(
            f"clean_acc and asr must be 1-d and equal in length: {acc.shape}, {att.shape}"
        )
    valid = np.flatnonzero(np.isfinite(acc) & np.isfinite(att))
    if valid.size == 0:
        return np.zeros(0, dtype=np.int64)
    a, s = acc[valid], att[valid]
    order = np.lexsort((s, -a))
    a, s = a[order], s[order]
    # Runs of equal accuracy; inside a run the first row has the run's lowest ASR.
    starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
    run = np.cumsum(np.r_[True, a[1:] != a[:-1]]) - 1
    run_min = s[starts]
    # Lowest ASR among strictly more accurate points (runs before this one).
    before = np.r_[np.inf, np.minimum.accumulate(run_min)[:-1]]
    keep = (s == run_min[run]) & (s < before[run])
    kept = valid[order[keep]]
    return kept[np.lexsort((acc[kept], att[kept]))]


@dataclass(frozen=True)
class FrontierMember:
    """One candidate model on a frontier."""

    sweep_id: str
    trial_id: str
    epoch: int
    clean_acc: float
    asr: float


@dataclass(frozen=True)
class Frontier:
    """A group's frontier: distinct points by ascending ASR, and every member row."""

    group: Group
    points: tuple[tuple[float, float], ...]
    members: tuple[FrontierMember, ...]
    n_candidates: int


def unique_points(clean_acc: np.ndarray, asr: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Distinct (clean_acc, asr) pairs, by ascending ASR; input already in that order."""
    out: list[tuple[float, float]] = []
    for a, s in zip(clean_acc.tolist(), asr.tolist(), strict=True):
        if not out or out[-1] != (a, s):
            out.append((a, s))
    return tuple(out)


def group_frontier(cands: Candidates, g: int) -> Frontier:
    """The frontier of group `g` of `cands`."""
    rows = cands.rows(g)
    rows = rows[cands.is_candidate[rows]]
    idx = rows[pareto_indices(cands.clean_acc[rows], cands.asr[rows])]
    sweep = cands.table["sweep_id"].take(idx).to_pylist()
    trial = cands.table["trial_id"].take(idx).to_pylist()
    acc, asr = cands.clean_acc[idx], cands.asr[idx]
    members = tuple(
        FrontierMember(sw, tr, int(ep), float(a), float(s))
        for sw, tr, ep, a, s in zip(sweep, trial, cands.epoch[idx], acc, asr, strict=True)
    )
    return Frontier(cands.groups[g], unique_points(acc, asr), members, int(rows.size))


def pareto_fronts(
    data: Any, by: Sequence[str] = DEFAULT_GROUP, stage: str | None = "clean"
) -> list[Frontier]:
    """The frontier of every group: every epoch >= 1 of every trial is a candidate."""
    cands = candidates(data, by, stage)
    return [group_frontier(cands, g) for g in range(len(cands.groups))]
