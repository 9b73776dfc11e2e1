"""Shrink and perturb (Ash & Adams 2020), applied once before cleaning.

theta <- shrink * theta + perturb_sigma * noise. The paper's text draws noise ~ N(0, 1); its
code adds a fresh random initialisation of the same architecture ("init"), which keeps each
layer's noise at that layer's init scale. The logit scale is left alone: it is the softmax
temperature, not a weight, and shrinking it would only change the loss's sharpness.

The noise has its own seed stream, `mix_seed(seed, NOISE_STREAM)`: a model pre-trained from
scratch was initialised by `create_model(name, seed=cfg.seed)`, and noise drawn from the same
seed would be that very initialisation, making the update a pull back toward the start
(theta <- lambda * theta + sigma * theta_0) rather than a fresh perturbation.
"""

from __future__ import annotations

import torch
from torch import nn

from trainers.config import ShrinkPerturbConfig
from trainers.data.seeding import mix_seed
from trainers.models import create_model

# Second component of the noise's seed (any constant but a model-init seed scheme's).
NOISE_STREAM = 0x5EED


def is_identity(cfg: ShrinkPerturbConfig) -> bool:
    return cfg.shrink == 1.0 and cfg.perturb_sigma == 0.0


@torch.no_grad()
def shrink_perturb(
    model: nn.Module, cfg: ShrinkPerturbConfig, *, model_name: str, seed: int
) -> None:
    """Apply the update in place to every parameter except the logit scale."""
    if is_identity(cfg):
        return
    noise_seed = mix_seed(seed, NOISE_STREAM)
    noise_src = None
    if cfg.noise == "init" and cfg.perturb_sigma > 0:
        # create_model seeds torch's global generator; fork it so the trial's own stream
        # is left as it was.
        with torch.random.fork_rng(devices=[]):
            noise_src, _ = create_model(model_name, seed=noise_seed)
        noise_params = dict(noise_src.named_parameters())
    gen = torch.Generator().manual_seed(noise_seed)
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
