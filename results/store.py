"""The Parquet results store: atomic appends by many writers, one-row-per-key reads.

Layout (shared/DESIGN.md)::

    <store>/<sweep_id>/spec.yaml
    <store>/<sweep_id>/schema.json              the sweep's declared p_ columns and types
    <store>/<sweep_id>/epochs/part-*.parquet    one row per (trial, epoch)
    <store>/<sweep_id>/trials/part-*.parquet    one row per trial state change
    <store>/<sweep_id>/checkpoints/

Rows are only ever appended. Each append is one new part file, written under a hidden
temporary name in the same directory and renamed into place, so a reader lists only whole
files and can read while sweeps are writing (results.parts). For each key the row with the
latest `written_at` is the truth (ties: the later part file, then the later row). Small
parts are merged now and then (`StoreWriter.compact`, `compact_sweep`) so that a sweep
reported one epoch at a time stays quick to read.

A sweep declares its `p_` columns when it starts (`StoreWriter(..., params=...)`, kept in
`schema.json`): every epochs part then holds every declared column in its one type, so
pandas, DuckDB and Polars read `<sweep>/epochs/*.parquet` with their defaults and keep them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from results.errors import SchemaError, StoreError
from results.parts import (
    PART_GLOB,
    atomic_write,
    compact,
    latest_per_key,
    read_dirs,
    write_part,
)
from results.pruned import null_pruned
from results.schema import (
    EPOCH_COLUMNS,
    EPOCH_KEY,
    TRIAL_COLUMNS,
    TRIAL_KEY,
    Column,
    check_declared,
    rows_to_table,
    validate_sweep_id,
)

__all__ = [
    "EPOCH_COLUMNS",
    "TRIAL_COLUMNS",
    "StoreWriter",
    "compact_sweep",
    "list_sweeps",
    "read_epochs",
    "read_epochs_df",
    "read_trials",
    "read_declared",
    "read_trials_df",
    "resolve_sweeps",
]

_LAYOUT = "<store>/<sweep_id>/epochs/part-*.parquet"
SCHEMA_FILE = "schema.json"


class StoreWriter:
    """Appends rows of one sweep to the store; safe to use from many processes at once."""

    def __init__(
        self,
        store: str | Path,
        sweep_id: str,
        *,
        compact_every: int | None = 500,
        params: Mapping[str, str] | None = None,
    ) -> None:
        """`compact_every`: merge the sweep's small parts after this many appends (None: never),
        so a sweep reported one epoch at a time does not leave thousands of files to read.

        `params`: the sweep's `p_` columns and their types ("double", "string", "bool"; see
        `results.schema.param_kind`), declared before its first row and kept in
        `schema.json`; a writer opened later on the sweep (resume, compaction) reads it
        from there. Declaring again adds columns; a column keeps its first type.
        """
        self._sweep_id = validate_sweep_id(sweep_id)
        self._compact_every = compact_every
        self._appends = 0
        self._dir = Path(store) / sweep_id
        self._host = socket.gethostname()
        try:
            for sub in ("epochs", "trials", "checkpoints"):
                (self._dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create sweep directory {self._dir}: {err.strerror}; pass a writable "
                "store directory"
            ) from None
        self._params = self._declare(params)

    def _declare(self, params: Mapping[str, str] | None) -> dict[str, str] | None:
        stored = read_declared(self._dir)
        if params is None:
            return stored
        given = check_declared(params, f"parameter columns declared for {self._sweep_id}")
        if stored is None:
            merged = given
        else:
            clash = sorted(n for n in given.keys() & stored.keys() if given[n] != stored[n])
            if clash:
                raise SchemaError(
                    f"{self._dir / SCHEMA_FILE} declares "
                    + ", ".join(f"{n} as {stored[n]}" for n in clash)
                    + f", now declared as {', '.join(given[n] for n in clash)}: a column "
                    "keeps one type for the whole sweep; start a new sweep for other types"
                )
            merged = {**stored, **given}
            if merged == stored:
                return stored
        text = json.dumps({"epochs": dict(sorted(merged.items()))}, indent=2) + "\n"
        atomic_write(self._dir / SCHEMA_FILE, text.encode("utf-8"))
        return merged

    @property
    def sweep_id(self) -> str:
        return self._sweep_id

    @property
    def params(self) -> dict[str, str] | None:
        """The sweep's declared `p_` columns and types (None: undeclared, inferred per part)."""
        return None if self._params is None else dict(self._params)

    @property
    def sweep_dir(self) -> Path:
        return self._dir

    @property
    def checkpoints_dir(self) -> Path:
        return self._dir / "checkpoints"

    def write_spec(self, text: str) -> None:
        """Write the resolved search space as `spec.yaml`, replacing any earlier one atomically."""
        atomic_write(self._dir / "spec.yaml", text.encode("utf-8"))

    def append_epochs(self, rows: Sequence[Mapping[str, Any]]) -> Path | None:
        """Append epoch rows as one new part file; returns its path (None for no rows)."""
        return self._append(rows, EPOCH_COLUMNS, "epochs", self._params)

    def append_trials(self, rows: Sequence[Mapping[str, Any]]) -> Path | None:
        """Append trial state rows as one new part file; returns its path (None for no rows)."""
        return self._append(rows, TRIAL_COLUMNS, "trials")

    def _append(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[Column],
        kind: str,
        params: Mapping[str, str] | None = None,
    ) -> Path | None:
        if not rows:
            return None
        now = datetime.now(timezone.utc)
        completed = [self._complete(row, i, now, kind) for i, row in enumerate(rows)]
        path = write_part(self._dir / kind, rows_to_table(completed, columns, kind, params))
        self._appends += 1
        if self._compact_every and self._appends % self._compact_every == 0:
            self.compact()
        return path

    def compact(self) -> int:
        """Merge this sweep's small part files (any writer's); returns how many were merged."""
        return compact(self._dir / "epochs", EPOCH_COLUMNS, params=self._params) + compact(
            self._dir / "trials", TRIAL_COLUMNS
        )

    def _complete(self, row: Mapping[str, Any], i: int, now: datetime, kind: str) -> dict[str, Any]:
        out = dict(row)
        given = out.get("sweep_id")
        if given is not None and given != self._sweep_id:
            raise SchemaError(
                f"{kind} row {i}: sweep_id {given!r} differs from this writer's sweep "
                f"{self._sweep_id!r}; use one StoreWriter per sweep"
            )
        out["sweep_id"] = self._sweep_id
        if out.get("written_at") is None:
            out["written_at"] = now
        if out.get("host") is None:
            out["host"] = self._host
        return out


