"""The report's figures. Each has a pure `*_info(...) -> NamedTuple` step, tested on its own,
and a `*_figure(info) -> go.Figure` render step."""

from results.plots.frontiers import frontiers_figure, frontiers_info
from results.plots.optuna import optuna_figure, optuna_info
from results.plots.pretrain import pretrain_figure, pretrain_info
from results.plots.scatter import scatter_figure, scatter_info
from results.plots.search_efficiency import search_efficiency_figure, search_efficiency_info
from results.plots.trajectories import trajectories_figure, trajectories_info

__all__ = [
    "frontiers_figure",
    "frontiers_info",
    "optuna_figure",
    "optuna_info",
    "pretrain_figure",
    "pretrain_info",
    "scatter_figure",
    "scatter_info",
    "search_efficiency_figure",
    "search_efficiency_info",
    "trajectories_figure",
    "trajectories_info",
]
