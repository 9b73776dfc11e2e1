"""open_clip models by name, the tiny registered configs, and the model's preprocessing facts."""

from __future__ import annotations

import functools
import logging
import math
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
    """The model's own preprocessing: decode at `image_size` by `resize_mode`, then
    normalise with `mean` and `std`."""

    name: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embed_dim: int
    # open_clip's resize modes we decode by: "shortest" (shorter side, centre crop; CLIP's
    # and the authors') or "squash" (both sides to the size; SigLIP's).
    resize_mode: str = "shortest"


@functools.cache
def state_bytes(name: str) -> int:
    """Bytes of model `name`'s state dict (weights and buffers): what one checkpoint holds,
    counted on the meta device, so no memory is allocated and no weights are initialised."""
    register_tiny_models()
    if open_clip.get_model_config(name) is None:
        create_model(name)  # raises the ModelError that names the field
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with torch.device("meta"):
            model = open_clip.create_model(name, pretrained=None, device="meta")
    finally:
        root.setLevel(level)
    return sum(v.numel() * v.element_size() for v in model.state_dict().values())


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
    pre = _preprocess_cfg(name, model)
    size = pre["size"]
    image_size = int(size if isinstance(size, int) else size[0])
    resize_mode = str(pre.get("resize_mode") or "shortest")
    if resize_mode not in ("shortest", "squash"):
        raise ModelError(
            f"model {name!r} resizes its images by {resize_mode!r}; only 'shortest' and "
            "'squash' are implemented (trainers.data.transforms.decode_image)"
        )
    info = ModelInfo(
        name=name,
        image_size=image_size,
        mean=tuple(pre["mean"]),  # type: ignore[arg-type]
        std=tuple(pre["std"]),  # type: ignore[arg-type]
        embed_dim=int(cfg["embed_dim"]),
        resize_mode=resize_mode,
    )
    return model, info


def _preprocess_cfg(name: str, model: nn.Module) -> dict:
    """The model's preprocessing, with what all its pretrained tags agree on.

    open_clip keeps a model's normalisation with its pretrained tags, not its config, so a
    model made without a tag (here the weights come from a file) would get OpenAI's mean
    and std: wrong for SigLIP (0.5 / 0.5, squashed to size).
    """
    pre = dict(model.visual.preprocess_cfg)
    seen = set()
    for tag in open_clip.list_pretrained_tags_by_model(name):
        tag_cfg = open_clip.get_pretrained_cfg(name, tag)
        seen.add(tuple((k, _hashable(tag_cfg[k])) for k in _PRE_KEYS if k in tag_cfg))
    if len(seen) == 1:
        pre.update(dict(seen.pop()))
    return pre


_PRE_KEYS = ("mean", "std", "resize_mode")


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def normalize(images: torch.Tensor, info: ModelInfo) -> torch.Tensor:
    """Images in [0, 1] -> the model's input: (x - mean) / std, per channel."""
    mean = torch.tensor(info.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(info.std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def get_tokenizer(name: str) -> Callable[[list[str]], torch.Tensor]:
    register_tiny_models()
    try:
        return open_clip.get_tokenizer(name)
    except ImportError as err:
        # open_clip's Hugging Face tokenizers (SigLIP's, the deep-clustering teacher's)
        # import `transformers`, which only the `teacher` extra installs.
        raise ModelError(
            f"the tokenizer of model {name!r} needs a package that is not installed "
            f"({err}): pip install 'sweeper[teacher]'"
        ) from None


# The paper clamps the learnable log-temperature after every step: authors' code
# `clamp(logit_scale, 0, 4.6052)`, i.e. exp(logit_scale) in [1, 100].
MAX_LOGIT_SCALE = math.log(100)


def clamp_logit_scale(model: nn.Module) -> None:
    """Clamp `model.logit_scale` to [0, ln 100] in place (the authors' [0, 4.6052])."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: `weight_decay` on every weight but the parameters of norm
    layers, biases and the logit scale (and bias), which get none.

    The paper's rule. The authors' code selects by name (`bn`, `ln`, `bias`, `logit_scale`),
    which also decays what those names miss: the BatchNorm weights inside RN50's
    `downsample` blocks and a ViT's class embedding. Here norms are found by layer type, so
    the downsample norms are not decayed (the paper's rule) and the class embedding is (the
    authors' code and the paper agree there).
    """
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, _NORMS)
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if is_norm or name == "bias" or name in ("logit_scale", "logit_bias"):
                no_decay.append(p)
            else:
                decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def uses_quick_gelu(model: nn.Module) -> bool:
    """Whether `model` (an open_clip model or a TorchScript CLIP) uses QuickGELU.

    OpenAI's CLIP weights were trained with QuickGELU; open_clip's `RN50` uses GELU and
    `RN50-quickgelu` QuickGELU, so loading OpenAI's weights into `RN50` runs a different
    network than the one trained.
    """
    return any(
        type(m).__name__ == "QuickGELU" or getattr(m, "original_name", "") == "QuickGELU"
        for m in model.modules()
    )