# ---------------------------------------------------------------- finding sweeps


def _is_sweep_dir(path: Path) -> bool:
    return (path / "epochs").is_dir() or (path / "trials").is_dir()


def _check_store(store: Path) -> None:
    if not store.is_dir():
        what = "is a file, not a directory" if store.exists() else "does not exist"
        raise StoreError(
            f"store directory {store} {what}: pass the directory that holds the "
            f"sweeps (--store DIR, default ./sweeps), laid out as {_LAYOUT}"
        )


def list_sweeps(store: str | Path) -> list[str]:
    """Sorted ids of the sweeps in `store` (directories with an `epochs` or `trials` folder)."""
    root = Path(store)
    _check_store(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _is_sweep_dir(p))


def resolve_sweeps(store: str | Path, sweeps: Sequence[str | Path] | None = None) -> list[Path]:
    """Directories of the given sweeps: ids in `store`, or paths to sweep directories."""
    root = Path(store)
    if sweeps is None:
        ids = list_sweeps(root)
        if not ids:
            raise StoreError(f"{root} holds no sweeps: is this a sweeper store? expected {_LAYOUT}")
        return [root / s for s in ids]
    if not sweeps:
        raise StoreError("no sweeps given: name at least one sweep id or sweep directory")
    return [_resolve_one(root, s) for s in sweeps]


