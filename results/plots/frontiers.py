"""Frontiers of every group overlaid, one panel per pre-training objective: how sweeps and
ablations compare (cleaning-set size, epochs, SSL weight, grid vs Optuna), with each
frontier's hypervolume in its legend."""

from __future__ import annotations

from typing import NamedTuple

import plotly.graph_objects as go

from results.plots._style import colours, mark_success, ordered, panel_grid, panel_of, series_name
from results.summary import Summary


class FrontierLine(NamedTuple):
    panel: str
    name: str  # the group without its objective (the panel says that)
    label: str  # the full group: the legend and the colour, one each per frontier
    clean_acc: tuple[float, ...]
    asr: tuple[float, ...]
    hypervolume: float


class FrontiersInfo(NamedTuple):
    panels: tuple[str, ...]
    lines: tuple[FrontierLine, ...]
    threshold: float


def frontiers_info(summary: Summary) -> FrontiersInfo:
    """One line per group with a frontier, largest hypervolume first within a panel."""
    lines = []
    for gs in summary.groups:
        if not gs.frontier.points:
            continue
        acc, asr = zip(*gs.frontier.points, strict=True)
        lines.append(
            FrontierLine(
                panel_of(gs.group), series_name(gs.group), gs.group.label, acc, asr, gs.hypervolume
            )
        )
    panels = ordered(line.panel for line in lines)
    lines.sort(key=lambda line: (panels.index(line.panel), -line.hypervolume))
    return FrontiersInfo(panels, tuple(lines), summary.threshold)


def frontiers_figure(info: FrontiersInfo) -> go.Figure:
    """Render `frontiers_info`."""
    fig = panel_grid(info.panels, "ASR (%)", "accuracy (%)")
    col_of = {p: i + 1 for i, p in enumerate(info.panels)}
    # One colour per frontier: two frontiers are never the same line, even in two panels.
    colour = colours([line.label for line in info.lines])
    for line in info.lines:
        fig.add_trace(
            go.Scatter(
                x=line.asr,
                y=line.clean_acc,
                mode="lines+markers",
                line={"shape": "hv", "color": colour[line.label], "width": 2},
                marker={"size": 6, "color": colour[line.label]},
                name=f"{line.label} (HV {line.hypervolume:.4f})",
                hovertemplate="accuracy %{y:.2f}%, ASR %{x:.2f}%<extra>%{fullData.name}</extra>",
            ),
            row=1,
            col=col_of[line.panel],
        )
    mark_success(fig, len(info.panels), info.threshold)
    fig.update_layout(title="Pareto frontiers (accuracy up, ASR down) across sweeps and groups")
    return fig
