"""What the figures share: panels per pre-training objective, colours, the success region."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from results.candidates import Group
from results.labels import group_label, objective_label

# Above this many markers in one figure, WebGL keeps the page responsive (SVG draws one
# element per marker).
WEBGL_POINTS = 20_000
TEMPLATE = "plotly_white"
PALETTE: tuple[str, ...] = tuple(qualitative.Plotly) + tuple(qualitative.D3)
SUCCESS_FILL = "rgba(44, 160, 44, 0.12)"
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