def _resolve_one(root: Path, sweep: str | Path) -> Path:
    path = Path(sweep)
    if path.is_dir() and _is_sweep_dir(path):
        return path
    if path.is_dir() and any(_is_sweep_dir(p) for p in path.iterdir() if p.is_dir()):
        raise StoreError(
            f"{path} is a store, not a sweep: pass --store {path} and a sweep id "
            f"({', '.join(list_sweeps(path))})"
        )
    if isinstance(sweep, str) and path.parts == (sweep,):
        candidate = root / sweep
        if candidate.is_dir() and _is_sweep_dir(candidate):
            return candidate
        _check_store(root)
        known = list_sweeps(root)
        raise StoreError(
            f"no sweep {sweep!r} in store {root} (sweeps there: "
            f"{', '.join(known) if known else 'none'}); pass a sweep id from that list, "
            "another --store, or a path to a sweep directory"
        )
    if path.is_dir():
        raise StoreError(
            f"{path} is not a sweep directory: is this a sweeper store? expected {_LAYOUT}"
        )
    raise StoreError(f"no sweep directory at {path}: pass a sweep id or an existing sweep path")


# ---------------------------------------------------------------- reading


def read_epochs(
    store: str | Path, sweeps: Sequence[str | Path] | None = None, *, missing_ok: bool = False
) -> pa.Table:
    """Epoch rows of the sweeps (all in `store` when None): one row per (sweep, trial, epoch).

    Rows are sorted by sweep_id, trial_id, epoch; the latest `written_at` wins per key; a
    checkpoint the sweep's retention deleted reads as null (`results.pruned`). With
    `missing_ok`, sweeps that have written no epoch rows yet give an empty table instead of
    an error; a damaged part file is an error either way.
    """
    dirs = resolve_sweeps(store, sweeps)
    if missing_ok:
        dirs = [d for d in dirs if any((d / "epochs").glob(PART_GLOB))]
        if not dirs:
            return empty_table(EPOCH_COLUMNS)
    table = latest_per_key(read_dirs([d / "epochs" for d in dirs], EPOCH_COLUMNS), EPOCH_KEY)
    return null_pruned(table, dirs)


def read_trials(
    store: str | Path, sweeps: Sequence[str | Path] | None = None, *, missing_ok: bool = False
) -> pa.Table:
    """Trial rows of the sweeps: one row per (sweep, trial), the latest `written_at` winning.

    With `missing_ok`, sweeps without trial rows give an empty table instead of an error.
    """
    dirs = resolve_sweeps(store, sweeps)
    if missing_ok:
        dirs = [d for d in dirs if any((d / "trials").glob(PART_GLOB))]
        if not dirs:
            return empty_table(TRIAL_COLUMNS)
    return latest_per_key(read_dirs([d / "trials" for d in dirs], TRIAL_COLUMNS), TRIAL_KEY)


def read_epochs_df(store: str | Path, sweeps: Sequence[str | Path] | None = None) -> Any:
    """`read_epochs` as a pandas DataFrame."""
    return read_epochs(store, sweeps).to_pandas()


def read_trials_df(store: str | Path, sweeps: Sequence[str | Path] | None = None) -> Any:
    """`read_trials` as a pandas DataFrame."""
    return read_trials(store, sweeps).to_pandas()


def empty_table(columns: Sequence[Column]) -> pa.Table:
    """A table with the base columns and no rows."""
    return pa.schema([(c.name, c.type) for c in columns]).empty_table()


def compact_sweep(store: str | Path, sweep: str | Path) -> int:
    """Merge the small part files of one sweep (safe while it is written and read)."""
    (path,) = resolve_sweeps(store, [sweep])
    params = read_declared(path)
    return compact(path / "epochs", EPOCH_COLUMNS, params=params) + compact(
        path / "trials", TRIAL_COLUMNS
    )


def read_declared(sweep_dir: str | Path) -> dict[str, str] | None:
    """The `p_` columns a sweep declared (its `schema.json`); None for a sweep without one."""
    path = Path(sweep_dir) / SCHEMA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise StoreError(
            f"cannot read {path}: {err}; it declares the sweep's parameter columns. Restore "
            "it, or delete it (new parts then infer their types, as before it existed)"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("epochs"), dict):
        raise StoreError(f'{path} is not {{"epochs": {{"p_<name>": type}}}}: restore or delete it')
    try:
        return check_declared(data["epochs"], str(path))
    except SchemaError as err:
        raise StoreError(f"{err}; restore or delete {path}") from None
