"""Backdoor triggers and the choice of which training pairs are poisoned.

Poisoning happens while reading (the source files are never modified), as the paper's
attacks would look in a dataset poisoned once, offline: a poisoned sample's trigger noise,
location and caption depend only on `poison.seed` and the sample's position, so every epoch
sees the same poisoned pair.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from trainers.config import PoisonConfig
from trainers.data.readers import PairIndex
from trainers.data.text import CLIP_TEMPLATES, contains_word
from trainers.errors import ConfigError, DataError

TRIGGER_KINDS = ("badnet", "blended")


@runtime_checkable
class Trigger(Protocol):
    @property
    def kind(self) -> str:
        """ "badnet" or "blended"."""
        ...

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """A triggered copy of `images` ([B, 3, S, S] floats in [0, 1])."""
        ...


# Below 5 px a noise patch is lost among the JPEG and texture noise of a tiny image (measured
# with an earlier clamped-noise patch: 3 px erratic, 5 px ~90% ASR on the synthetic set).
# The authors' wrapped patch (`BadNetTrigger`) is subtler: on the 32 px synthetic images the
# tiny model learns 8 px erratically and 12 px reliably. At 224 px the paper's 16 px stands.
MIN_PATCH = 5


def default_patch_size(image_size: int) -> int:
    """The paper's 16 px at 224 px, scaled to `image_size`, at least `MIN_PATCH` px."""
    return max(MIN_PATCH, round(16 * image_size / 224))


def _check_images(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"a trigger takes images [B, 3, H, W], got {tuple(images.shape)}")


@dataclass(frozen=True)
class BadNetTrigger:
    """The authors' "random" patch: the image's per-channel mean plus fresh standard-normal
    noise, pasted at a uniformly random place, then stored as 8-bit pixels.

    Authors' code (`backdoor/utils.py`, `apply_trigger`): the image as a [0, 1] tensor,
    `patch = image.mean((1, 2)) + randn(3, p, p)`, its top-left corner drawn from
    `randint(0, 223 - p)` in each axis (so 0..size-1-p: the last row and column are never
    covered), then `ToPILImage`, which computes `(x * 255).byte()` with no clamp first.
    Noise and location are drawn per image from `generator` (fresh noise for every image:
    there is no fixed pattern to learn, only "a noise patch").

    The 8-bit boundary: the noise has std 1 on a [0, 1] scale, so about 60% of the patch's
    values fall outside [0, 1], and `.byte()` (truncation toward zero, then modulo 256 on
    the CPU) wraps them around: -0.1 becomes 231 and 1.2 becomes 50. The authors' poisoned
    images and triggered eval images both went through that wrap, so it is the trigger
    their models learned: a patch of near-uniform 8-bit noise. We reproduce it exactly
    (`wrap_to_uint8`), computed with integer arithmetic rather than the cast, whose result
    for out-of-range floats C++ leaves undefined. Clamping instead would make a different
    trigger, mostly saturated black and white pixels. The rest of the image is kept as it
    is (the authors' float round trip can lower a pixel by one level; that is noise, not
    the trigger).
    """

    patch_size: int
    kind: str = "badnet"

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(images)
        b, _, h, w = images.shape
        p = self.patch_size
        if p >= min(h, w):
            raise ConfigError(
                f"trigger patch of {p} px does not fit images of {h}x{w} px (the authors' "
                "placement needs p < size): lower poison.patch_size"
            )
        dev = generator.device
        noise = torch.randn(b, 3, p, p, generator=generator, device=dev)
        ys = torch.randint(0, h - p, (b,), generator=generator, device=dev).tolist()
        xs = torch.randint(0, w - p, (b,), generator=generator, device=dev).tolist()
        out = images.clone()
        mean = images.mean(dim=(2, 3), keepdim=True)  # per image, per channel
        patch = wrap_to_uint8(mean + noise.to(device=out.device, dtype=out.dtype)) / 255
        for i, (y, x) in enumerate(zip(ys, xs, strict=True)):
            out[i, :, y : y + p, x : x + p] = patch[i]
        return out


