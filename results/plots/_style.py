"""What the figures share: panels per pre-training objective, colours, the success region."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from results.candidates import Group
from results.labels import group_label, objective_label

# Above this many markers in one figure, WebGL keeps the page responsive (SVG draws one
# element per marker).
WEBGL_POINTS = 20_000
TEMPLATE = "plotly_white"
PALETTE: tuple[str, ...] = tuple(qualitative.Plotly) + tuple(qualitative.D3)
SUCCESS_FILL = "rgba(44, 160, 44, 0.12)"
SEQUENTIAL = "Viridis"
# Viridis ends in a pale yellow that vanishes on a white page: use its darker 85%.
SEQUENTIAL_SPAN = (0.0, 0.85)
# Start models: one dark colour each, apart from the group palette, so a star never reads
# as one group's point.
START_PALETTE: tuple[str, ...] = ("#000000", "#737373", "#8c2d04", "#54278f", "#084594")
# Line styles that tell apart groups sharing a panel when colour already shows a value.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
ALL_PANEL = "all models"


def panel_of(group: Group) -> str:
    """The panel a group is drawn in: its pre-training objective in the paper's words."""
    key = group.as_dict()
    if "objective" not in key:
        return ALL_PANEL
    return f"pre-trained with {objective_label(key['objective'])}"


def series_name(group: Group) -> str:
    """A group's legend name: its label without the objective (that is the panel)."""
    key = {k: v for k, v in group.as_dict().items() if k != "objective"}
    return group_label(key) if key else "all"


def ordered(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct values in first-seen order."""
    return tuple(dict.fromkeys(values))


def colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per name, stable for a given set of names."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def panel_grid(panels: Sequence[str], x_title: str, y_title: str) -> go.Figure:
    """One subplot per panel side by side, sharing the y axis."""
    fig = make_subplots(
        rows=1,
        cols=max(1, len(panels)),
        subplot_titles=list(panels) or [""],
        shared_yaxes=True,
        horizontal_spacing=0.06,
    )
    fig.update_layout(template=TEMPLATE, height=520, legend={"groupclick": "togglegroup"})
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, col=1)
    return fig


def mark_success(fig: go.Figure, n_panels: int, threshold: float) -> None:
    """Shade ASR <= threshold in every panel: where a cleaned model counts as a success."""
    for col in range(1, max(1, n_panels) + 1):
        fig.add_vrect(
            x0=0,
            x1=threshold,
            fillcolor=SUCCESS_FILL,
            line_width=0,
            layer="below",
            row=1,
            col=col,
            annotation_text=f"success: ASR ≤ {threshold:g}%",
            annotation_position="top left",
            annotation_font_size=11,
        )
    fig.update_xaxes(range=[-2, 102])


class ValueScale(NamedTuple):
    """A sequential colour scale over one swept parameter: log when it spans a decade."""

    param: str
    log: bool
    low: float
    high: float
    values: tuple[float, ...]  # the distinct values, ascending


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def value_scale(param: str, values: Iterable[Any]) -> ValueScale | None:
    """The scale over the numeric `values`; None when fewer than two distinct ones."""
    nums = sorted({v for v in map(_number, values) if v is not None})
    if len(nums) < 2:
        return None
    log = nums[0] > 0 and nums[-1] / nums[0] >= 10
    return ValueScale(param, log, nums[0], nums[-1], tuple(nums))


def _unit(scale: ValueScale, value: float) -> float:
    """`value`'s place on the scale, 0 at its lowest value, 1 at its highest."""
    f = math.log10 if scale.log else float
    low, high = f(scale.low), f(scale.high)
    return min(1.0, max(0.0, (f(value) - low) / (high - low)))


def scale_colour(scale: ValueScale, value: Any) -> str | None:
    """The colour of `value` on `scale` (None for a value that is not a number)."""
    v = _number(value)
    if v is None or (scale.log and v <= 0):
        return None
    a, b = SEQUENTIAL_SPAN
    return str(sample_colorscale(SEQUENTIAL, [a + (b - a) * _unit(scale, v)])[0])


def colour_bar(scale: ValueScale) -> go.Scatter:
    """An invisible trace whose only mark is the colour bar of `scale`, below the plot."""
    a, b = SEQUENTIAL_SPAN
    stops = sample_colorscale(SEQUENTIAL, [a + (b - a) * i / 10 for i in range(11)])
    # Every value gets a tick unless it would crowd the last one (a label is up to ~12% of
    # the bar).
    ticks = [scale.values[0]]
    for v in scale.values[1:]:
        if _unit(scale, v) - _unit(scale, ticks[-1]) >= 0.15:
            ticks.append(v)
    if ticks[-1] != scale.high:
        ticks[-1] = scale.high  # the highest value always gets one, in place of the crowded
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker={
            "color": [0.0],
            "colorscale": [[i / 10, c] for i, c in enumerate(stops)],
            "cmin": 0.0,
            "cmax": 1.0,
            "showscale": True,
            "colorbar": {
                "title": {"text": f"colour: {scale.param}", "side": "top"},
                "orientation": "h",
                "x": 0.0,
                "xanchor": "left",
                "y": -0.3,
                "yanchor": "top",
                "len": 0.45,
                "thickness": 12,
                "tickangle": 0,
                "tickvals": [_unit(scale, v) for v in ticks],
                "ticktext": [f"{v:.2g}" for v in ticks],
            },
        },
    )
