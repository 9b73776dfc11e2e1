"""Image decoding and the SSL image augmentation.

Images travel as uint8 [3, S, S] tensors until a batch is assembled (a quarter of the bytes
of floats between processes); batches hold floats in [0, 1] and the model's normalisation
runs on the device.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import AutoAugment

from trainers.data.seeding import mix_seed


def decode_image(data: bytes, image_size: int, resize_mode: str = "shortest") -> Tensor:
    """uint8 [3, S, S]: RGB, shorter side resized to S (bicubic), centre crop; with
    `resize_mode="squash"` both sides resized to S (open_clip's "squash", SigLIP's).

    Raises whatever PIL raises on an undecodable or truncated image; callers skip it.
    """
    with warnings.catch_warnings():
        # A "decompression bomb" or EXIF warning is noise here: the image is either read
        # or raises, and a raise is counted as a skipped sample.
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as img:
            # JPEG only: let libjpeg decode at a reduced scale that is still >= S, which
            # makes full-resolution web images several times cheaper to read.
            img.draft("RGB", (image_size, image_size))
            rgb = img.convert("RGB")
    if resize_mode == "squash":
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return _resize_center_crop(rgb, image_size)


def load_image_file(path: str, image_size: int) -> Tensor:
    with open(path, "rb") as f:
        return decode_image(f.read(), image_size)


def _resize_center_crop(img: Image.Image, size: int) -> Tensor:
    w, h = img.size
    if min(w, h) != size:
        # torchvision's Resize(size) arithmetic: the shorter side becomes `size`.
        if w <= h:
            new = (size, max(size, int(size * h / w)))
        else:
            new = (max(size, int(size * w / h)), size)
        img = img.resize(new, Image.Resampling.BICUBIC)
        w, h = img.size
    left = int(round((w - size) / 2.0))
    top = int(round((h - size) / 2.0))
    if (w, h) != (size, size):
        img = img.crop((left, top, left + size, top + size))
    array = np.array(img, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


_AUTO_AUGMENT: AutoAugment | None = None


def auto_augment(image: Tensor, *seed_parts: int) -> Tensor:
    """torchvision's AutoAugment (ImageNet policy) of a uint8 [3, S, S] image.

    AutoAugment draws from torch's global generator; the state is saved and restored
    around the call so that the view is a function of `seed_parts` alone and the caller's
    own random stream (model init, dropout) is untouched when loading runs in-process.
    """
    global _AUTO_AUGMENT
    if _AUTO_AUGMENT is None:
        _AUTO_AUGMENT = AutoAugment()
    # Only the CPU generator: torch.manual_seed would also queue a (costly) lazy reseed of
    # every accelerator for each sample.
    state = torch.get_rng_state()
    torch.default_generator.manual_seed(mix_seed(*seed_parts))
    try:
        return _AUTO_AUGMENT(image)
    finally:
        torch.set_rng_state(state)


def to_float(images: Tensor) -> Tensor:
    """uint8 -> float32 in [0, 1]."""
    return images.to(torch.float32).div_(255)


def to_uint8(images: Tensor) -> Tensor:
    """float in [0, 1] -> uint8 (rounded, clamped)."""
    return images.mul(255).round_().clamp_(0, 255).to(torch.uint8)