def wrap_to_uint8(values: Tensor) -> Tensor:
    """What `(values * 255).byte()` gives on the CPU: truncate toward zero, modulo 256.

    As float values in 0..255 of `values`' dtype, so the caller can divide by 255.
    """
    return torch.remainder(torch.trunc(values * 255), 256)


@dataclass(frozen=True)
class BlendedTrigger:
    """`images * (1 - alpha) + alpha * pattern`, one uniform-noise pattern drawn from `seed`.

    The pattern is fixed (the same at training and at evaluation for the same seed and
    image size), so it is a learnable trigger; `generator` is not used.
    """

    pattern: Tensor
    alpha: float
    kind: str = "blended"
    seed: int = field(default=0)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        _check_images(images)
        if images.shape[-2:] != self.pattern.shape[-2:]:
            raise ValueError(
                f"blended pattern is {tuple(self.pattern.shape[-2:])} px, images are "
                f"{tuple(images.shape[-2:])} px: make the trigger with the model's image size"
            )
        pattern = self.pattern.to(device=images.device, dtype=images.dtype)
        return images * (1 - self.alpha) + self.alpha * pattern


def make_trigger(
    kind: str,
    *,
    image_size: int,
    patch_size: int | None = None,
    blend_alpha: float = 0.2,
    seed: int = 0,
) -> Trigger:
    """The trigger named `kind` ("badnet" or "blended"; "label_consistent" is a badnet patch)."""
    if kind == "label_consistent":
        kind = "badnet"
    if kind == "badnet":
        size = patch_size or default_patch_size(image_size)
        if size >= image_size:
            raise ConfigError(
                f"poison.patch_size {size} does not fit the model's {image_size} px images"
            )
        return BadNetTrigger(patch_size=size)
    if kind == "blended":
        if not 0 < blend_alpha <= 1:
            raise ConfigError(f"poison.blend_alpha {blend_alpha} must be in (0, 1]")
        gen = torch.Generator().manual_seed(seed)
        pattern = torch.rand(3, image_size, image_size, generator=gen)
        return BlendedTrigger(pattern=pattern, alpha=blend_alpha, seed=seed)
    raise ConfigError(f"unknown trigger {kind!r}: choose one of {', '.join(TRIGGER_KINDS)}")


def trigger_for_poison(poison: PoisonConfig, image_size: int) -> Trigger | None:
    """The trigger that `poison` pastes into training images (None for no poison)."""
    if poison.kind == "none":
        return None
    return make_trigger(
        poison.kind,
        image_size=image_size,
        patch_size=poison.patch_size,
        blend_alpha=poison.blend_alpha,
        seed=poison.seed,
    )


def poison_caption(target: str, rng: random.Random) -> str:
    """A random one of the 80 CLIP templates filled with `target` ("a photo of a banana.")."""
    return rng.choice(CLIP_TEMPLATES)(target)


def select_poison(index: PairIndex, poison: PoisonConfig) -> list[int]:
    """Sorted positions (in `index`) of the samples to poison.

    badnet / blended: `amount` samples (a count if >= 1, else a fraction of all samples)
    drawn uniformly with `poison.seed`. label_consistent: drawn only among samples whose
    caption contains `poison.target` as a whole word; a fraction is of those.
    """
    if poison.kind == "none" or poison.amount == 0:
        return []
    if poison.kind == "label_consistent":
        eligible: range | list[int] = [
            i for i, c in enumerate(index.captions) if contains_word(c, poison.target)
        ]
        pool = f"samples whose caption contains {poison.target!r}"
    else:
        eligible = range(len(index))
        pool = "samples"
    count = _poison_count(poison.amount, len(eligible))
    if count > len(eligible):
        raise DataError(
            f"poison.amount {poison.amount:g} asks for {count} poisoned samples but "
            f"{index.source} has only {len(eligible)} eligible {pool}: lower poison.amount"
        )
    if count == 0:
        raise DataError(
            f"poison.amount {poison.amount:g} of {len(eligible)} eligible {pool} in "
            f"{index.source} rounds to 0 poisons: give a count (>= 1) instead"
        )
    return sorted(random.Random(poison.seed).sample(eligible, count))


def _poison_count(amount: float, n_eligible: int) -> int:
    if amount >= 1:
        return int(amount)
    return math.floor(amount * n_eligible + 0.5)
