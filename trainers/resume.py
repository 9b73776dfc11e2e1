"""Resume state: what a trial needs to continue after its last completed epoch.

One file per trial (`TrialConfig.resume_state`), rewritten atomically after every reported
epoch: the model's weights, AdamW's moments and step counts, the LR schedule's step, the
GradScaler's state (none: CUDA autocasts to bf16, which needs no scaler), the epoch and the
counters, every RNG a later epoch draws from (torch CPU and CUDA, NumPy, Python `random`),
and the records reported so far. The data order needs nothing more: it is a function of
(seed, epoch) (`trainers.data.seeding`), and so are deep clustering's k-means and head.

It is not a candidate checkpoint (those are weights-only files `open_clip` can load, see
`trainers.checkpoint`): its format tag differs, its name is the sweeper's to choose, and
`load_checkpoint` refuses it. Like every checkpoint it is plain tensors and JSON-like values,
read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainers.checkpoint import atomic_torch_save
from trainers.config import TrialConfig
from trainers.reporter import EpochRecord

FORMAT = "sweeper-resume/1"
# Fields that change how or where a trial runs but not what it computes: a retry on another
# node (device, threads), a test's fault hook, the file's own path.
_RUN_ONLY = ("device", "threads", "fail_at_epoch", "resume_state", "checkpoint_dir")


@dataclass
class Resumed:
    """Where a trial stopped: the last completed epoch and what it had counted."""

    epoch: int
    seen: int
    skipped: int
    elapsed: float
    last_checkpoint: str | None
    records: list[EpochRecord]


def config_key(cfg: TrialConfig) -> str:
    """The hash of what the trial computes: a state saved under another config is stale."""
    dump = cfg.model_dump(mode="json")
    for name in _RUN_ONLY:
        dump.pop(name, None)
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def save_state(
    cfg: TrialConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    progress: Resumed,
) -> None:
    """Write the state after `progress.epoch` to `cfg.resume_state` (temporary name, rename)."""
    if cfg.resume_state is None:
        return
    path = Path(cfg.resume_state)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config_key": config_key(cfg),
        "epoch": progress.epoch,
        "seen": progress.seen,
        "skipped": progress.skipped,
        "elapsed": progress.elapsed,
        "last_checkpoint": progress.last_checkpoint,
        "records": [r.to_dict() for r in progress.records],
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": None,  # bf16 autocast: no GradScaler (see trainers.loop)
        "rng": _rng_state(),
    }
    atomic_torch_save(payload, path, "resume state", "free space on that disk")


def load_state(
    cfg: TrialConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> Resumed | None:
    """Restore the state `cfg.resume_state` holds into `model`, `opt`, `sched` and the RNGs.

    None (start from epoch 0) when there is no file, or when it was saved under another
    config or is unreadable: then it says so on stderr, and the run overwrites the file.
    """
    if cfg.resume_state is None or not Path(cfg.resume_state).is_file():
        return None
    path = Path(cfg.resume_state)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: starting over is always correct
        return _stale(path, f"unreadable ({type(err).__name__})")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        return _stale(path, "not a sweeper resume state")
    if obj.get("config_key") != config_key(cfg):
        return _stale(path, "saved by a trial of another config")
    model.load_state_dict(obj["model"])
    opt.load_state_dict(obj["optimizer"])
    sched.load_state_dict(obj["scheduler"])
    _set_rng_state(obj["rng"])
    return Resumed(
        epoch=int(obj["epoch"]),
        seen=int(obj["seen"]),
        skipped=int(obj["skipped"]),
        elapsed=float(obj["elapsed"]),
        last_checkpoint=obj.get("last_checkpoint"),
        records=[EpochRecord(**r) for r in obj["records"]],
    )


def _stale(path: Path, why: str) -> Resumed | None:
    import sys

    print(f"resume state {path} ignored ({why}): training from the start", file=sys.stderr)
    return None


def _rng_state() -> dict[str, Any]:
    # NumPy's and Python's states as tensors and ints: weights_only loading takes those.
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss_py,
        },
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"]))
