"""Pareto frontier (accuracy up, ASR down): equal to a brute-force frontier, ties included."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from results.pareto import pareto_fronts, pareto_indices


def brute_force(acc: list[float], asr: list[float]) -> set[int]:
    """i is on the frontier iff no j has acc >= and asr <= with one strict (NaN: never)."""
    out = set()
    for i, (a, s) in enumerate(zip(acc, asr, strict=True)):
        if np.isnan(a) or np.isnan(s):
            continue
        dominated = any(
            b >= a and t <= s and (b > a or t < s)
            for j, (b, t) in enumerate(zip(acc, asr, strict=True))
            if j != i and not (np.isnan(b) or np.isnan(t))
        )
        if not dominated:
            out.add(i)
    return out


# Few distinct values, so ties in one metric and exact duplicates are common.
coarse = st.sampled_from([0.0, 1.0, 2.5, 5.0, 5.0, 10.0, 50.0, 99.9, 100.0])
fine = st.floats(min_value=0, max_value=100, allow_nan=False)
value = st.one_of(coarse, fine, st.just(float("nan")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(value, value), max_size=60))
def test_frontier_equals_brute_force(points: list[tuple[float, float]]) -> None:
    acc = [p[0] for p in points]
    asr = [p[1] for p in points]
    got = pareto_indices(acc, asr)
    assert set(got.tolist()) == brute_force(acc, asr)
    assert len(got) == len(set(got.tolist()))
    # Sorted by ASR ascending (and accuracy with it: higher ASR must buy accuracy).
    assert np.all(np.diff(np.asarray(asr)[got]) >= 0)
    assert np.all(np.diff(np.asarray(acc)[got]) >= 0)


def test_exact_duplicates_are_all_members_and_one_point() -> None:
    acc = [20.0, 20.0, 10.0, 20.0, 15.0]
    asr = [4.0, 4.0, 1.0, 9.0, 4.0]
    assert pareto_indices(acc, asr).tolist() == [2, 0, 1]
    table = pa.table(
        {
            "sweep_id": ["s"] * 5,
            "trial_id": ["a", "b", "c", "d", "e"],
            "stage": ["clean"] * 5,
            "epoch": [1] * 5,
            "clean_acc": acc,
            "asr": asr,
        }
    )
    (front,) = pareto_fronts(table, by=())
    assert [m.trial_id for m in front.members] == ["c", "a", "b"]
    assert front.points == ((10.0, 1.0), (20.0, 4.0))
    assert front.n_candidates == 5


def test_ties_in_one_metric() -> None:
    # Equal accuracy: only the lowest ASR stays. Equal ASR: only the highest accuracy stays.
    assert pareto_indices([10, 10, 10], [3, 1, 2]).tolist() == [1]
    assert pareto_indices([1, 3, 2], [5, 5, 5]).tolist() == [1]
    assert pareto_indices([], []).tolist() == []
    assert pareto_indices([float("nan"), 1.0], [0.0, 50.0]).tolist() == [1]


def test_groups_epoch_zero_and_stage(make_trajectory) -> None:
    rows = (
        make_trajectory("a", [20, 10, 12], [99, 50, 0])
        + make_trajectory("b", [20, 15, 30], [99, 60, 10], objective="mmcl_ssl")
        + make_trajectory("p", [1, 90], [0, 0], stage="pretrain")
    )
    for r in rows:
        r["sweep_id"] = "s"
    fronts = pareto_fronts(pa.Table.from_pylist(rows))
    assert [f.group.values for f in fronts] == [
        ("s", "mmcl", "cleanclip"),
        ("s", "mmcl_ssl", "cleanclip"),
    ]
    # Epoch 0 (the starting model) is no candidate, though it has the highest accuracy.
    assert fronts[0].points == ((12.0, 0.0),)
    assert fronts[1].points == ((30.0, 10.0),)
    assert [(m.trial_id, m.epoch) for m in fronts[1].members] == [("b", 2)]
    # All epochs of all stages as one group.
    (everything,) = pareto_fronts(pa.Table.from_pylist(rows), by=(), stage=None)
    assert everything.points == ((90.0, 0.0),)
