"""Checkpoints: model weights with the config and metadata that made them.

Saved as a plain dict of tensors and JSON-like values so that `torch.load(weights_only=True)`
reads them: a checkpoint is data, never code. Plain open_clip state dicts load too.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.errors import CheckpointError

FORMAT = "sweeper-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    model_name: str | None  # None for a bare open_clip state dict
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    config: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    """Write atomically (temporary name, then rename) so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_name": model_name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config,
        "meta": meta,
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: check model.checkpoint (a sweeper checkpoint "
            "or an open_clip state dict saved with torch.save)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        pickle.UnpicklingError,
    ) as err:
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(err).__name__}: {_first_line(err)}): "
            "the file is truncated, corrupt, or not a tensor-only checkpoint "
            "(it is loaded with weights_only=True, so pickled code is refused)"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return Checkpoint(
            path=path,
            model_name=str(obj["model_name"]),
            state_dict=obj["state_dict"],
            config=dict(obj.get("config") or {}),
            meta=dict(obj.get("meta") or {}),
        )
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # open_clip's training checkpoints wrap the weights
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        # open_clip's DDP checkpoints prefix every key with "module."
        state = {k.removeprefix("module."): v for k, v in obj.items()}
        return Checkpoint(path=path, model_name=None, state_dict=state)
    raise CheckpointError(
        f"checkpoint {path} holds a {type(obj).__name__}, not model weights: expected a "
        "sweeper checkpoint or an open_clip state dict"
    )


def load_weights(model: nn.Module, ckpt: Checkpoint, *, model_name: str) -> None:
    """Load into `model`; another architecture is a clear error, not a silent partial load."""
    if ckpt.model_name is not None and ckpt.model_name != model_name:
        raise CheckpointError(
            f"checkpoint {ckpt.path} holds a {ckpt.model_name!r} model but the config asks "
            f"for {model_name!r}: set model.name: {ckpt.model_name} or use a {model_name} "
            "checkpoint"
        )
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not fit model {model_name!r} "
            f"({_first_line(err, skip_header=True)}): it was saved from another architecture"
        ) from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_line(err: BaseException, skip_header: bool = False) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if skip_header and len(lines) > 1:
        lines = lines[1:]
    return lines[0][:300] if lines else ""
