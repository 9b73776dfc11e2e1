"""Accuracy and ASR per pre-training epoch (the paper's Figures 17-18), the checkpoint the
selection rule picked (`trials.selected_epoch`) marked with a star."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc
from plotly.subplots import make_subplots

from results.labels import objective_label
from results.plots._style import TEMPLATE, colours


class PretrainCurve(NamedTuple):
    name: str
    sweep_id: str
    trial_id: str
    epoch: np.ndarray
    clean_acc: np.ndarray
    asr: np.ndarray
    selected_epoch: int | None


class PretrainInfo(NamedTuple):
    curves: tuple[PretrainCurve, ...]


def _selected(trials: pa.Table) -> dict[tuple[str, str], int]:
    if trials.num_rows == 0 or "selected_epoch" not in trials.column_names:
        return {}
    rows = trials.select(["sweep_id", "trial_id", "selected_epoch"]).to_pylist()
    return {
        (r["sweep_id"], r["trial_id"]): int(r["selected_epoch"])
        for r in rows
        if r["selected_epoch"] is not None
    }


def pretrain_info(epochs: pa.Table, trials: pa.Table) -> PretrainInfo:
    """One curve per pre-training trial, in (sweep, trial) order; empty without such rows."""
    rows = epochs.filter(pc.equal(epochs["stage"], "pretrain"))
    if rows.num_rows == 0:
        return PretrainInfo(())
    selected = _selected(trials)
    objective = rows["objective"] if "objective" in rows.column_names else pa.nulls(rows.num_rows)
    # Pre-training rows carry the objective as their method too; prefer the objective column.
    label = pc.coalesce(objective.cast(pa.string()), rows["method"])
    data = rows.append_column("label_", label).sort_by(
        [("sweep_id", "ascending"), ("trial_id", "ascending"), ("epoch", "ascending")]
    )
    sweep = data["sweep_id"].to_numpy(zero_copy_only=False)
    trial = data["trial_id"].to_numpy(zero_copy_only=False)
    cut = np.flatnonzero(np.r_[True, (sweep[1:] != sweep[:-1]) | (trial[1:] != trial[:-1]), True])
    epoch = data["epoch"].to_numpy()
    acc = data["clean_acc"].cast(pa.float64()).to_numpy()
    asr = data["asr"].cast(pa.float64()).to_numpy()
    labels = data["label_"].to_pylist()
    # Name the sweep only when there are several, so one sweep's legend stays short.
    several = len(set(sweep.tolist())) > 1
    curves = []
    for a, b in zip(cut[:-1], cut[1:], strict=True):
        key = (str(sweep[a]), str(trial[a]))
        where = f" ({key[0]})" if several else ""
        curves.append(
            PretrainCurve(
                name=f"{objective_label(labels[a])}: {key[1]}{where}",
                sweep_id=key[0],
                trial_id=key[1],
                epoch=epoch[a:b],
                clean_acc=acc[a:b],
                asr=asr[a:b],
                selected_epoch=selected.get(key),
            )
        )
    return PretrainInfo(tuple(curves))


def pretrain_figure(info: PretrainInfo) -> go.Figure:
    """Render `pretrain_info`: accuracy above, ASR below, a shared epoch axis."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=["zero-shot accuracy", "attack success rate"],
    )
    colour = colours([c.name for c in info.curves])
    legend_done = False
    for c in info.curves:
        for row, values in ((1, c.clean_acc), (2, c.asr)):
            fig.add_trace(
                go.Scatter(
                    x=c.epoch,
                    y=values,
                    mode="lines+markers",
                    name=c.name,
                    legendgroup=c.name,
                    showlegend=row == 1,
                    line={"color": colour[c.name]},
                    marker={"size": 5},
                ),
                row=row,
                col=1,
            )
            hit = np.flatnonzero(c.epoch == c.selected_epoch)
            if hit.size:
                fig.add_trace(
                    go.Scatter(
                        x=[c.selected_epoch],
                        y=[values[hit[0]]],
                        mode="markers",
                        name="selected checkpoint",
                        legendgroup="selected",
                        showlegend=not legend_done,
                        marker={
                            "symbol": "star",
                            "size": 16,
                            "color": colour[c.name],
                            "line": {"width": 1, "color": "black"},
                        },
                        hovertemplate=f"selected: {c.name}, epoch %{{x}}<extra></extra>",
                    ),
                    row=row,
                    col=1,
                )
                legend_done = True
    fig.update_layout(
        template=TEMPLATE, height=620, title="Pre-training: accuracy and ASR per epoch"
    )
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="ASR (%)", row=2, col=1)
    fig.update_xaxes(title_text="pre-training epoch", row=2, col=1)
    return fig
