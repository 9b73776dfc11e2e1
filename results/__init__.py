"""results: the Parquet results store and the analyses and reports that read it.

Imports pyarrow, numpy, plotly and pandas only (never torch or ray), so a laptop can analyse
a cluster's store. Names are loaded on first use, so `import results.errors` (which every
CLI command does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "results.best": ("BestClean", "Candidate", "StartPoint", "best_clean"),
    "results.candidates": ("DEFAULT_GROUP", "Candidates", "Group", "candidates"),
    "results.errors": ("AnalysisError", "ResultsError", "SchemaError", "StoreError"),
    "results.hypervolume": ("hypervolume", "hypervolumes"),
    "results.notebook": (
        "best_cleaned",
        "frontiers",
        "load",
        "load_trials",
        "plot_frontiers",
        "plot_pretrain",
        "plot_scatter",
        "plot_trajectories",
    ),
    "results.pareto": ("Frontier", "FrontierMember", "pareto_fronts", "pareto_indices"),
    "results.report": ("build_report", "load_report_data", "render_html", "write_report"),
    "results.stopping": (
        "GroupStopping",
        "TrialStopping",
        "stopping_analysis",
        "summarize_stopping",
    ),
    "results.store": (
        "EPOCH_COLUMNS",
        "TRIAL_COLUMNS",
        "StoreWriter",
        "list_sweeps",
        "read_epochs",
        "read_epochs_df",
        "read_trials",
        "read_trials_df",
    ),
    "results.summary": ("Summary", "summarize", "summary_json", "write_csv"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'results' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return __all__
