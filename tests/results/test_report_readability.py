"""What makes the report readable at a glance, checked on the figures' data: trajectories
coloured by the swept value with one legend entry each and a marked start, a colour of its
own for every frontier and start model, an Optuna search's panels, trial names from their
swept values, and a multi-sweep report in its own file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from results.candidates import candidates
from results.plots import (
    frontiers_figure,
    frontiers_info,
    optuna_info,
    scatter_figure,
    scatter_info,
    trajectories_figure,
    trajectories_info,
)
from results.report import build_report, default_report_path, load_report_data, render_html
from results.summary import summarize

LRS = (1e-5, 3e-5, 1e-4, 1e-3)
VIRIDIS_LOW = "rgb(68, 1, 84)"  # Viridis' first colour, its darkest purple


def _lr_grid(make_trajectory: Callable[..., list[dict[str, Any]]], objective: str = "mmcl"):
    """Four cleaning trials from one start model, one per learning rate."""
    rows = []
    for i, lr in enumerate(LRS):
        rows += make_trajectory(
            f"clean-{objective}-lr={lr}-r0",
            [30.0, 28.0 - i, 27.0 - i],
            [90.0, 40.0 - 5 * i, 4.0 + i],
            objective=objective,
            lr=lr,
        )
    return rows


def _trajectories(store: Path, sweeps: list[str], per_group: int = 4):
    data = load_report_data(store, sweeps)
    cands = candidates(data.epochs)
    summary = summarize(cands, 5.0)
    return trajectories_info(cands, summary.trials, 5.0, per_group)


def test_trajectories_coloured_by_lr_one_legend_entry_each(write_sweep, make_trajectory) -> None:
    store = write_sweep("grid", _lr_grid(make_trajectory))
    info = _trajectories(store, ["grid"])
    assert info.scale is not None and info.scale.param == "lr" and info.scale.log
    assert sorted(t.label for t in info.trajectories) == [
        "lr=0.0001",
        "lr=0.001",
        "lr=1e-05",
        "lr=3e-05",
    ]
    fig = trajectories_figure(info)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 4
    # One legend entry per trial: none hidden, each its own name, so a click hides one.
    assert all(t.showlegend is not False for t in lines)
    assert len({t.name for t in lines}) == 4
    assert fig.layout.legend.groupclick == "toggleitem"
    assert [t.legendgrouptitle.text for t in lines].count("MMCL · CleanCLIP · grid") == 1
    # Colours: four distinct, the smallest learning rate at the scale's dark end.
    colour = {t.name: t.line.color for t in lines}
    assert len(set(colour.values())) == 4
    assert colour["lr=1e-05"] == VIRIDIS_LOW
    # Legend in learning-rate order, whatever order the trials are drawn in.
    by_rank = sorted(lines, key=lambda t: t.legendrank)
    assert [t.name for t in by_rank] == ["lr=1e-05", "lr=3e-05", "lr=0.0001", "lr=0.001"]
    # The start model (epoch 0) is one diamond per trajectory, at the start's point.
    for t in lines:
        diamonds = [i for i, s in enumerate(t.marker.symbol) if s == "diamond"]
        assert len(diamonds) == 1
        assert (t.x[diamonds[0]], t.y[diamonds[0]]) == (90.0, 30.0)
        assert [s for s in t.marker.symbol if s != "diamond"] == ["circle", "circle"]
    # A colour bar names the parameter and its values.
    (bar,) = [t for t in fig.data if t.mode == "markers"]
    assert bar.marker.colorbar.title.text == "colour: lr"
    assert list(bar.marker.colorbar.ticktext) == ["1e-05", "3e-05", "0.0001", "0.001"]


def test_repeats_keep_their_ids_and_no_param_falls_back_to_ids(
    write_sweep, make_trajectory
) -> None:
    rows = make_trajectory("t-r0", [30, 20], [90, 4], lr=1e-4) + make_trajectory(
        "t-r1", [30, 21], [90, 3], lr=1e-4
    )
    info = _trajectories(write_sweep("rep", rows), ["rep"])
    # No value differs: the label is the id; no scale, one palette colour each.
    assert sorted(t.label for t in info.trajectories) == ["t-r0", "t-r1"]
    assert info.scale is None
    lines = trajectories_figure(info).data
    assert len({t.line.color for t in lines}) == 2


def test_two_sweeps_in_one_panel_differ_by_line_style(write_sweep, make_trajectory) -> None:
    write_sweep("a", _lr_grid(make_trajectory))
    store = write_sweep("b", _lr_grid(make_trajectory))
    info = _trajectories(store, ["a", "b"], per_group=2)
    fig = trajectories_figure(info)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    dash = {t.legendgroup: t.line.dash for t in lines}
    assert dash == {"MMCL · CleanCLIP · a": "solid", "MMCL · CleanCLIP · b": "dash"}
    # Same learning rate in both sweeps: same colour, same name, two legend sections.
    assert len({(t.legendgroup, t.name) for t in lines}) == 4


def test_labels_name_what_varies_within_a_group(write_sweep, make_trajectory) -> None:
    """A shrink-and-perturb sweep's trials all carry the screen's pick (shrink, sigma); a
    grid sweep's have neither: each group's labels name its learning rates only."""
    write_sweep("grid", _lr_grid(make_trajectory))
    rows = [
        r
        for i, lr in enumerate((1e-4, 1e-3))
        for r in make_trajectory(
            f"sp-{i}", [15, 20], [1, 3], lr=lr, shrink=1.0, perturb_sigma=0.4, method="sp"
        )
    ]
    store = write_sweep("sp", rows)
    info = _trajectories(store, ["grid", "sp"], per_group=4)
    labels = {(t.group, t.label) for t in info.trajectories}
    assert ("MMCL · sp · sp", "lr=0.0001") in labels and ("MMCL · sp · sp", "lr=0.001") in labels
    assert sorted(label for g, label in labels if g.endswith("grid")) == [
        "lr=0.0001",
        "lr=0.001",
        "lr=1e-05",
        "lr=3e-05",
    ]


def test_frontiers_series_and_starts_each_get_their_own_colour(paper_store) -> None:
    data = load_report_data(paper_store, ["cc6m"])
    cands = candidates(data.epochs)
    summary = summarize(cands, 5.0)
    fronts = frontiers_figure(frontiers_info(summary)).data
    assert len(fronts) == 2 and fronts[0].line.color != fronts[1].line.color
    fig = scatter_figure(scatter_info(cands, summary))
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert [t.name for t in stars] == ["start model · MMCL · cc6m", "start model · MMCL+SSL · cc6m"]
    assert stars[0].marker.color != stars[1].marker.color
    points = [t for t in fig.data if t.mode == "markers" and t.marker.symbol is None]
    assert len({t.marker.color for t in points}) == 2
    assert all(t.marker.color not in {s.marker.color for s in stars} for t in points)
    # Hover names the trial by its learning rate, not its id.
    assert {row[0] for row in points[0].customdata} == {"lr=1e-05", "lr=3e-05"}


def test_summary_table_names_the_best_trial_by_its_values(paper_store) -> None:
    page = render_html(build_report(load_report_data(paper_store, ["cc6m"])))
    assert "<td>lr=3e-05, epoch 2<br><small>mmcl-b</small></td>" in page


# Three Optuna trials, started in the order b, a, c (not their ids' order). Per trial, the
# point the search optimised and the hypervolume after it, worked out by hand:
#   b: lr 1e-4, epochs (20, 50) (19, 60); none under 5%: lowest ASR (20, 50); HV 0.1
#   a: lr 1e-6, epochs (10, 10) (12, 4): (12, 4); epochs' frontier (12,4) (20,50):
#      12*96 + 8*50 = 1552 -> 0.1552 (the trials' points give the same)
#   c: lr 1e-3, epochs (25, 3) (26, 20): (25, 3); epochs' frontier (25,3) (26,20):
#      25*97 + 1*80 = 2505 -> 0.2505; trials' points (25, 3) alone: 0.2425
OPTUNA = (
    ("clean-optuna-bbb_00000", 1e-4, [30, 20, 19], [90, 50, 60]),
    ("clean-optuna-aaa_00001", 1e-6, [30, 10, 12], [90, 10, 4]),
    ("clean-optuna-ccc_00002", 1e-3, [30, 25, 26], [90, 3, 20]),
)
PLAN = {
    "stages": [
        {"name": "pretrain", "search": None},
        {
            "name": "clean",
            "search": {
                "n_trials": 40,
                "seed": 0,
                "params": {"lr": {"type": "float", "low": 1e-9, "high": 3e-3, "log": True}},
            },
        },
    ]
}


@pytest.fixture
def optuna_store(write_sweep, make_trajectory) -> Path:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    for n, (trial, lr, acc, asr) in enumerate(OPTUNA):
        for r in make_trajectory(trial, acc, asr, objective="mmcl_ssl", lr=lr):
            rows.append({**r, "written_at": t0 + timedelta(minutes=10 * n + r["epoch"])})
    status = {"clean-optuna-ccc_00002": "running"}
    trials = [
        {"trial_id": t, "stage": "clean", "method": "cleanclip", "objective": "mmcl_ssl",
         "status": status.get(t, "completed")}
        for t, *_ in OPTUNA
    ]  # fmt: skip
    store = write_sweep("opt", rows, trials)
    (store / "opt" / "plan.json").write_text(json.dumps(PLAN))
    return store


def test_optuna_info_orders_trials_and_tracks_hypervolume(optuna_store: Path) -> None:
    data = load_report_data(optuna_store, ["opt"])
    (study,) = optuna_info(candidates(data.epochs), data.studies.studies, 5.0).studies
    assert (study.sweep_id, study.stage, study.params, study.log) == (
        "opt",
        "clean",
        ("lr",),
        (True,),
    )
    assert [t.label for t in study.trials] == ["lr=0.0001", "lr=1e-06", "lr=0.001"]
    assert [t.number for t in study.trials] == [1, 2, 3]
    assert [(t.clean_acc, t.asr) for t in study.trials] == [(20, 50), (12, 4), (25, 3)]
    assert study.hv_epochs == pytest.approx((0.1, 0.1552, 0.2505))
    assert study.hv_points == pytest.approx((0.1, 0.1552, 0.2425))
    summary = summarize(data.epochs)
    assert study.hv_epochs[-1] == pytest.approx(summary.groups[0].hypervolume)


def test_optuna_section_and_figure(optuna_store: Path) -> None:
    report = build_report(load_report_data(optuna_store, ["opt"]))
    (section,) = [s for s in report.sections if s.id == "fig-optuna"]
    assert (
        "3 trials (2 completed, 1 running) of 40 planned, seed 0, sampling lr in [1e-09, 0.003] "
        "(log)" in section.caption
    )
    fig = section.figure
    assert fig is not None
    acc, asr = [t for t in fig.data if t.mode == "markers"]
    assert list(acc.y) == [20, 12, 25] and list(asr.y) == [50, 4, 3]
    assert list(acc.x) == [1e-4, 1e-6, 1e-3] and list(acc.marker.color) == [1, 2, 3]
    assert [row[0] for row in acc.customdata] == ["lr=0.0001", "lr=1e-06", "lr=0.001"]
    assert [row[3] for row in acc.customdata] == ["completed", "completed", "running"]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type is None
    # The axis spans the planned range, 1e-9 to 3e-3, padded 3%: where the search sampled.
    assert list(fig.layout.xaxis.range) == pytest.approx([-9.1943, -2.3286], abs=1e-3)
    assert [t.showlegend for t in (acc, asr)] == [True, False]
    hv = [t for t in fig.data if t.name and t.name.startswith("HV")]
    assert [t.name for t in hv] == ["HV, every epoch", "HV, trial objectives"]
    assert list(hv[0].x) == [1, 2, 3]


def test_optuna_without_a_readable_plan_still_plots(optuna_store: Path) -> None:
    (optuna_store / "opt" / "plan.json").write_text("{not json")
    report = build_report(load_report_data(optuna_store, ["opt"]))
    (section,) = [s for s in report.sections if s.id == "fig-optuna"]
    assert f"Study settings unknown for {optuna_store / 'opt' / 'plan.json'}" in section.caption
    assert "3 trials (2 completed, 1 running), sampling lr" in section.caption
    assert section.figure is not None and len(section.figure.data) == 4


def test_a_grid_has_no_optuna_section(paper_store: Path) -> None:
    report = build_report(load_report_data(paper_store, ["cc6m"]))
    assert "fig-optuna" not in [s.id for s in report.sections]
    assert optuna_info(candidates(load_report_data(paper_store).epochs), {}, 5.0).studies == ()


def test_multi_sweep_report_has_its_own_file(write_sweep, make_trajectory, capsys) -> None:
    import sweeper.cli as cli

    write_sweep("a", _lr_grid(make_trajectory))
    store = write_sweep("b", _lr_grid(make_trajectory, "mmcl_ssl"))
    assert cli.main(["report", "a", "b", "--store", str(store)]) == 0
    page = store / "reports" / "a+b.html"
    assert f"report: {page}" in capsys.readouterr().out
    assert page.stat().st_size > 1_000_000
    assert not (store / "a" / "report.html").exists()
    assert default_report_path(store, ["a"]) == store / "a" / "report.html"
    assert default_report_path(store, ["a", "a"]) == store / "a" / "report.html"
    # Names too long for one file name: the first, a count and a digest of all.
    long = [f"{c * 60}" for c in "xyzw"]
    for name in long:
        write_sweep(name, make_trajectory("t", [1, 2], [3, 4]))
    path = default_report_path(store, long)
    assert path.parent == store / "reports" and path.name.startswith("x" * 60 + "+3-more-")
    assert len(path.name) < 200
