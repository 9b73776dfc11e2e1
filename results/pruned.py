"""Checkpoints a sweep's retention policy deleted: `<sweep>/pruned.json`.

The epoch rows keep the path each trial recorded (rows are never edited); this file lists
the ones whose file was deleted, and `results.store.read_epochs` returns those rows with
`checkpoint` null, so nothing that reads the store (the report, `status`, the summary)
points at a file that is gone. The driver records a checkpoint here before deleting it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from results.errors import StoreError
from results.parts import atomic_write

PRUNED_FILE = "pruned.json"


def read_pruned(sweep_dir: str | Path) -> set[str]:
    """The checkpoints (store-relative paths, as the rows hold them) pruned from a sweep."""
    path = Path(sweep_dir) / PRUNED_FILE
    if not path.is_file():
        return set()
    try:
        data = json.loads(path.read_text())
        return {str(p) for p in data["pruned"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StoreError(
            f"{path} is damaged ({err}): it lists the checkpoints retention deleted; restore "
            "it, or delete it (rows of deleted checkpoints then show paths that are gone)"
        ) from None


def mark_pruned(sweep_dir: str | Path, checkpoints: Iterable[str]) -> None:
    """Add `checkpoints` to the sweep's list (written whole, atomically)."""
    merged = read_pruned(sweep_dir) | set(checkpoints)
    text = json.dumps({"pruned": sorted(merged)}, indent=0) + "\n"
    atomic_write(Path(sweep_dir) / PRUNED_FILE, text.encode("utf-8"))


def null_pruned(table: pa.Table, sweep_dirs: Iterable[Path]) -> pa.Table:
    """`table` with `checkpoint` null in the rows of pruned checkpoints of its sweeps."""
    pruned: set[str] = set()
    for d in sweep_dirs:
        pruned |= read_pruned(d)
    if not pruned or "checkpoint" not in table.column_names:
        return table
    col = table.column("checkpoint")
    gone = pc.fill_null(pc.is_in(col, value_set=pa.array(sorted(pruned), pa.string())), False)
    i = table.column_names.index("checkpoint")
    return table.set_column(i, "checkpoint", pc.if_else(gone, pa.scalar(None, pa.string()), col))
