"""The pre-training cache: `<store>/.cache/pretrain/<config hash>/`, reused across sweeps.

A pre-training job whose config hash is cached is not run again: its epoch rows are copied
into the new sweep and its selected checkpoint is used. `done.json` records the rows and the
selected checkpoint with paths relative to the store (a copied or moved store works on its
own) and the checkpoint's sha256 (a cached model that changed since is refused). It is
written atomically, so a full disk can never leave a truncated one behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from results.errors import StoreError
from results.parts import atomic_write
from results.store import StoreWriter
from sweeper.errors import SweeperError
from sweeper.events import trial_row
from sweeper.payloads import sha256_of
from sweeper.plan import TrialPlan
from sweeper.store_paths import in_store, resolve

DONE = "done.json"


def use_cache(payloads: list[dict[str, Any]], writer: StoreWriter) -> list[dict[str, Any]]:
    """The payloads still to run; cached ones get their rows copied into this sweep."""
    todo = []
    root = writer.sweep_dir.parent
    for p in payloads:
        cache = Path(p["config"]["checkpoint_dir"])
        cached = _read_done(cache / DONE)
        if cached is None:
            todo.append(p)
            continue
        _check_hash(cached, cache, root)
        # The rows are this sweep's trial's: its own params, not the p_ columns of the
        # sweep that filled the cache (which this sweep may not declare).
        own = {f"p_{k}": v for k, v in p["params"].items()}
        rows = [
            {k: v for k, v in r.items() if not k.startswith("p_")}
            | own
            | {"sweep_id": writer.sweep_id, "trial_id": p["trial_id"], "checkpoint": _rel(r, root)}
            for r in cached["rows"]
        ]
        writer.append_epochs(rows)
        hit = {**p, "params": {**p["params"], "cache": "hit"}}
        writer.append_trials([trial_row(writer.sweep_id, hit, "completed", store_root=root)])
        print(f"[pretrain] {p['trial_id']}: reusing cached pre-training {cache}", flush=True)
    return todo


def _rel(row: dict[str, Any], root: Path) -> str | None:
    # Caches written before paths were relative hold absolute ones.
    return in_store(row.get("checkpoint"), root)


def _read_done(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and isinstance(cached.get("rows"), list):
            return cached
        why = "it holds no rows"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        why = str(err)
    # A damaged cache entry is a cache miss: the job runs again and rewrites it whole.
    print(f"[pretrain] ignoring damaged cache record {path} ({why}): pre-training again")
    return None


def _check_hash(cached: dict[str, Any], cache: Path, root: Path) -> None:
    selected = cached.get("selected") or {}
    want, ckpt = selected.get("sha256"), resolve(selected.get("checkpoint"), root)
    if not want or not ckpt:
        return  # a record from before hashes were kept
    have = sha256_of(ckpt)
    if have != want:
        state = "is missing" if have is None else f"has sha256 {have[:12]}…"
        raise SweeperError(
            f"cached pre-training checkpoint {ckpt} {state}, but {cache / DONE} recorded "
            f"sha256 {want[:12]}… when it was selected: something changed the cached model. "
            f"Delete {cache} to pre-train it again"
        )


def write_cache(
    trial: TrialPlan, rows: list[dict[str, Any]], chosen: dict[str, Any], store_root: Path
) -> None:
    """Record a finished job's rows and selected checkpoint in its cache folder."""
    ckpt = resolve(chosen.get("checkpoint"), store_root)
    if not ckpt:
        return
    keep = [
        {**{k: v for k, v in r.items() if k not in ("sweep_id", "written_at")}}
        | {"checkpoint": in_store(r.get("checkpoint"), store_root)}
        for r in rows
    ]
    record = {
        "trial": trial.trial_id,
        "rows": keep,
        "selected": {
            "epoch": chosen["epoch"],
            "checkpoint": in_store(ckpt, store_root),
            "sha256": sha256_of(ckpt),
        },
    }
    try:
        atomic_write(Path(ckpt).parent / DONE, json.dumps(record, default=str).encode())
    except StoreError as err:
        raise SweeperError(f"{err}; free space there and run `sweeper resume`") from None
