"""Stable seeds derived from several integers (process- and platform-independent)."""

from __future__ import annotations

import hashlib
import random

import torch


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from `parts`; different tuples give unrelated streams.

    Python's `hash` of a tuple is stable for ints but not guaranteed across versions, and
    `seed * K + index` collides across epochs; a cryptographic hash has neither problem.
    """
    data = ",".join(str(int(p)) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def py_rng(*parts: int) -> random.Random:
    return random.Random(mix_seed(*parts))


def torch_generator(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*parts))
