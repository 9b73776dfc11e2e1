"""Search efficiency: the hypervolume of the frontier found so far against the cost spent, one
line per sweep and stage. A grid, an Optuna search and an early-stopping scheduler (one that
stops a trial saves its remaining epochs) are compared by how fast their lines rise.

The cost of a clean stage is its training epochs (each epoch >= 1 row: a trained epoch and
a candidate); a screen trains nothing, so its cost is the perturbed models it evaluated
(each epoch-0 row but the unperturbed `-origin` one). Rows count in the order the driver
wrote them (`written_at`), which is the order the sweep found them.
"""

from __future__ import annotations

import bisect
from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from results.best import ORIGIN_SUFFIX
from results.hypervolume import IDEAL, REFERENCE
from results.plots._style import colours, ordered, panel_grid

STAGES = ("clean", "screen")
COST = {"clean": "training epochs", "screen": "models evaluated"}


class EfficiencyCurve(NamedTuple):
    sweep_id: str
    stage: str
    cost: tuple[int, ...]  # the cost spent when the hypervolume changed, then the total
    hypervolume: tuple[float, ...]
    total_cost: int
    n_trials: int


class SearchEfficiencyInfo(NamedTuple):
    stages: tuple[str, ...]
    curves: tuple[EfficiencyCurve, ...]


class _Staircase:
    """A growing frontier and its hypervolume (`results.hypervolume`'s definition), updated
    point by point: the frontier is kept sorted by ASR, along which accuracy rises."""

    def __init__(self) -> None:
        self.asr: list[float] = []
        self.acc: list[float] = []
        self.value = 0.0
        self.ref_acc, self.ref_asr = REFERENCE
        self.box = (IDEAL[0] - self.ref_acc) * (self.ref_asr - IDEAL[1])

    def add(self, acc: float, asr: float) -> bool:
        """Take one point; whether the hypervolume grew."""
        if not (acc > self.ref_acc and asr < self.ref_asr):
            return False
        j = bisect.bisect_right(self.asr, asr)
        if j > 0 and self.acc[j - 1] >= acc:
            return False  # a point at most as attacked is at least as accurate
        # Those at least as attacked and at most as accurate are dominated now: from the
        # first of equal ASR (all less accurate, or the point were dominated) onward.
        i = k = bisect.bisect_left(self.asr, asr)
        while k < len(self.asr) and self.acc[k] <= acc:
            k += 1
        self.asr[i:k] = [asr]
        self.acc[i:k] = [acc]
        heights = np.diff(np.r_[self.ref_acc, self.acc])
        self.value = float(np.sum(heights * (self.ref_asr - np.asarray(self.asr)))) / self.box
        return True


def _curve(sweep: str, stage: str, acc: np.ndarray, asr: np.ndarray, trials: int) -> Any:
    stair = _Staircase()
    add = stair.add
    cost: list[int] = []
    hv: list[float] = []
    for i, (a, s) in enumerate(zip(acc.tolist(), asr.tolist(), strict=True), start=1):
        if add(a, s):
            cost.append(i)
            hv.append(stair.value)
    if not cost or cost[-1] != len(acc):
        cost.append(len(acc))
        hv.append(stair.value)
    return EfficiencyCurve(sweep, stage, tuple(cost), tuple(hv), len(acc), trials)


def search_efficiency_info(epochs: pa.Table) -> SearchEfficiencyInfo:
    """One curve per (sweep, stage) among the clean and screen stages with candidates."""
    need = ["sweep_id", "stage", "trial_id", "epoch", "clean_acc", "asr", "written_at"]
    if epochs.num_rows == 0 or any(c not in epochs.column_names for c in need):
        return SearchEfficiencyInfo((), ())
    table = epochs.select(need).filter(pc.is_in(epochs["stage"], pa.array(STAGES)))
    table = table.sort_by([("written_at", "ascending"), ("trial_id", "ascending")])
    epoch = table["epoch"].to_numpy(zero_copy_only=False)
    acc = table["clean_acc"].to_numpy(zero_copy_only=False).astype(float)
    asr = table["asr"].to_numpy(zero_copy_only=False).astype(float)
    finite = np.isfinite(acc) & np.isfinite(asr)
    origin = pc.ends_with(table["trial_id"], ORIGIN_SUFFIX).to_numpy(zero_copy_only=False)
    # What a unit of each stage's cost is (and a candidate of it), see the module doc.
    costs = {"clean": finite & (epoch >= 1), "screen": finite & (epoch == 0) & ~origin}
    curves = []
    for name in pc.unique(table["sweep_id"]).to_pylist():
        of_sweep = pc.equal(table["sweep_id"], name)
        for st in STAGES:
            mask = pc.and_(of_sweep, pc.equal(table["stage"], st)).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(mask & costs[st])
            if rows.size:
                n_trials = pc.count_distinct(table["trial_id"].take(rows)).as_py()
                curves.append(_curve(name, st, acc[rows], asr[rows], n_trials))
    return SearchEfficiencyInfo(ordered(c.stage for c in curves), tuple(curves))


def search_efficiency_figure(info: SearchEfficiencyInfo) -> go.Figure:
    """Render `search_efficiency_info`: one panel per stage, a step line per sweep."""
    titles = [f"{s}: hypervolume vs {COST[s]}" for s in info.stages]
    fig = panel_grid(titles, "cost spent", "hypervolume of the frontier so far")
    col_of = {s: i + 1 for i, s in enumerate(info.stages)}
    colour = colours([c.sweep_id for c in info.curves])
    for c in info.curves:
        fig.add_trace(
            go.Scatter(
                x=c.cost,
                y=c.hypervolume,
                # A step line without markers: a large sweep's curve stays light.
                mode="lines",
                line={"shape": "hv", "color": colour[c.sweep_id], "width": 2},
                name=f"{c.sweep_id} {c.stage} ({c.n_trials} trials, {c.total_cost} {COST[c.stage]})",
                legendgroup=c.sweep_id,
                hovertemplate=f"%{{x}} {COST[c.stage]}: hypervolume %{{y:.4f}}<extra></extra>",
            ),
            row=1,
            col=col_of[c.stage],
        )
    for stage, col in col_of.items():
        fig.update_xaxes(title_text=COST[stage], row=1, col=col)
    fig.update_layout(
        title="Search efficiency: hypervolume found against cost spent",
        # Below the panels: a legend entry names a whole sweep id.
        legend={"orientation": "h", "y": -0.25, "yanchor": "top"},
    )
    return fig
