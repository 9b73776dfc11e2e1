"""Part files: how rows land on disk atomically and how a directory of them is read back.

A part is a whole Parquet file named `part-<time_ns>-<pid>-<random>.parquet`, written under
a hidden temporary name (`.part-....tmp`) in the same directory and renamed into place, so a
reader lists only whole files and concurrent writers never collide. Names sort in write
order. `compact` merges small parts into one, so a sweep that appended one epoch at a time
stays quick to read; readers that lose a race with it simply list the directory again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from results.errors import DamagedPart, SchemaError, StoreError
from results.schema import PARAM_TYPES, Column, is_param, merged_type

PART_GLOB = "part-*.parquet"
# Parts at least this large are left alone by `compact` (they are merged ones already).
SMALL_PART_BYTES = 8 * 2**20
_READ_ATTEMPTS = 5


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {err.strerror}") from None


def write_part(directory: Path, table: pa.Table, after: str | None = None) -> Path:
    """Write `table` as a new part in `directory`; returns its path.

    `after` (a part's name) names the new part so that it sorts right after that one rather
    than at "now": a merged part takes the place of the parts it replaces.
    """
    # pid and a random suffix keep concurrent writers (also on other hosts) apart.
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if after:
        name = f"{after.removesuffix('.parquet')}~{token}.parquet"  # "~" sorts after "."
    else:
        name = f"part-{time.time_ns():020d}-{token}.parquet"
    path = directory / name
    tmp = directory / f".{name}.tmp"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write part file {path}: {err.strerror}") from None
    return path


def list_parts(directory: Path) -> list[Path]:
    """The part files of `directory` in write order (temporary files are never listed)."""
    return sorted(directory.glob(PART_GLOB))


def read_dirs(dirs: Sequence[Path], columns: Sequence[Column]) -> pa.Table:
    """All rows of the part files in `dirs`, in write order, columns unified.

    Raises `StoreError` for a directory without parts or parts without rows.
    """
    for attempt in range(_READ_ATTEMPTS):
        parts = []
        for d in dirs:
            found = list_parts(d)
            if not found:
                raise StoreError(
                    f"{d} has no part files: is this a sweeper store? expected "
                    f"<store>/<sweep_id>/{d.name}/part-*.parquet (an empty sweep has not "
                    "written any rows yet; wait for its first epoch or pick another sweep)"
                )
            parts.extend(found)
        try:
            tables = _read_all(parts, columns)
            break
        except FileNotFoundError:
            # A compaction replaced parts between listing and reading: list again.
            if attempt == _READ_ATTEMPTS - 1:
                raise StoreError(
                    f"part files in {', '.join(map(str, dirs))} kept vanishing while read; "
                    "is something deleting them? try again"
                ) from None
    if sum(t.num_rows for t in tables) == 0:
        where = ", ".join(str(d) for d in dirs)
        raise StoreError(f"{where}: part files hold no rows; the sweep has written nothing yet")
    return concat_unified(tables, parts, columns)


def _read_all(parts: Sequence[Path], columns: Sequence[Column]) -> list[pa.Table]:
    if len(parts) == 1:
        return [read_part(parts[0], columns)]
    with ThreadPoolExecutor(max_workers=min(8, len(parts))) as pool:
        return list(pool.map(lambda p: read_part(p, columns), parts))


def read_part(path: Path, columns: Sequence[Column]) -> pa.Table:
    """One part file, checked for the required columns (FileNotFoundError passes through)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowInvalid) as err:
        raise DamagedPart(
            f"damaged part file {path}: {err}; it is not a whole Parquet file. Move it out "
            "of the store (the rows it held are lost; `sweeper resume` runs their trials "
            "again) or restore it from a backup",
            str(path),
        ) from None
    for col in columns:
        if not col.required:
            continue
        if col.name not in table.column_names:
            raise SchemaError(
                f"part file {path} lacks the required column {col.name!r}; write rows with "
                "results.store.StoreWriter, or add the column (schema: results.store.EPOCH_COLUMNS)"
            )
        if table[col.name].null_count:
            raise SchemaError(
                f"part file {path}: required column {col.name!r} has "
                f"{table[col.name].null_count} null values; every row needs one"
            )
    return table


