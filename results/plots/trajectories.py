"""Cleaning trajectories (the paper's Figure 5): successive epochs of a run joined, the marker
growing with the epoch, so a jagged path (an unstable run) is visible at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa

from results.candidates import Candidates
from results.plots._style import colours, mark_success, ordered, panel_grid, panel_of, series_name
from results.stopping import TrialStopping

MIN_SIZE, MAX_SIZE = 5.0, 18.0


class Trajectory(NamedTuple):
    panel: str
    name: str
    trial_id: str
    clean_acc: np.ndarray
    asr: np.ndarray
    epoch: np.ndarray
    size: np.ndarray
    jaggedness: float


class TrajectoriesInfo(NamedTuple):
    panels: tuple[str, ...]
    trajectories: tuple[Trajectory, ...]
    threshold: float


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


def trajectories_info(
    cands: Candidates, trials: Sequence[TrialStopping], threshold: float, per_group: int = 3
) -> TrajectoriesInfo:
    """Epoch-by-epoch paths (epoch 0 included) of a few trials of each group."""
    picked = _chosen(trials, per_group)
    want = {(t.sweep_id, t.trial_id): t for t in picked}
    # Rows are sorted by group, trial and epoch: each trial is one run of rows.
    starts = np.flatnonzero(np.r_[True, cands.trial[1:] != cands.trial[:-1]])
    ends = np.r_[starts[1:], cands.trial.size]
    names = cands.table.select(["sweep_id", "trial_id"]).take(pa.array(starts)).to_pydict()
    span = {
        key: (int(a), int(b))
        for key, a, b in zip(
            zip(names["sweep_id"], names["trial_id"], strict=True), starts, ends, strict=True
        )
        if key in want
    }
    finite = np.isfinite(cands.clean_acc) & np.isfinite(cands.asr)
    max_epoch = max(1, int(cands.epoch.max())) if cands.epoch.size else 1
    out = []
    for t in picked:
        rows = np.arange(*span[(t.sweep_id, t.trial_id)])
        rows = rows[finite[rows]]
        epoch = cands.epoch[rows]
        out.append(
            Trajectory(
                panel=panel_of(t.group),
                name=series_name(t.group),
                trial_id=t.trial_id,
                clean_acc=cands.clean_acc[rows],
                asr=cands.asr[rows],
                epoch=epoch,
                size=MIN_SIZE + (MAX_SIZE - MIN_SIZE) * epoch / max_epoch,
                jaggedness=want[(t.sweep_id, t.trial_id)].jaggedness,
            )
        )
    return TrajectoriesInfo(ordered(t.panel for t in out), tuple(out), threshold)


def trajectories_figure(info: TrajectoriesInfo) -> go.Figure:
    """Render `trajectories_info`."""
    fig = panel_grid(info.panels, "ASR (%)", "accuracy (%)")
    col_of = {p: i + 1 for i, p in enumerate(info.panels)}
    colour = colours([t.name for t in info.trajectories])
    for t in info.trajectories:
        fig.add_trace(
            go.Scatter(
                x=t.asr,
                y=t.clean_acc,
                mode="lines+markers",
                name=f"{t.name}: {t.trial_id}",
                legendgroup=t.name,
                line={"color": colour[t.name], "width": 1},
                marker={"size": t.size, "color": colour[t.name], "opacity": 0.8},
                customdata=t.epoch,
                hovertemplate=f"{t.trial_id} (jaggedness {t.jaggedness:.2f})<br>"
                "epoch %{customdata}: accuracy %{y:.2f}%, ASR %{x:.2f}%<extra></extra>",
            ),
            row=1,
            col=col_of[t.panel],
        )
    mark_success(fig, len(info.panels), info.threshold)
    fig.update_layout(title="Cleaning trajectories (marker size grows with the epoch)")
    return fig
