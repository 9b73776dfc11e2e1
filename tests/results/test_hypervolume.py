"""Hypervolume against (accuracy 0, ASR 100), as a share of the 100 x 100 square."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from results.hypervolume import hypervolume, hypervolumes


def brute_force(points: list[tuple[float, float]]) -> float:
    """Area dominated by any point, summed over the strips between distinct ASR values."""
    pts = [(a, s) for a, s in points if a > 0 and s < 100]
    xs = sorted({s for _, s in pts} | {100.0})
    area = 0.0
    for left, right in zip(xs[:-1], xs[1:], strict=True):
        height = max((a for a, s in pts if s <= left), default=0.0)
        area += height * (right - left)
    return area / 10_000


def test_hand_computed() -> None:
    assert hypervolume([]) == 0.0
    assert hypervolume([(16.0, 0.0)]) == pytest.approx(0.16)
    # Two steps: 10 x 90 + (20 - 10) x 50 = 1400.
    assert hypervolume([(10.0, 10.0), (20.0, 50.0)]) == pytest.approx(0.14)
    # Dominated and duplicate points add nothing; points at the reference add nothing.
    assert hypervolume(
        [(10.0, 10.0), (20.0, 50.0), (5.0, 60.0), (10.0, 10.0), (0.0, 0.0), (50.0, 100.0)]
    ) == pytest.approx(0.14)
    assert hypervolume([(100.0, 0.0)]) == pytest.approx(1.0)


pair = st.tuples(
    st.floats(min_value=-5, max_value=100, allow_nan=False),
    st.floats(min_value=0, max_value=110, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(pair, max_size=40))
def test_equals_brute_force(points: list[tuple[float, float]]) -> None:
    assert hypervolume(points) == pytest.approx(brute_force(points), abs=1e-9)


def test_per_group(paper_store) -> None:
    from results.store import read_epochs

    got = {h.group.values[1]: h for h in hypervolumes(read_epochs(paper_store))}
    mmcl_front = [(23.0, 3.0), (24.04, 4.0)]
    assert got["mmcl"].hypervolume == pytest.approx(hypervolume(mmcl_front))
    assert got["mmcl"].n_points == 2
    # A bigger frontier dominates more: MMCL cleans better than MMCL+SSL here.
    assert got["mmcl"].hypervolume > got["mmcl_ssl"].hypervolume
    assert np.isfinite(got["mmcl_ssl"].hypervolume)
