"""Repeats across seeds: the 95% interval and the attainment surfaces against hand figures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from results.seeds import attainment_surfaces, interval, seed_intervals
from results.store import read_epochs
from tests.results.conftest import trajectory

# Three sweeps of one search space (`sweeper launch demo.yaml seed=...`), as the driver names them.
S0, S1, S2 = (f"demo-20261201-1{i}0000-00a{i}" for i in range(3))


def test_interval_by_hand() -> None:
    # 55.0 +- t(0.975, 2) * sd / sqrt(3): sd = sqrt(12.48 / 2) = 2.4980, t = 4.303.
    iv = interval([57.0, 55.8, 52.2])
    assert iv.mean == pytest.approx(55.0)
    assert (iv.low, iv.high) == pytest.approx((55.0 - 6.2059, 55.0 + 6.2059), abs=1e-3)
    one = interval([3.0])
    assert (one.low, one.mean, one.high, one.n) == (3.0, 3.0, 3.0, 1)


def _three_seeds(write_sweep: Callable[..., Path]) -> Path:
    store = None
    for sweep, start, best in ((S0, 60.0, 57.0), (S1, 62.0, 55.8), (S2, 58.0, 52.2)):
        rows = trajectory("a", [start, best - 1, best], [95, 20, 3], lr=1e-4) + trajectory(
            "b", [start, 30.0], [95, 60], lr=1e-3, objective="mmcl_ssl"
        )
        store = write_sweep(sweep, [dict(r, sweep_id=sweep) for r in rows])
    assert store is not None
    return store


def test_seed_intervals_across_three_sweeps(write_sweep: Callable[..., Path]) -> None:
    table = read_epochs(_three_seeds(write_sweep))
    mmcl, ssl = seed_intervals(table)
    assert mmcl.objective == "mmcl" and mmcl.sweeps == (S0, S1, S2)
    assert mmcl.best_acc is not None and mmcl.best_acc.mean == pytest.approx(55.0)
    assert mmcl.best_acc.high - mmcl.best_acc.mean == pytest.approx(6.2059, abs=1e-3)
    # Relative changes -5%, -10%, -10%: mean -8.333%, half-width 4.303 * 0.028868 / sqrt(3).
    rc = mmcl.relative_change
    assert rc is not None and rc.mean == pytest.approx(-0.083333, abs=1e-6)
    assert rc.high - rc.mean == pytest.approx(0.071721, abs=1e-5)
    assert mmcl.start_acc.mean == pytest.approx(60.0) and mmcl.n_none == 0
    # MMCL+SSL never reaches ASR <= 5 in any seed: no figure, three sweeps without.
    assert ssl.best_acc is None and ssl.relative_change is None and ssl.n_none == 3


def test_attainment_surfaces_by_hand(write_sweep: Callable[..., Path]) -> None:
    a = trajectory("a", [70, 60, 50], [99, 10, 2], lr=1e-4)
    b = trajectory("b", [70, 55], [99, 5], lr=1e-4)
    write_sweep("s0", [dict(r, sweep_id="s0") for r in a])
    store = write_sweep("s1", [dict(r, sweep_id="s1") for r in b])
    surf = attainment_surfaces(read_epochs(store))["mmcl"]
    # Reached by at least one seed: the union's frontier. By both: the corners where the
    # two dominated regions meet, (55, 10) and (50, 5). Epoch 0 (70 / 99) is no candidate.
    assert surf[50.0] == [(50.0, 2.0), (55.0, 5.0), (60.0, 10.0)]
    assert surf[100.0] == [(50.0, 5.0), (55.0, 10.0)]


def test_a_report_of_several_sweeps_shows_them_as_seeds(write_sweep: Callable[..., Path]) -> None:
    from results.plots.attainment import attainment_info
    from results.report import build_report, load_report_data, render_html

    store = _three_seeds(write_sweep)
    report = build_report(load_report_data(store, [S0, S1, S2]))
    (section,) = [s for s in report.sections if s.id == "fig-seeds"]
    assert "mmcl: start 60.0% / ASR 95.0%; best accuracy at ASR ≤ 5% 55.0 [48.8, 61.2]" in (
        section.caption
    )
    assert "no candidate at ASR ≤ 5% in any of 3 sweeps" in section.caption
    info = attainment_info(read_epochs(store), 3)
    assert {(s.objective, s.level) for s in info.surfaces} >= {("mmcl", 100.0), ("mmcl_ssl", 100.0)}
    names = [t.name for t in section.figure.data]
    assert "mmcl: reached by 3/3 seeds" in names and "mmcl: reached by 1/3 seeds" in names
    assert 'id="fig-seeds"' in render_html(report)
    # One sweep is not a set of repeats, nor are sweeps of different search spaces.
    single = build_report(load_report_data(store, [S0]))
    assert all(s.id != "fig-seeds" for s in single.sections)
    write_sweep(
        "other-20261201-120000-00ff",
        [dict(r, sweep_id="other-20261201-120000-00ff") for r in trajectory("x", [1, 2], [3, 4])],
    )
    mixed = build_report(load_report_data(store, [S0, "other-20261201-120000-00ff"]))
    assert all(s.id != "fig-seeds" for s in mixed.sections)
