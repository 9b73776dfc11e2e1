"""Accuracy vs ASR of every cleaning epoch (the paper's Figures 2 and 10).

One panel per pre-training objective, one colour per cleaning method (or group), the starting
model as a star, the success region (ASR <= threshold) shaded and each group's frontier drawn
as a staircase.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go

from results.candidates import Candidates
from results.plots._style import (
    WEBGL_POINTS,
    colours,
    mark_success,
    ordered,
    panel_grid,
    panel_of,
    series_name,
)
from results.summary import Summary


class Series(NamedTuple):
    panel: str
    name: str
    clean_acc: np.ndarray
    asr: np.ndarray
    epoch: np.ndarray
    trial_id: list[str]


class Point(NamedTuple):
    panel: str
    name: str
    clean_acc: float
    asr: float


class Line(NamedTuple):
    panel: str
    name: str
    clean_acc: tuple[float, ...]
    asr: tuple[float, ...]


class ScatterInfo(NamedTuple):
    panels: tuple[str, ...]
    series: tuple[Series, ...]
    starts: tuple[Point, ...]
    frontiers: tuple[Line, ...]
    threshold: float
    n_points: int


def scatter_info(cands: Candidates, summary: Summary) -> ScatterInfo:
    """Points of every candidate epoch per group, starts (one per panel and position), frontiers."""
    series, starts, fronts = [], [], []
    for g, gs in enumerate(summary.groups):
        panel, name = panel_of(gs.group), series_name(gs.group)
        rows = cands.rows(g)
        rows = rows[cands.is_candidate[rows]]
        trial_ids = cands.table["trial_id"].take(rows).to_pylist()
        series.append(
            Series(
                panel, name, cands.clean_acc[rows], cands.asr[rows], cands.epoch[rows], trial_ids
            )
        )
        start = gs.best.start
        if start is not None:
            starts.append(Point(panel, name, start.clean_acc, start.asr))
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
            "customdata": np.column_stack([s.trial_id, s.epoch]) if len(s.epoch) else None,
            "hovertemplate": "trial %{customdata[0]}, epoch %{customdata[1]}<br>"
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
    for i, p in enumerate(info.starts):
        fig.add_trace(
            over(
                x=[p.asr],
                y=[p.clean_acc],
                mode="markers",
                name="starting model",
                legendgroup="start",
                showlegend=i == 0,
                marker={"symbol": "star", "size": 16, "color": "gold", "line": {"width": 1}},
                hovertemplate="starting model<br>accuracy %{y:.2f}%, ASR %{x:.2f}%<extra></extra>",
            ),
            row=1,
            col=col_of[p.panel],
        )
    mark_success(fig, len(info.panels), info.threshold)
    fig.update_layout(title="Accuracy vs ASR of every cleaning epoch")
    return fig
