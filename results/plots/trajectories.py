"""Cleaning trajectories (the paper's Figure 5): successive epochs of a run joined, the marker
growing with the epoch, so a jagged path (an unstable run) is visible at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go

from results.candidates import Candidates
from results.labels import swept_names
from results.plots._style import (
    DASHES,
    PALETTE,
    ValueScale,
    colour_bar,
    mark_success,
    ordered,
    panel_grid,
    panel_of,
    scale_colour,
    value_scale,
)
from results.plots._trials import trial_labels, trial_spans
from results.stopping import TrialStopping

MIN_SIZE, MAX_SIZE = 5.0, 18.0
START_SYMBOL, START_SIZE = "diamond", 13.0


class Trajectory(NamedTuple):
    panel: str
    group: str  # the full group label: the legend section the trajectory is listed under
    trial_id: str
    label: str  # legend text: the trial's swept values ("lr=0.0001"), else its id
    value: Any  # the colour parameter's value (None without one)
    clean_acc: np.ndarray
    asr: np.ndarray
    epoch: np.ndarray
    size: np.ndarray
    jaggedness: float


class TrajectoriesInfo(NamedTuple):
    panels: tuple[str, ...]
    trajectories: tuple[Trajectory, ...]
    threshold: float
    # The swept parameter the colour shows: the numeric one with the most distinct values
    # among the drawn trials (None: no numeric value differs; one colour per trial then).
    scale: ValueScale | None


def _chosen(trials: Sequence[TrialStopping], per_group: int) -> list[TrialStopping]:
    """Per group the `per_group` trials with the best oracle pick, then the best last epoch."""
    by_group: dict[object, list[TrialStopping]] = {}
    for t in trials:
        by_group.setdefault(t.group, []).append(t)

    def rank(t: TrialStopping) -> tuple[float, float]:
        oracle = t.oracle.clean_acc if t.oracle is not None else -np.inf
        return (-oracle, -t.last.clean_acc)

    out = []
    for rows in by_group.values():
        out += sorted(rows, key=rank)[:per_group]
    return out


def colour_param(params: Sequence[dict[str, Any]], names: Sequence[str]) -> ValueScale | None:
    """The scale of the numeric swept parameter with the most distinct values (ties: the
    first name in order), or None when no numeric parameter differs between trials."""
    scales = [value_scale(n, (p.get(n) for p in params)) for n in names]
    found = [sc for sc in scales if sc is not None]
    return max(found, key=lambda sc: len(sc.values), default=None)


def trajectories_info(
    cands: Candidates, trials: Sequence[TrialStopping], threshold: float, per_group: int = 3
) -> TrajectoriesInfo:
    """Epoch-by-epoch paths (epoch 0 included) of a few trials of each group, each named by
    the values its trials were swept over."""
    picked = _chosen(trials, per_group)
    span = trial_spans(cands)
    finite = np.isfinite(cands.clean_acc) & np.isfinite(cands.asr)
    max_epoch = max(1, int(cands.epoch.max())) if cands.epoch.size else 1
    keys = [(t.sweep_id, t.trial_id) for t in picked]
    named = trial_labels(cands, keys, span, [t.group for t in picked])
    params = [p for _, p in named.values()]
    scale = colour_param(params, swept_names(params))
    out = []
    for t in picked:
        label, p = named[(t.sweep_id, t.trial_id)]
        rows = np.arange(*span[(t.sweep_id, t.trial_id)])
        rows = rows[finite[rows]]
        epoch = cands.epoch[rows]
        out.append(
            Trajectory(
                panel=panel_of(t.group),
                group=t.group.label,
                trial_id=t.trial_id,
                label=label,
                value=None if scale is None else p.get(scale.param),
                clean_acc=cands.clean_acc[rows],
                asr=cands.asr[rows],
                epoch=epoch,
                size=MIN_SIZE + (MAX_SIZE - MIN_SIZE) * epoch / max_epoch,
                jaggedness=t.jaggedness,
            )
        )
    return TrajectoriesInfo(ordered(t.panel for t in out), tuple(out), threshold, scale)


def _colours(info: TrajectoriesInfo) -> list[str]:
    """Each trajectory's colour: its value on the scale, else one palette colour each."""
    if info.scale is None:
        return [PALETTE[i % len(PALETTE)] for i in range(len(info.trajectories))]
    return [scale_colour(info.scale, t.value) or "#7f7f7f" for t in info.trajectories]


