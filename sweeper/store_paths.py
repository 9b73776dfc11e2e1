"""Paths inside the results store are recorded relative to the store's root.

A store that is moved or copied then finds its own checkpoints and caches, and resuming a
copy never writes into the original. Paths outside the store (a user's start checkpoint)
stay absolute.
"""

from __future__ import annotations

import os
from pathlib import Path


def in_store(path: str | os.PathLike[str] | None, store_root: Path) -> str | None:
    """`path` relative to `store_root` when it lies inside it, else unchanged."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    try:
        return p.resolve().relative_to(store_root.resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve(path: str | None, store_root: Path) -> str | None:
    """The absolute path of a recorded `path` (relative ones are inside `store_root`)."""
    if path is None:
        return None
    p = Path(path)
    return str(p if p.is_absolute() else store_root / p)
