"""Training losses, one `nn.Module` each, returning named parts.

MMCL is open_clip's symmetric InfoNCE (`ClipLoss`): (CE(image -> text) + CE(text ->
image)) / 2, as in the authors' code. The in-modal SSL loss is one-directional per modality,
as in CleanCLIP and the authors' code (`src/train.py`, `get_loss`): (CE(image -> augmented
image) + CE(text -> augmented text)) / 2, each with logits `logit_scale.exp() * a @ b.T`,
rows the originals and columns their augmented views.

In a data-parallel job of `world_size` ranks both losses are over the global batch: each
rank's features are gathered from every rank with their gradients (open_clip's
`gather_features`, `gather_with_grad=True`), and each rank takes the rows of its own samples
against every rank's columns (`local_loss=True`). The mean of the ranks' losses is the loss
one process would compute on the whole batch, and DDP's gradient average is its gradient
(tests/trainers/test_distributed_loss.py checks both with gloo).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip import ClipLoss
from open_clip.loss import gather_features
from torch import Tensor, nn


class ContrastiveLoss(nn.Module):
    """w_mmcl * MMCL + w_ssl * SSL (CleanCLIP: 1 and 1; MMCL pre-training: 1 and 0)."""

    def __init__(
        self, mmcl_weight: float, ssl_weight: float, *, rank: int = 0, world_size: int = 1
    ) -> None:
        super().__init__()
        self.mmcl_weight = mmcl_weight
        self.ssl_weight = ssl_weight
        self.rank = rank
        self.world_size = world_size
        distributed = world_size > 1
        self.clip_loss = ClipLoss(
            local_loss=distributed,
            gather_with_grad=distributed,
            cache_labels=True,
            rank=rank,
            world_size=world_size,
        )

    @property
    def needs_augmented_views(self) -> bool:
        return self.ssl_weight > 0

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        logit_scale: Tensor,
        image_aug: Tensor | None = None,
        text_aug: Tensor | None = None,
    ) -> dict[str, Tensor]:
        parts: dict[str, Tensor] = {}
        total = image.new_zeros(())
        if self.mmcl_weight > 0:
            parts["loss_mmcl"] = self.clip_loss(image, text, logit_scale)
            total = total + self.mmcl_weight * parts["loss_mmcl"]
        if self.ssl_weight > 0:
            if image_aug is None or text_aug is None:
                raise ValueError("the SSL loss needs the augmented image and text views")
            ssl_image = in_modal_loss(image, image_aug, logit_scale, self.rank, self.world_size)
            ssl_text = in_modal_loss(text, text_aug, logit_scale, self.rank, self.world_size)
            parts["loss_ssl"] = (ssl_image + ssl_text) / 2
            total = total + self.ssl_weight * parts["loss_ssl"]
        parts["loss"] = total
        return parts


def in_modal_loss(
    features: Tensor, augmented: Tensor, logit_scale: Tensor, rank: int = 0, world_size: int = 1
) -> Tensor:
    """CE(features -> augmented): each sample must pick its own augmented view out of the
    batch's augmented views. One direction only (CleanCLIP's in-modal term). `logit_scale`
    is the multiplier itself, exp of the learnable parameter, as open_clip's `ClipLoss` takes.
    With `world_size` > 1 the columns are every rank's augmented views (gathered with
    gradients) and this rank's rows sit at offset `rank * len(features)`."""
    columns = augmented
    if world_size > 1:
        _, columns = gather_features(
            features,
            augmented,
            local_loss=True,
            gather_with_grad=True,
            rank=rank,
            world_size=world_size,
        )
    logits = logit_scale * features @ columns.T
    target = torch.arange(len(features), device=features.device) + rank * len(features)
    return F.cross_entropy(logits, target)


class ClusterLoss(nn.Module):
    """Deep clustering (Caron et al. 2018): cross-entropy of a linear head on pseudo-labels.

    The head is re-initialised whenever the pseudo-labels are recomputed, so the encoder is
    pushed to make the current clusters linearly separable rather than to fit an old head.
    """

    def __init__(self, embed_dim: int, n_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(embed_dim, n_classes)

    def reset(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        bound = 1 / self.head.in_features**0.5
        with torch.no_grad():
            w = torch.empty_like(self.head.weight, device="cpu").uniform_(
                -bound, bound, generator=gen
            )
            b = torch.empty_like(self.head.bias, device="cpu").uniform_(
                -bound, bound, generator=gen
            )
            self.head.weight.copy_(w)
            self.head.bias.copy_(b)

    def forward(self, image_features: Tensor, pseudo_labels: Tensor) -> Tensor:
        # The features are unit vectors (k-means clusters them on the sphere), so each
        # coordinate is ~1/sqrt(d). Scaling by sqrt(d) gives the head unit-variance inputs,
        # the regime its init assumes; without it a fresh head stays near chance for
        # hundreds of steps and the cluster loss teaches the encoder nothing.
        x = image_features.float() * image_features.shape[-1] ** 0.5
        return F.cross_entropy(self.head(x), pseudo_labels)


def l2_penalty(params: list[Tensor], targets: list[Tensor] | None) -> Tensor:
    """0.5 * sum ||theta - target||^2 (target 0 when `targets` is None); reported, not trained.

    The penalty itself is applied as decoupled decay by the optimizer step (see
    `trainers.regularize`), as in the paper's code, so this is only the value we log.
    """
    with torch.no_grad():
        if targets is None:
            sq = torch._foreach_norm(params)
        else:
            sq = torch._foreach_norm(torch._foreach_sub(params, targets))
        return 0.5 * torch.stack([s.float() ** 2 for s in sq]).sum()