def _trace(t: Trajectory, colour: str, dash: str, first_of_group: bool, rank: int) -> go.Scatter:
    # Drawn from the last epoch back to the start: the path is the same, and the legend,
    # which shows a trace's first marker, shows a plain point rather than the start's symbol.
    back = slice(None, None, -1)
    start = t.epoch[back] == 0
    return go.Scatter(
        x=t.asr[back],
        y=t.clean_acc[back],
        mode="lines+markers",
        name=t.label,
        # One legend entry per trajectory (a click hides that trial only), listed under
        # its group's title, in the order of the colour scale.
        legendgroup=t.group,
        legendgrouptitle_text=t.group if first_of_group else None,
        legendrank=rank,
        line={"color": colour, "width": 1.5, "dash": dash},
        marker={
            "size": np.where(start, START_SIZE, t.size[back]),
            # The start model is shared by a group's trials: white, so no trial claims it.
            "color": np.where(start, "white", colour).tolist(),
            "opacity": 0.85,
            "symbol": np.where(start, START_SYMBOL, "circle").tolist(),
            "line": {"width": np.where(start, 1.5, 0.0), "color": "black"},
        },
        customdata=t.epoch[back],
        hovertemplate=f"{t.label} · {t.group}<br>trial {t.trial_id} "
        f"(jaggedness {t.jaggedness:.2f})<br>"
        "epoch %{customdata}: accuracy %{y:.2f}%, ASR %{x:.2f}%<extra></extra>",
    )


def _ranks(info: TrajectoriesInfo) -> list[int]:
    """Legend order: groups as drawn, within a group by the colour parameter's value."""
    groups = ordered(t.group for t in info.trajectories)

    def key(i: int) -> tuple[int, float, int]:
        t = info.trajectories[i]
        v = t.value if isinstance(t.value, (int, float)) and not isinstance(t.value, bool) else 0
        return (groups.index(t.group), float(v), i)

    order = sorted(range(len(info.trajectories)), key=key)
    rank = [0] * len(order)
    for r, i in enumerate(order):
        rank[i] = 1000 + r  # plotly's default rank is 1000: keep ours after any others
    return rank


def trajectories_figure(info: TrajectoriesInfo) -> go.Figure:
    """Render `trajectories_info`."""
    fig = panel_grid(info.panels, "ASR (%)", "accuracy (%)")
    col_of = {p: i + 1 for i, p in enumerate(info.panels)}
    # Groups that share a panel (several sweeps or methods) differ by line style.
    dash: dict[str, str] = {}
    in_panel: dict[str, int] = {}
    for t in info.trajectories:
        if t.group not in dash:
            n = in_panel.get(t.panel, 0)
            dash[t.group], in_panel[t.panel] = DASHES[n % len(DASHES)], n + 1
    seen: set[str] = set()
    for t, colour, rank in zip(info.trajectories, _colours(info), _ranks(info), strict=True):
        trace = _trace(t, colour, dash[t.group], t.group not in seen, rank)
        fig.add_trace(trace, row=1, col=col_of[t.panel])
        seen.add(t.group)
    if info.scale is not None:
        fig.add_trace(colour_bar(info.scale))
    mark_success(fig, len(info.panels), info.threshold)
    fig.update_layout(
        title="Cleaning trajectories (◇ the start model, epoch 0; markers grow with the epoch)",
        legend={"groupclick": "toggleitem"},
        margin={"b": 150},
        # Tall enough for the legend (a line per trial, two per group title) to show whole,
        # up to a screen's height; beyond that the legend scrolls.
        height=min(1200, max(520, 200 + 20 * (len(info.trajectories) + 2 * len(seen)))),
    )
    return fig
