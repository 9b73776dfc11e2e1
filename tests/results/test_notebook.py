"""The notebook API of `results` on hand-made stores: `load`, `frontiers`, `best_cleaned`
and the `plot_*` figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

import results
from results.report import build_report, load_report_data

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_load_is_one_latest_row_per_key_with_params_as_columns(
    write_sweep: Callable[..., Path], make_trajectory: Callable[..., Any]
) -> None:
    first = make_trajectory("clean-a", [20.0, 21.0], [90.0, 10.0], lr=1e-4, objective=None)
    for i, row in enumerate(first):
        row["written_at"] = T0 + timedelta(seconds=i)
    # A retried trial reports epoch 1 again, later: that row is the truth.
    again = dict(first[1], clean_acc=22.5, asr=4.0, written_at=T0 + timedelta(minutes=5))
    other = make_trajectory("clean-b", [20.0, 19.0], [90.0, 50.0], lr=1e-3, objective=None)
    trials = [
        {
            "trial_id": t,
            "stage": "clean",
            "method": "cleanclip",
            "objective": "mmcl_ssl",
            "status": "completed",
        }
        for t in ("clean-a", "clean-b")
    ]
    store = write_sweep("s1", first + other, trials)
    write_sweep("s1", [again])
    write_sweep("s2", make_trajectory("clean-c", [1.0, 2.0], [0.0, 0.0], lr=5e-4))

    df = results.load(store, sweep="s1")
    assert isinstance(df, pd.DataFrame)
    assert list(zip(df.trial_id, df.epoch, strict=True)) == [
        ("clean-a", 0),
        ("clean-a", 1),
        ("clean-b", 0),
        ("clean-b", 1),
    ]
    a1 = df[(df.trial_id == "clean-a") & (df.epoch == 1)].iloc[0]
    assert (a1.clean_acc, a1.asr) == (22.5, 4.0)
    assert df.set_index("trial_id")["p_lr"].to_dict() == {"clean-a": 1e-4, "clean-b": 1e-3}
    assert set(df.objective) == {"mmcl_ssl"}  # filled in from the trial rows
    assert set(results.load(store).sweep_id) == {"s1", "s2"}
    assert len(results.load(store, sweep=["s1", "s2"])) == 6
    assert list(results.load_trials(store, sweep="s1").trial_id) == ["clean-a", "clean-b"]


def test_frontiers_are_the_hand_found_pareto_sets(paper_store: Path) -> None:
    front = results.frontiers(results.load(paper_store))
    got = {
        objective: list(zip(g.trial_id, g.epoch, g.clean_acc, g.asr, strict=True))
        for objective, g in front.groupby("objective")
    }
    # MMCL: (24.04, 4.0) dominates every point but (23.0, 3.0), which has the lower ASR.
    assert got["mmcl"] == [("mmcl-b", 3, 23.0, 3.0), ("mmcl-b", 2, 24.04, 4.0)]
    # MMCL+SSL: ssl-b's 22.0 at 98 is the only point another (23.0 at 97) dominates.
    assert got["mmcl_ssl"] == [
        ("ssl-a", 3, 13.05, 4.9),
        ("ssl-a", 2, 16.0, 30.0),
        ("ssl-a", 1, 20.0, 80.0),
        ("ssl-b", 3, 21.0, 96.0),
        ("ssl-b", 1, 23.0, 97.0),
    ]
    assert list(front.columns[:3]) == ["sweep_id", "objective", "method"]


def test_best_cleaned_per_group_with_relative_change(paper_store: Path) -> None:
    best = results.best_cleaned(results.load(paper_store)).set_index("objective")
    mmcl, ssl = best.loc["MMCL"], best.loc["MMCL+SSL"]
    assert (mmcl.best_trial_id, mmcl.best_epoch, mmcl.best_clean_acc) == ("mmcl-b", 2, 24.04)
    assert mmcl.relative_change == pytest.approx((24.04 - 23.76) / 23.76)
    assert (ssl.best_trial_id, ssl.best_epoch) == ("ssl-a", 3)
    assert ssl.relative_change == pytest.approx((13.05 - 23.86) / 23.86)
    strict = results.best_cleaned(results.load(paper_store), threshold=4.5)
    none = strict.set_index("objective").loc["MMCL+SSL"]
    assert pd.isna(none.best_clean_acc) and none.note == "no candidate with ASR <= 4.5%"


def test_plots_are_the_reports_figures(paper_store: Path) -> None:
    df = results.load(paper_store)
    report = build_report(load_report_data(paper_store), threshold=5.0)
    figures = {s.id: s.figure for s in report.sections}
    trials = results.load_trials(paper_store)
    ours = {
        "fig-scatter": results.plot_scatter(df),
        "fig-frontiers": results.plot_frontiers(df),
        "fig-trajectories": results.plot_trajectories(df),
        "fig-pretrain": results.plot_pretrain(df, trials),
    }
    for key, fig in ours.items():
        assert isinstance(fig, go.Figure), key
        assert fig.to_json() == figures[key].to_json(), key  # type: ignore[union-attr]
    # And what the frontier figure draws: the hand-found MMCL staircase, ASR on x.
    (mmcl,) = [t for t in ours["fig-frontiers"].data if t.name.startswith("MMCL · ")]
    assert (list(mmcl.x), list(mmcl.y)) == ([3.0, 4.0], [23.0, 24.04])
    strict = results.plot_frontiers(df, threshold=1.0)
    assert strict.to_json() != ours["fig-frontiers"].to_json()  # the success band moved
