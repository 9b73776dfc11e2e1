"""Hypervolume of a frontier: the share of the (accuracy, ASR) square it dominates.

The reference point is the worst model (accuracy 0%, ASR 100%) and the ideal one is
(100%, 0%); the hypervolume is the area of the region between the reference point and the
frontier, divided by the square's area (100 x 100), so it lies in [0, 1]: one number that
lets sweeps and ablations be compared (100K vs 200K cleaning pairs, 20 vs 100 epochs, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from results.candidates import DEFAULT_GROUP, Group
from results.pareto import pareto_fronts, pareto_indices

REFERENCE = (0.0, 100.0)  # (clean_acc, asr) of the worst model
IDEAL = (100.0, 0.0)


def hypervolume(
    points: Iterable[tuple[float, float]],
    reference: tuple[float, float] = REFERENCE,
    ideal: tuple[float, float] = IDEAL,
) -> float:
    """Share of the reference-ideal box dominated by `points` ((clean_acc, asr) pairs).

    Points need not be a frontier (dominated ones add nothing); points at or beyond the
    reference point in either metric add nothing. O(n log n).
    """
    pts = np.asarray(list(points), dtype=float).reshape(-1, 2)
    ref_acc, ref_asr = reference
    box = (ideal[0] - ref_acc) * (ref_asr - ideal[1])
    if box <= 0:
        raise ValueError(f"ideal {ideal} must be better than reference {reference} in both")
    inside = (pts[:, 0] > ref_acc) & (pts[:, 1] < ref_asr)
    pts = pts[inside]
    if pts.size == 0:
        return 0.0
    front = pts[pareto_indices(pts[:, 0], pts[:, 1])]
    # On a frontier sorted by ascending ASR accuracy rises too; the strip of accuracies
    # (a_{i-1}, a_i] is dominated from ASR s_i up to the reference ASR.
    acc, asr = front[:, 0], front[:, 1]
    heights = np.diff(np.r_[ref_acc, acc])
    area = float(np.sum(heights * (ref_asr - asr)))
    return area / box


class GroupHypervolume(NamedTuple):
    group: Group
    hypervolume: float
    n_points: int


def hypervolumes(
    data: Any, by: Sequence[str] = DEFAULT_GROUP, stage: str | None = "clean"
) -> list[GroupHypervolume]:
    """The hypervolume of each group's frontier."""
    return [
        GroupHypervolume(f.group, hypervolume(f.points), len(f.points))
        for f in pareto_fronts(data, by, stage)
    ]
