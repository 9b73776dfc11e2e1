"""Attainment surfaces across seeds: per objective, the median surface and the band between
the best case (reached by one seed) and the worst (reached by every seed)."""

from __future__ import annotations

from typing import Any, NamedTuple

import plotly.graph_objects as go

from results.seeds import attainment_surfaces

# One colour per objective, the paper's two first.
_COLOURS = {"mmcl": "#1f77b4", "mmcl_ssl": "#d62728"}
_OTHER = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")


class Surface(NamedTuple):
    objective: str
    level: float  # % of the seeds that reached it
    points: tuple[tuple[float, float], ...]  # (accuracy, ASR), accuracy ascending


class AttainmentInfo(NamedTuple):
    surfaces: tuple[Surface, ...]
    n_sweeps: int


def attainment_info(data: Any, n_sweeps: int) -> AttainmentInfo:
    out = []
    for objective, levels in attainment_surfaces(data).items():
        keep = {min(levels), max(levels)}
        median = min(levels, key=lambda lv: abs(lv - 50.0))
        keep.add(median)
        out += [Surface(str(objective), lv, tuple(levels[lv])) for lv in sorted(keep)]
    return AttainmentInfo(tuple(out), n_sweeps)


def _staircase(points: tuple[tuple[float, float], ...]) -> tuple[list[float], list[float]]:
    # A 2-D attainment surface is a staircase: from each corner, ASR holds until the next
    # corner's accuracy.
    xs, ys = [], []
    for i, (acc, asr) in enumerate(points):
        xs.append(acc)
        ys.append(asr)
        if i + 1 < len(points):
            xs.append(points[i + 1][0])
            ys.append(asr)
    return xs, ys


def attainment_figure(info: AttainmentInfo) -> go.Figure:
    fig = go.Figure()
    objectives = list(dict.fromkeys(s.objective for s in info.surfaces))
    for i, objective in enumerate(objectives):
        colour = _COLOURS.get(objective, _OTHER[i % len(_OTHER)])
        for s in (s for s in info.surfaces if s.objective == objective):
            xs, ys = _staircase(s.points)
            k = round(s.level / 100 * info.n_sweeps)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"color": colour, "width": 3 if 40 <= s.level <= 60 else 1,
                          "dash": "solid" if 40 <= s.level <= 60 else "dot"},
                    name=f"{objective}: reached by {k}/{info.n_sweeps} seeds",
                )
            )  # fmt: skip
    fig.update_layout(
        xaxis_title="zero-shot accuracy (%)",
        yaxis_title="attack success rate (%)",
        legend_title="attainment (seeds)",
        height=480,
    )
    return fig
