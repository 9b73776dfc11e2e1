"""Accuracy vs ASR of every cleaning epoch (the paper's Figures 2 and 10).

One panel per pre-training objective, one colour (and legend entry) per group, each starting
model a star of its own dark colour, the success region (ASR <= threshold) shaded and each
group's frontier drawn as a staircase. Points are named by their trial's swept values.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go

from results.candidates import Candidates, Group
from results.labels import group_label
from results.plots._style import (
    START_PALETTE,
    WEBGL_POINTS,
    colours,
    mark_success,
    ordered,
    panel_grid,
    panel_of,
)
from results.plots._trials import trial_labels, trial_spans
from results.summary import Summary


class Series(NamedTuple):
    panel: str
    name: str  # the full group: legend entry and colour, one each per group
    clean_acc: np.ndarray
    asr: np.ndarray
    epoch: np.ndarray
    trial: list[str]  # per point, its trial by its swept values (hover)


class Point(NamedTuple):
    panel: str
    name: str  # a start model: "start model · MMCL · sweep-a"
    clean_acc: float
    asr: float


class Line(NamedTuple):
    panel: str
    name: str  # the group, as its Series
    clean_acc: tuple[float, ...]
    asr: tuple[float, ...]


class ScatterInfo(NamedTuple):
    panels: tuple[str, ...]
    series: tuple[Series, ...]
    starts: tuple[Point, ...]
    frontiers: tuple[Line, ...]
    threshold: float
    n_points: int


def start_name(group: Group) -> str:
    """A start model by what it is: the pre-training objective and sweep it came from."""
    key = {c: v for c, v in group.as_dict().items() if c in ("objective", "sweep_id")}
    return f"start model · {group_label(key)}" if key else "start model"


def _labels_by_trial(cands: Candidates) -> np.ndarray:
    """Each trial's label, indexed by its number in `cands.trial` (labels unique per group)."""
    spans = trial_spans(cands)
    keys = list(spans)
    group_of = np.searchsorted(cands.bounds, [spans[k][0] for k in keys], side="right") - 1
    named = trial_labels(cands, keys, spans, group_of.tolist())
    out = np.full(int(cands.trial.max()) + 1 if cands.trial.size else 0, "", dtype=object)
    for k in keys:
        out[cands.trial[spans[k][0]]] = named[k][0]
    return out


def scatter_info(cands: Candidates, summary: Summary) -> ScatterInfo:
    """Points of every candidate epoch per group, starts (one per panel and position), frontiers."""
    label = _labels_by_trial(cands)
    series, starts, fronts = [], [], []
    for g, gs in enumerate(summary.groups):
        panel, name = panel_of(gs.group), gs.group.label
        rows = cands.rows(g)
        rows = rows[cands.is_candidate[rows]]
        series.append(
            Series(
                panel,
                name,
                cands.clean_acc[rows],
                cands.asr[rows],
                cands.epoch[rows],
                label[cands.trial[rows]].tolist(),
            )
        )
        start = gs.best.start
        if start is not None:
            starts.append(Point(panel, start_name(gs.group), start.clean_acc, start.asr))
        if gs.frontier.points:
            acc, asr = zip(*gs.frontier.points, strict=True)
            fronts.append(Line(panel, name, acc, asr))
    # Groups that share a starting model would stack identical stars: keep one per position.
    unique = tuple({(p.panel, p.clean_acc, p.asr): p for p in starts}.values())
    return ScatterInfo(
        panels=ordered(s.panel for s in series),
        series=tuple(series),
        starts=unique,
        frontiers=tuple(fronts),
        threshold=summary.threshold,
        n_points=int(sum(len(s.asr) for s in series)),
    )


def _points_trace(s: Series, colour: str, first: bool, webgl: bool) -> go.Scatter:
    """One group's epochs; per-point hover (trial, epoch) only where SVG can afford it."""
    extra: dict[str, object] = {}
    if not webgl:
        extra = {
            "customdata": np.column_stack([s.trial, s.epoch]) if len(s.epoch) else None,
            "hovertemplate": "%{customdata[0]}, epoch %{customdata[1]}<br>"
            "accuracy %{y:.2f}%, ASR %{x:.2f}%<extra>%{fullData.name}</extra>",
        }
    trace = go.Scattergl if webgl else go.Scatter
    return trace(
        x=s.asr,
        y=s.clean_acc,
        mode="markers",
        name=s.name,
        legendgroup=s.name,
        showlegend=first,
        marker={"color": colour, "size": 6, "opacity": 0.55},
        **extra,
    )


def scatter_figure(info: ScatterInfo) -> go.Figure:
    """Render `scatter_info`."""
    fig = panel_grid(info.panels, "ASR (%)", "accuracy (%)")
    col_of = {p: i + 1 for i, p in enumerate(info.panels)}
    colour = colours([s.name for s in info.series])
    webgl = info.n_points > WEBGL_POINTS
    # WebGL traces draw above SVG ones: frontiers and stars must then be WebGL too to show.
    over = go.Scattergl if webgl else go.Scatter
    shown: set[str] = set()
    for s in info.series:
        trace = _points_trace(s, colour[s.name], s.name not in shown, webgl)
        fig.add_trace(trace, row=1, col=col_of[s.panel])
        shown.add(s.name)
    for line in info.frontiers:
        fig.add_trace(
            over(
                x=line.asr,
                y=line.clean_acc,
                mode="lines",
                line={"color": colour[line.name], "width": 2, "shape": "hv"},
                name=f"{line.name} frontier",
                legendgroup=line.name,
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=col_of[line.panel],
        )
    # One colour per start model, from its own dark palette: never one group's colour.
    names = ordered(p.name for p in info.starts)
    for p in info.starts:
        i = names.index(p.name)
        fig.add_trace(
            over(
                x=[p.asr],
                y=[p.clean_acc],
                mode="markers",
                name=p.name,
                legendgroup=p.name,
                showlegend=p is next(q for q in info.starts if q.name == p.name),
                marker={
                    "symbol": "star",
                    "size": 17,
                    "color": START_PALETTE[i % len(START_PALETTE)],
                    "line": {"width": 1, "color": "white"},
                },
                hovertemplate=f"{p.name}<br>accuracy %{{y:.2f}}%, ASR %{{x:.2f}}%<extra></extra>",
            ),
            row=1,
            col=col_of[p.panel],
        )
    mark_success(fig, len(info.panels), info.threshold)
    fig.update_layout(title="Accuracy vs ASR of every cleaning epoch")
    return fig
