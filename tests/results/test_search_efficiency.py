"""Search efficiency: hypervolume of the frontier so far against the cost spent, by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from results.plots import search_efficiency_figure, search_efficiency_info

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def table(rows: list[tuple[str, str, str, int, float, float]]) -> pa.Table:
    """(sweep, stage, trial, epoch, clean_acc, asr) rows, written in list order."""
    cols = ["sweep_id", "stage", "trial_id", "epoch", "clean_acc", "asr"]
    data: dict[str, list[object]] = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    data["written_at"] = [T0 + timedelta(seconds=i) for i in range(len(rows))]
    return pa.table(data)


def test_the_curve_rises_where_the_frontier_grows() -> None:
    rows = [
        ("s", "clean", "t1", 0, 80.0, 90.0),  # the start model: no cost, no candidate
        ("s", "clean", "t1", 1, 60.0, 50.0),  # 60 x 50 = 3000 of 10000
        ("s", "clean", "t2", 1, 50.0, 60.0),  # dominated by (60, 50): no change
        ("s", "clean", "t1", 2, 40.0, 10.0),  # + (0, 40] x (10, 50) = 1600: 4600
        ("s", "clean", "t2", 2, 70.0, 50.0),  # + (60, 70] x (50, 100) = 500: 5100
        ("s", "screen", "screen-ckpt-origin", 0, 90.0, 95.0),  # unperturbed: not a cost
        ("s", "screen", "p1", 0, 50.0, 20.0),  # 50 x 80 = 4000
        ("s", "screen", "p2", 0, 45.0, 30.0),  # dominated
    ]
    # Stored out of order: the order rows were written decides, not their place.
    shuffled = table(rows).take([4, 0, 7, 2, 5, 1, 6, 3])
    info = search_efficiency_info(shuffled)
    assert info.stages == ("clean", "screen")
    clean, screen = info.curves
    assert (clean.sweep_id, clean.stage, clean.cost) == ("s", "clean", (1, 3, 4))
    assert clean.hypervolume == pytest.approx((0.30, 0.46, 0.51))
    assert (clean.total_cost, clean.n_trials) == (4, 2)
    # The last point carries the curve to the total cost even when nothing changed there.
    assert screen.cost == (1, 2) and screen.hypervolume == pytest.approx((0.40, 0.40))
    assert (screen.total_cost, screen.n_trials) == (2, 2)


def test_a_point_that_replaces_several_frontier_points() -> None:
    rows = [
        ("s", "clean", "a", 1, 10.0, 20.0),
        ("s", "clean", "a", 2, 20.0, 30.0),
        ("s", "clean", "a", 3, 30.0, 40.0),
        ("s", "clean", "b", 1, 35.0, 20.0),  # dominates all three: 35 x 80 = 2800
    ]
    (curve,) = search_efficiency_info(table(rows)).curves
    # 10x80 = 800; + 10x70 = 1500; + 10x60 = 2100; then 2800.
    assert curve.hypervolume == pytest.approx((0.08, 0.15, 0.21, 0.28))


def test_one_line_per_sweep_and_stage_and_nothing_without_candidates() -> None:
    rows = [("a", "clean", "t", 1, 50.0, 50.0), ("b", "clean", "t", 1, 40.0, 10.0)]
    info = search_efficiency_info(table(rows))
    fig = search_efficiency_figure(info)
    assert [tr.name.split()[0] for tr in fig.data] == ["a", "b"]
    assert search_efficiency_info(table([("a", "pretrain", "p", 1, 50.0, 50.0)])).curves == ()