def concat_unified(
    tables: Sequence[pa.Table],
    paths: Sequence[Path],
    columns: Sequence[Column],
    params: Mapping[str, str] | None = None,
) -> pa.Table:
    """One table: base columns in their order and types, then `p_` columns, then the rest.

    Parts may differ (stores written before a sweep declared its columns): a column missing
    from a part is null there, and a `p_` column's types are merged. `params`, a sweep's
    declared `p_` columns, adds every one of them in its declared type, so a merged part
    has the schema of the sweep's appended ones.
    """
    base = {c.name: c for c in columns}
    seen: dict[str, list[pa.DataType]] = {n: [PARAM_TYPES[t]] for n, t in (params or {}).items()}
    for t in tables:
        for f in t.schema:
            seen.setdefault(f.name, []).append(f.type)
    # Columns a newer writer added are kept, so an older reader drops no data.
    extra = sorted((n for n in seen if n not in base), key=lambda n: (not is_param(n), n))
    # Nullability as the writer's: a merged part has the schema of the parts it replaces.
    fields = [pa.field(c.name, c.type, nullable=not c.required) for c in columns]
    for n in extra:
        declared = (params or {}).get(n)
        fields.append(pa.field(n, PARAM_TYPES[declared] if declared else merged_type(n, seen[n])))
    schema = pa.schema(fields)
    # Conform once per distinct file schema (usually one), not once per file.
    by_schema: dict[pa.Schema, list[int]] = {}
    for i, t in enumerate(tables):
        by_schema.setdefault(t.schema, []).append(i)
    out: list[pa.Table | None] = [None] * len(tables)
    for idx in by_schema.values():
        same = pa.concat_tables([tables[i] for i in idx])
        conformed = _conform(same, schema, paths[idx[0]])
        offsets = np.cumsum([0] + [tables[i].num_rows for i in idx])
        for k, i in enumerate(idx):
            out[i] = conformed.slice(int(offsets[k]), tables[i].num_rows)
    return pa.concat_tables(out)  # type: ignore[arg-type]


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, field.type))
            continue
        col = table[field.name]
        try:
            arrays.append(col.cast(field.type) if col.type != field.type else col)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
            raise SchemaError(
                f"part file {path}: column {field.name!r} is {col.type}, expected "
                f"{field.type} ({err}); rewrite the file with the store's types"
            ) from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _sorted_codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a string column that sort like the strings."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    values = encoded.dictionary.to_numpy(zero_copy_only=False)
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(len(values))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)]


def latest_per_key(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """One row per key, the latest `written_at` (then the later row) winning; sorted by key."""
    n = table.num_rows
    if n == 0:
        return table
    codes = [
        _sorted_codes(table[k]) if pa.types.is_string(table[k].type) else table[k].to_numpy()
        for k in key
    ]
    # Null written_at (a foreign writer) counts as older than any real time.
    written = pc.fill_null(table["written_at"].cast(pa.int64()), np.iinfo(np.int64).min)
    # np.lexsort sorts by its last key first: key columns, then time, then file/row order.
    order = np.lexsort((np.arange(n), written.to_numpy(), *reversed(codes)))
    # A row is its key's winner when the next row (in that order) has another key.
    last = np.ones(n, dtype=bool)
    last[:-1] = False
    for c in codes:
        s = c[order]
        last[:-1] |= s[1:] != s[:-1]
    return table.take(pa.array(order[last]))


def compact(
    directory: Path,
    columns: Sequence[Column],
    min_parts: int = 2,
    params: Mapping[str, str] | None = None,
) -> int:
    """Merge the small parts of `directory` into one; returns how many parts were merged.

    Safe with writers appending and readers reading at the same time: the merged part is
    renamed into place before the parts it holds are deleted, so a reader sees every row
    at least once (the reader keeps one row per key) and a reader whose file vanished lists
    the directory again. Rows are kept as written, superseded ones included. `params` (the
    sweep's declared `p_` columns) gives the merged part the sweep's one schema, also when
    the parts it merges were written before the sweep declared it.
    """
    parts = [p for p in list_parts(directory) if _size(p) < SMALL_PART_BYTES]
    if len(parts) < min_parts:
        return 0
    try:
        tables = _read_all(parts, columns)
    except FileNotFoundError:
        return 0  # another compaction got there first
    merged = concat_unified(tables, parts, columns, params)
    write_part(directory, merged, after=parts[-1].name)
    for p in parts:
        p.unlink(missing_ok=True)
    return len(parts)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return SMALL_PART_BYTES
