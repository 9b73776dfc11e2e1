"""open_clip models by name, the tiny registered configs, and the model's preprocessing facts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from torch import nn

from trainers.errors import ModelError

_CONFIG_DIR = Path(__file__).parent / "model_configs"
TINY_MODELS = tuple(sorted(p.stem for p in _CONFIG_DIR.glob("*.json")))
_registered = False


def register_tiny_models() -> None:
    """Make `tiny-rn` and `tiny-vit` known to open_clip (idempotent)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(_CONFIG_DIR)
        _registered = True


def list_models() -> list[str]:
    """Every model name `create_model` accepts: the tiny configs first, then open_clip's."""
    register_tiny_models()
    return list(TINY_MODELS) + [m for m in open_clip.list_models() if m not in TINY_MODELS]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int


def create_model(name: str, *, seed: int | None = None) -> tuple[nn.Module, ModelInfo]:
    """A randomly initialised open_clip model (weights are loaded by `trainers.checkpoint`)."""
    register_tiny_models()
    if open_clip.get_model_config(name) is None:
        known = ", ".join(list(TINY_MODELS) + ["RN50", "ViT-B-32", "..."])
        raise ModelError(
            f"unknown model name {name!r} (model.name): use an open_clip model name or a "
            f"registered tiny config ({known}); `sweeper ls models` lists them all"
        )
    if seed is not None:
        torch.manual_seed(seed)
    # open_clip logs a warning for every model created without pretrained weights; that is
    # the normal case here (weights come from our own checkpoints), so keep the log quiet.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        model = open_clip.create_model(name, pretrained=None)
    finally:
        root.setLevel(level)
    cfg = open_clip.get_model_config(name)
    pre = model.visual.preprocess_cfg
    size = pre["size"]
    image_size = int(size if isinstance(size, int) else size[0])
    info = ModelInfo(
        name=name,
        image_size=image_size,
        mean=tuple(pre["mean"]),  # type: ignore[arg-type]
        std=tuple(pre["std"]),  # type: ignore[arg-type]
        embed_dim=int(cfg["embed_dim"]),
    )
    return model, info


def get_tokenizer(name: str) -> Callable[[list[str]], torch.Tensor]:
    register_tiny_models()
    return open_clip.get_tokenizer(name)


def clamp_logit_scale(model: nn.Module, max_scale: float = 100.0) -> None:
    """The paper clamps the learnable temperature so that exp(logit_scale) <= 100."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, torch.log(torch.tensor(max_scale)).item())


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: no decay on norms, biases, the logit scale and embeddings of
    size 1 (the paper's rule: decay only weight matrices and convolution kernels)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "logit_scale" in name or "bn" in name or "ln" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
