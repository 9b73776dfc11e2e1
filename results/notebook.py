"""The results store from a notebook: pandas DataFrames in, pandas DataFrames and Plotly
figures out.

`load` reads a store's epoch rows (what `read_epochs` returns, latest row per key, one row
per (sweep, trial, epoch), each trial's swept values as its `p_<name>` columns);
`frontiers` and `best_cleaned` are the Pareto frontiers and best cleaned models of
`results.pareto` and `results.best` as tables; the `plot_*` functions are the report's
figures (`results.plots`), each a `plotly.graph_objects.Figure` a notebook shows as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa

from results.best import DEFAULT_THRESHOLD
from results.candidates import DEFAULT_GROUP, candidates
from results.pareto import pareto_fronts
from results.plots import (
    frontiers_figure,
    frontiers_info,
    pretrain_figure,
    pretrain_info,
    scatter_figure,
    scatter_info,
    trajectories_figure,
    trajectories_info,
)
from results.report import load_report_data
from results.store import read_trials
from results.summary import csv_rows, summarize

Sweeps = str | Path | Sequence[str | Path] | None


def _sweeps(sweep: Sweeps) -> list[str | Path] | None:
    if sweep is None:
        return None
    return [sweep] if isinstance(sweep, (str, Path)) else list(sweep)


def load(store: str | Path, sweep: Sweeps = None) -> pd.DataFrame:
    """The epoch rows of `sweep` (an id, a list of ids, or every sweep of `store`).

    One row per (sweep_id, trial_id, epoch), the latest written row winning (a retried trial
    reports an epoch again), sorted by those keys; the trial's swept values are its `p_<name>`
    columns (`p_lr`, ...; null where a stage does not sweep that name), and a row without an
    objective gets its trial's.
    """
    return load_report_data(store, _sweeps(sweep)).epochs.to_pandas()


def load_trials(store: str | Path, sweep: Sweeps = None) -> pd.DataFrame:
    """The trial rows of `sweep`: one per trial, its latest state (status, params, error)."""
    return read_trials(store, _sweeps(sweep), missing_ok=True).to_pandas()


def _table(df: pd.DataFrame | pa.Table) -> pa.Table:
    return df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)


def frontiers(
    df: pd.DataFrame, by: Sequence[str] = DEFAULT_GROUP, stage: str | None = "clean"
) -> pd.DataFrame:
    """Every group's Pareto frontier of (clean_acc up, asr down): one row per member model,
    with the group's columns, by group and ascending ASR (`results.pareto.pareto_fronts`)."""
    rows = [
        {**front.group.as_dict(), **asdict(member)}
        for front in pareto_fronts(_table(df), by, stage)
        for member in front.members
    ]
    columns = [*by, "sweep_id", "trial_id", "epoch", "clean_acc", "asr"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))


def best_cleaned(
    df: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, by: Sequence[str] = DEFAULT_GROUP
) -> pd.DataFrame:
    """Each group's best cleaned model: the highest accuracy with ASR <= `threshold`, its
    start, relative change (a fraction) and hypervolume: one row per group, the table of
    `sweeper report --csv` (`results.summary.csv_rows`, from `results.best.best_clean`)."""
    return pd.DataFrame(csv_rows(summarize(_table(df), threshold, by)))


def plot_scatter(
    df: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, by: Sequence[str] = DEFAULT_GROUP
) -> go.Figure:
    """Accuracy vs ASR of every cleaning epoch, each group's frontier and start model."""
    table = _table(df)
    cands = candidates(table, by, "clean")
    return scatter_figure(scatter_info(cands, summarize(table, threshold, by)))


def plot_frontiers(
    df: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD, by: Sequence[str] = DEFAULT_GROUP
) -> go.Figure:
    """Every group's frontier overlaid, one panel per objective, hypervolume in the legend."""
    return frontiers_figure(frontiers_info(summarize(_table(df), threshold, by)))


def plot_trajectories(
    df: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    by: Sequence[str] = DEFAULT_GROUP,
    per_group: int = 3,
) -> go.Figure:
    """Up to `per_group` cleaning trials per group, epoch by epoch (best oracle pick first)."""
    table = _table(df)
    summary = summarize(table, threshold, by)
    cands = candidates(table, by, "clean")
    return trajectories_figure(trajectories_info(cands, summary.trials, threshold, per_group))


def plot_pretrain(df: pd.DataFrame, trials: pd.DataFrame) -> go.Figure:
    """Accuracy and ASR per pre-training epoch, the selected checkpoint starred; `trials`
    from `load_trials` (it records which epoch the selection picked)."""
    return pretrain_figure(pretrain_info(_table(df), _table(trials)))
