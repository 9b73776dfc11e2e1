"""Shrink and perturb (Ash & Adams 2020), applied once before cleaning.

theta <- shrink * theta + perturb_sigma * noise. The paper's text draws noise ~ N(0, 1); its
code adds a fresh random initialisation of the same architecture ("init"), which keeps each
layer's noise at that layer's init scale. The logit scale is left alone: it is the softmax
temperature, not a weight, and shrinking it would only change the loss's sharpness.
"""

from __future__ import annotations

import torch
from torch import nn

from trainers.config import ShrinkPerturbConfig
from trainers.models import create_model


def is_identity(cfg: ShrinkPerturbConfig) -> bool:
    return cfg.shrink == 1.0 and cfg.perturb_sigma == 0.0


@torch.no_grad()
def shrink_perturb(
    model: nn.Module, cfg: ShrinkPerturbConfig, *, model_name: str, seed: int
) -> None:
    """Apply the update in place to every parameter except the logit scale."""
    if is_identity(cfg):
        return
    noise_src = None
    if cfg.noise == "init" and cfg.perturb_sigma > 0:
        noise_src, _ = create_model(model_name, seed=seed)
        noise_params = dict(noise_src.named_parameters())
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "logit_scale" in name:
            continue
        p.mul_(cfg.shrink)
        if cfg.perturb_sigma == 0:
            continue
        if noise_src is not None:
            noise = noise_params[name].to(p.device, p.dtype)
        else:
            noise = torch.randn(p.shape, generator=gen).to(p.device, p.dtype)
        p.add_(noise, alpha=cfg.perturb_sigma)
