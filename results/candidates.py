"""The rows an analysis looks at: one stage's epochs, grouped, as NumPy arrays.

Every analysis starts from `Candidates`: the epoch rows of one stage (the cleaning stage by
default), split into groups by some columns (sweep, pre-training objective and cleaning
method by default; any `p_` column may be added) and sorted by group, trial and epoch. Epoch
0 is the starting model, before any step: it is the reference for relative change and the
start of each trajectory, but not a candidate; every later epoch of every trial is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from results.errors import AnalysisError, SchemaError
from results.labels import group_label

# Methods whose rows are baselines beside the cleaning trials, never cleaned models
# (`bn_only`: BatchNorm re-estimated, no weight update; sweeper.payloads.bn_only_payloads):
# no candidate set, frontier or best model includes them.
BASELINE_METHODS = frozenset({"bn_only"})

DEFAULT_GROUP: tuple[str, ...] = ("sweep_id", "objective", "method")
_NEEDED = ("sweep_id", "trial_id", "stage", "epoch", "clean_acc", "asr")


@dataclass(frozen=True)
class Group:
    """The values of the grouping columns shared by a group's rows (None for null)."""

    by: tuple[str, ...]
    values: tuple[Any, ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self.by, self.values, strict=True))

    @property
    def label(self) -> str:
        return group_label(self.as_dict())


@dataclass(frozen=True, eq=False)
class Candidates:
    """One stage's epoch rows sorted by (group, trial, epoch), with their metric arrays.

    Group `g` holds rows `bounds[g]:bounds[g + 1]`; `trial` numbers the (sweep, trial) pairs
    in key order; `loss` is NaN where the row has none; `is_candidate` marks the rows that are
    candidate models: a cleaning epoch (>= 1) with both metrics.
    """

    table: pa.Table
    stage: str | None
    by: tuple[str, ...]
    groups: tuple[Group, ...]
    bounds: np.ndarray
    trial: np.ndarray
    epoch: np.ndarray
    clean_acc: np.ndarray
    asr: np.ndarray
    loss: np.ndarray
    is_candidate: np.ndarray

    def rows(self, g: int) -> np.ndarray:
        """Row numbers of group `g`."""
        return np.arange(self.bounds[g], self.bounds[g + 1])


def as_table(data: Any) -> pa.Table:
    """An Arrow table from an Arrow table or a pandas DataFrame."""
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise AnalysisError(
        f"expected a pyarrow Table or pandas DataFrame of epoch rows, got {type(data).__name__}"
        "; read one with results.store.read_epochs"
    )


def value_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Codes that sort like the values (null: -1) and the distinct values, in that order."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    dictionary = encoded.dictionary
    order = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[order] = np.arange(len(dictionary))
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    codes = np.full(len(indices), -1, dtype=np.int64)
    codes[valid] = rank[indices[valid].astype(np.int64)]
    return codes, dictionary.take(pa.array(order))


def _combined_codes(columns: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of the distinct tuples, in sorted order, and those tuples (one per row)."""
    if not columns:
        return np.zeros(n, dtype=np.int64), np.zeros((1 if n else 0, 0), dtype=np.int64)
    # Mixed-radix: codes run from -1 (null) to max, so shift by one and pack into one int64;
    # sorting ints is far faster than np.unique(axis=0) on rows.
    radix = [int(c.max()) + 2 if c.size else 1 for c in columns]
    if float(np.prod(radix, dtype=float)) >= 2.0**62:
        unique, inverse = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
        return inverse.reshape(-1), unique
    packed = np.zeros(n, dtype=np.int64)
    for c, r in zip(columns, radix, strict=True):
        packed = packed * r + (c + 1)
    values, inverse = np.unique(packed, return_inverse=True)
    unique = np.empty((values.size, len(columns)), dtype=np.int64)
    for j in range(len(columns) - 1, -1, -1):
        values, unique[:, j] = np.divmod(values, radix[j])
        unique[:, j] -= 1
    return inverse.reshape(-1), unique


def check_columns(table: pa.Table, by: Sequence[str]) -> None:
    missing = [c for c in _NEEDED if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"epoch rows lack column(s) {', '.join(missing)}: read them with "
            "results.store.read_epochs, which checks every part file"
        )
    unknown = [c for c in by if c not in table.column_names]
    if unknown:
        params = [c for c in table.column_names if c.startswith("p_")]
        raise AnalysisError(
            f"cannot group by {', '.join(unknown)}: no such column; group by sweep_id, "
            f"objective, method, stage or a swept value ({', '.join(params) or 'none here'})"
        )


def _numeric(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = table[name]
    if dtype is float:
        col = col.cast(pa.float64())
    return np.asarray(col.to_numpy(), dtype=dtype)


def candidates(
    data: Any, by: Sequence[str] = DEFAULT_GROUP, stage: str | None = "clean"
) -> Candidates:
    """Group the epoch rows of `stage` (all stages for None) by the columns `by`.

    Given `Candidates` already, returns them as they are (`by` and `stage` are theirs).
    """
    if isinstance(data, Candidates):
        return data
    table = as_table(data)
    by = tuple(by)
    check_columns(table, by)
    if stage is not None:
        table = table.filter(pc.equal(table["stage"], stage))
    if stage == "clean" and "method" in table.column_names:
        baseline = pc.is_in(table["method"], pa.array(sorted(BASELINE_METHODS)))
        table = table.filter(pc.invert(pc.fill_null(baseline, False)))
    n = table.num_rows
    key_codes, key_values = [], []
    for name in by:
        codes, values = value_codes(table[name])
        key_codes.append(codes)
        key_values.append(values)
    group, unique = _combined_codes(key_codes, n)
    trial, _ = _combined_codes(
        [value_codes(table["sweep_id"])[0], value_codes(table["trial_id"])[0]], n
    )
    epoch = _numeric(table, "epoch", np.int64)
    order = np.lexsort((epoch, trial, group))
    groups = tuple(
        Group(by, tuple(None if c < 0 else key_values[j][int(c)].as_py() for j, c in enumerate(u)))
        for u in unique
    )
    group = group[order]
    bounds = np.searchsorted(group, np.arange(len(groups) + 1))
    table = table.take(pa.array(order))
    epoch = epoch[order]
    acc, asr = _numeric(table, "clean_acc", float), _numeric(table, "asr", float)
    return Candidates(
        table=table,
        stage=stage,
        by=by,
        groups=groups,
        bounds=bounds,
        trial=trial[order],
        epoch=epoch,
        clean_acc=acc,
        asr=asr,
        loss=_numeric(table, "loss", float),
        is_candidate=(epoch >= 1) & np.isfinite(acc) & np.isfinite(asr),
    )
