"""Ranking trials by their candidate sets: non-dominated sorting, hypervolume tie-break.

A trial's standing is its whole candidate set so far: every (clean_acc, asr) point its
epochs have produced, not one summary number, since each epoch is a model a practitioner
could pick. All the trials' points are pooled and sorted into non-dominated layers (layer 0
is the pool's Pareto frontier, layer 1 the frontier of what is left, ...); a trial's layer
is the best layer any of its points reaches.

Inside a layer, trials are ordered by their exclusive hypervolume contribution: how much of
the (accuracy, ASR) square the pool of the trials of that layer and worse would lose
without this trial's points. It is chosen over crowding distance because it measures the
quantity the search is judged by (the frontier's hypervolume), needs no normalisation of
the two metrics (crowding distance sums per-metric gaps, so percent points of accuracy and
ASR trade one for one only by accident), gives a finite value to the frontier's two ends
(crowding distance makes both infinite, so it cannot choose between them), and is exact and
cheap in two dimensions. A trial that spreads the frontier into an empty region contributes
a large area; one whose points duplicate another's contributes nothing. Remaining ties go
to the trial's own hypervolume, then to the order the trials were given in (earlier first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from results.hypervolume import hypervolume
from results.pareto import pareto_indices

Point = tuple[float, float]  # (clean_acc, asr)
# The layer of a trial without a single finite point: behind every real layer.
NO_LAYER = math.inf


class TrialStanding(NamedTuple):
    """One trial's place in a ranking, best first."""

    trial: str
    layer: float  # 0 = one of its points is on the pool's frontier
    contribution: float  # exclusive hypervolume share within its layer's pool
    own_hypervolume: float  # hypervolume of its points alone


def nondominated_layers(points: Sequence[Point]) -> np.ndarray:
    """The non-dominated layer of each point (0 = the frontier); NaN points get `NO_LAYER`.

    Peels one frontier at a time with `pareto_indices`, so exact duplicates share a layer.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    layers = np.full(len(pts), NO_LAYER)
    left = np.flatnonzero(np.isfinite(pts).all(axis=1))
    layer = 0
    while left.size:
        front = left[pareto_indices(pts[left, 0], pts[left, 1])]
        layers[front] = layer
        left = np.setdiff1d(left, front, assume_unique=True)
        layer += 1
    return layers


def rank_trials(sets: Mapping[str, Sequence[Point]]) -> list[TrialStanding]:
    """Every trial of `sets` (trial -> its candidate points), best first (see module doc)."""
    names = list(sets)
    owner = [i for i, name in enumerate(names) for _ in sets[name]]
    pool: list[Point] = [(float(p[0]), float(p[1])) for name in names for p in sets[name]]
    layers = nondominated_layers(pool)
    trial_layer = [NO_LAYER] * len(names)
    for i, layer in zip(owner, layers.tolist(), strict=True):
        trial_layer[i] = min(trial_layer[i], layer)
    standings = []
    pool_hv: dict[float, float] = {}
    for i, name in enumerate(names):
        layer = trial_layer[i]
        own = hypervolume(sets[name]) if sets[name] else 0.0
        if layer == NO_LAYER:
            standings.append(TrialStanding(name, layer, 0.0, own))
            continue
        # The pool of the trials in this layer or worse: better layers' trials are out of
        # the way, so each trial of this layer has a point on that pool's frontier.
        rest = [pool[j] for j, o in enumerate(owner) if o != i and trial_layer[o] >= layer]
        if layer not in pool_hv:
            pool_hv[layer] = hypervolume(
                [pool[j] for j, o in enumerate(owner) if trial_layer[o] >= layer]
            )
        standings.append(TrialStanding(name, layer, pool_hv[layer] - hypervolume(rest), own))
    order = sorted(
        range(len(names)),
        key=lambda i: (
            standings[i].layer,
            -standings[i].contribution,
            -standings[i].own_hypervolume,
            i,
        ),
    )
    return [standings[i] for i in order]
