"""Checkpoints: model weights with the config and metadata that made them.

Saved as a plain dict of tensors and JSON-like values so that `torch.load(weights_only=True)`
reads them: a checkpoint is data, never pickled code. Also read, as bare weights:
- open_clip state dicts: `.bin`, `.pt`, `.pth` (torch.save, read with weights_only=True)
  and `.safetensors`;
- OpenAI's CLIP releases (`RN50.pt`, ...), which are TorchScript archives: weights_only
  refuses them, so they are opened with `torch.jit.load` on the CPU (TorchScript, not a
  Python pickle: it cannot import or call Python code), no method of the module is called,
  and only its tensors are kept. They were trained with QuickGELU, which the checkpoint
  records so that loading them into a GELU model (`RN50` rather than `RN50-quickgelu`) is
  an error rather than a silently different network.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.errors import CheckpointError
from trainers.models import uses_quick_gelu

FORMAT = "sweeper-checkpoint/1"


# Entries of OpenAI's TorchScript CLIP state dicts that are not weights: three Python ints
# saved as tensors, and the text tower's causal mask (a non-persistent buffer in open_clip).
_TORCHSCRIPT_EXTRAS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    model_name: str | None  # None for a bare open_clip state dict
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # Whether the weights were trained with QuickGELU (known for TorchScript files only).
    quick_gelu: bool | None = None


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
    atomic_torch_save(
        payload, path, "checkpoint", "free space on that disk or set a retention policy"
    )
    return path


def atomic_torch_save(payload: Any, path: Path, what: str, fix: str) -> None:
    """`torch.save` under a temporary name, renamed into place: a reader never sees half a
    file, and a failed write leaves none (a `CheckpointError` naming `what`, `path`, `fix`)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"cannot write {what} {path} ({_first_line(err)}): {fix}; nothing half-written was left"
        ) from None


# The last checkpoints read in this process, by (path, size, mtime): a screen trial that
# evaluates a chunk of (shrink, sigma) points reads its start model once, not per point.
# Readers copy the weights into a model (`load_weights`) and never change these tensors.
_MEMO: dict[tuple[str, int, int], Checkpoint] = {}
_MEMO_SIZE = 2


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        st = None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns) if st is not None else None
    if key is not None and key in _MEMO:
        return _MEMO[key]
    ckpt = _load_checkpoint(path)
    if key is not None:
        while len(_MEMO) >= _MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = ckpt
    return ckpt


def _load_checkpoint(path: Path) -> Checkpoint:
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: check model.checkpoint (a sweeper checkpoint, "
            "an open_clip state dict (.pt, .bin, .safetensors) or an OpenAI CLIP .pt file)"
        )
    if path.suffix == ".safetensors":
        return _bare(path, _read_safetensors(path))
    if _is_torchscript(path):
        return _read_torchscript(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as err:
        raise _unreadable(
            path, err, "it is loaded with weights_only=True, so pickled code is refused"
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
    return _bare(path, obj)


# torch's weights-only unpickler fails on bytes that are not a pickle with whatever its
# parsing hits (an IndexError from an empty mark stack, a KeyError from an unknown opcode).
_READ_ERRORS = (
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    OSError,
    pickle.UnpicklingError,
    IndexError,
    KeyError,
    TypeError,
)


def _unreadable(path: Path, err: BaseException, how: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} could not be read ({type(err).__name__}: {_first_line(err)}): "
        f"the file is truncated, corrupt, or not a tensor-only checkpoint ({how})"
    )


def _bare(path: Path, obj: object, quick_gelu: bool | None = None) -> Checkpoint:
    """An open_clip-style state dict: tensors by parameter name, no model name."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        # open_clip's DDP checkpoints prefix every key with "module."
        state = {k.removeprefix("module."): v for k, v in obj.items()}
        return Checkpoint(path=path, model_name=None, state_dict=state, quick_gelu=quick_gelu)
    raise CheckpointError(
        f"checkpoint {path} holds a {type(obj).__name__}, not model weights: expected a "
        "sweeper checkpoint, an open_clip state dict or an OpenAI CLIP .pt file"
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise _unreadable(path, err, "read as safetensors") from None


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with a `code/` folder; torch.save's zips have none."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _read_torchscript(path: Path) -> Checkpoint:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation
            module = torch.jit.load(str(path), map_location="cpu")
    except _READ_ERRORS as err:
        raise _unreadable(path, err, "read as a TorchScript archive") from None
    state = {k: v for k, v in module.state_dict().items() if k not in _TORCHSCRIPT_EXTRAS}
    return _bare(path, state, quick_gelu=uses_quick_gelu(module))


def load_weights(model: nn.Module, ckpt: Checkpoint, *, model_name: str) -> None:
    """Load into `model`; another architecture is a clear error, not a silent partial load."""
    if ckpt.model_name is not None and ckpt.model_name != model_name:
        raise CheckpointError(
            f"checkpoint {ckpt.path} holds a {ckpt.model_name!r} model but the config asks "
            f"for {model_name!r}: set model.name: {ckpt.model_name} or use a {model_name} "
            "checkpoint"
        )
    if ckpt.quick_gelu is not None and ckpt.quick_gelu != uses_quick_gelu(model):
        want = (
            f"{model_name}-quickgelu" if ckpt.quick_gelu else model_name.removesuffix("-quickgelu")
        )
        raise CheckpointError(
            f"checkpoint {ckpt.path} was trained with {'QuickGELU' if ckpt.quick_gelu else 'GELU'}"
            f" but model {model_name!r} uses {'GELU' if ckpt.quick_gelu else 'QuickGELU'} "
            f"(OpenAI's CLIP weights need QuickGELU): set model.name: {want}"
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
