"""The figures' pure `_info` steps, and that each renders the traces it describes."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pyarrow.compute as pc

from results.candidates import candidates
from results.plots import (
    frontiers_figure,
    frontiers_info,
    pretrain_figure,
    pretrain_info,
    scatter_figure,
    scatter_info,
    trajectories_figure,
    trajectories_info,
)
from results.report import load_report_data
from results.summary import summarize


def _inputs(store):
    data = load_report_data(store, ["cc6m"])
    cands = candidates(data.epochs)
    return data, cands, summarize(cands, 5.0)


def test_scatter_info(paper_store) -> None:
    _, cands, summary = _inputs(paper_store)
    info = scatter_info(cands, summary)
    assert info.panels == ("pre-trained with MMCL", "pre-trained with MMCL+SSL")
    assert info.n_points == 12  # 4 cleaning trials x 3 epochs; epoch 0 is the star
    # One series (legend entry, colour) per group, named in full: the panels' two differ.
    assert [s.name for s in info.series] == [
        "MMCL · CleanCLIP · cc6m",
        "MMCL+SSL · CleanCLIP · cc6m",
    ]
    assert [p.name for p in info.starts] == [
        "start model · MMCL · cc6m",
        "start model · MMCL+SSL · cc6m",
    ]
    assert sorted(np.round(info.series[0].asr, 2).tolist()) == [3.0, 4.0, 4.5, 6.0, 30.0, 40.0]
    assert [(p.clean_acc, p.asr) for p in info.starts] == [(23.76, 99.98), (23.86, 99.45)]
    assert info.frontiers[0].asr == (3.0, 4.0) and info.frontiers[0].clean_acc == (23.0, 24.04)
    fig = scatter_figure(info)
    assert isinstance(fig, go.Figure)
    kinds = [(t.mode, t.marker.symbol) for t in fig.data]
    assert kinds.count(("markers", None)) == 2 and kinds.count(("markers", "star")) == 2
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 14


def test_frontiers_info_orders_by_hypervolume(paper_store) -> None:
    _, _, summary = _inputs(paper_store)
    info = frontiers_info(summary)
    assert [line.panel for line in info.lines] == [
        "pre-trained with MMCL",
        "pre-trained with MMCL+SSL",
    ]
    assert info.lines[0].hypervolume == summary.groups[0].hypervolume
    assert len(frontiers_figure(info).data) == 2


def test_trajectories_info_sizes_grow_with_epoch(paper_store) -> None:
    _, cands, summary = _inputs(paper_store)
    info = trajectories_info(cands, summary.trials, 5.0, per_group=1)
    # One per group: the trial holding the group's best pick.
    assert [t.trial_id for t in info.trajectories] == ["mmcl-b", "ssl-a"]
    t = info.trajectories[0]
    assert t.epoch.tolist() == [0, 1, 2, 3]
    assert np.all(np.diff(t.size) > 0)
    assert t.clean_acc.tolist() == [23.76, 23.9, 24.04, 23.0]
    fig = trajectories_figure(info)
    assert [t.mode for t in fig.data] == ["lines+markers"] * 2 + ["markers"]  # + colour bar
    assert fig.data[2].marker.showscale and fig.data[2].x == (None,)
    assert len(trajectories_info(cands, summary.trials, 5.0, per_group=5).trajectories) == 4


def test_pretrain_info_marks_selected_epoch(paper_store) -> None:
    data, _, _ = _inputs(paper_store)
    info = pretrain_info(data.epochs, data.trials)
    assert [(c.trial_id, c.selected_epoch) for c in info.curves] == [
        ("pre-mmcl", 3),
        ("pre-ssl", 2),
    ]
    assert info.curves[1].name == "MMCL+SSL: pre-ssl"
    assert info.curves[0].clean_acc.tolist() == [1.0, 10.0, 20.0, 23.76]
    fig = pretrain_figure(info)
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert [(s.x[0], s.y[0]) for s in stars] == [(3, 23.76), (3, 99.98), (2, 23.86), (2, 99.45)]
    # No pre-training rows: nothing to draw.
    clean_only = data.epochs.filter(pc.not_equal(data.epochs["stage"], "pretrain"))
    assert pretrain_info(clean_only, data.trials).curves == ()


def test_objective_comes_from_trials_when_epochs_lack_it(write_sweep, make_trajectory) -> None:
    rows = make_trajectory("a", [20, 19], [99, 3], objective=None)
    trials = [
        {
            "trial_id": "a",
            "stage": "clean",
            "method": "cleanclip",
            "objective": "mmcl_ssl",
            "status": "completed",
        }
    ]
    store = write_sweep("s", rows, trials)
    data = load_report_data(store, ["s"])
    assert data.epochs["objective"].to_pylist() == ["mmcl_ssl", "mmcl_ssl"]
    info = scatter_info(candidates(data.epochs), summarize(data.epochs))
    assert info.panels == ("pre-trained with MMCL+SSL",)
