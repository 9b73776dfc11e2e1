"""Poison selection and triggers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import to_pil_image

from trainers.config import PoisonConfig
from trainers.data import (
    CLIP_TEMPLATES,
    PackedStrings,
    PairIndex,
    contains_word,
    default_patch_size,
    make_trigger,
    poison_caption,
    select_poison,
)
from trainers.data.poison import wrap_to_uint8
from trainers.errors import ConfigError, DataError


def _index(captions: list[str]) -> PairIndex:
    keys = [f"{i:09d}" for i in range(len(captions))]
    return PairIndex(
        source="in-memory",
        kind="csv",
        keys=PackedStrings.pack(keys),
        captions=PackedStrings.pack(captions),
    )


@pytest.fixture(scope="module")
def index() -> PairIndex:
    words = ["banana", "apple", "ball", "box", "tree"]
    rng = random.Random(0)
    caps = [f"a {rng.choice(['red', 'big'])} {words[i % 5]} on the grass" for i in range(500)]
    caps[5] = "two bananas on a plate"  # plural: not a whole-word match
    return _index(caps)


def test_count_is_exact_and_seeded(index: PairIndex) -> None:
    a = select_poison(index, PoisonConfig(kind="badnet", amount=25, seed=1))
    assert len(a) == 25 == len(set(a)) and a == sorted(a)
    assert all(0 <= i < len(index) for i in a)
    assert a == select_poison(index, PoisonConfig(kind="badnet", amount=25, seed=1))
    assert a != select_poison(index, PoisonConfig(kind="badnet", amount=25, seed=2))


def test_fraction_is_of_all_samples(index: PairIndex) -> None:
    assert len(select_poison(index, PoisonConfig(kind="blended", amount=0.1))) == 50


def test_none_and_zero_poison_nothing(index: PairIndex) -> None:
    assert select_poison(index, PoisonConfig(kind="none", amount=10)) == []
    assert select_poison(index, PoisonConfig(kind="badnet", amount=0)) == []


def test_label_consistent_only_picks_captions_with_the_target(index: PairIndex) -> None:
    eligible = [i for i, c in enumerate(index.captions) if contains_word(c, "banana")]
    assert len(eligible) == 99  # 100 banana captions, one turned plural
    chosen = select_poison(index, PoisonConfig(kind="label_consistent", amount=0.5))
    assert len(chosen) == 50  # a fraction of the eligible ones, not of all
    assert set(chosen) <= set(eligible) and 5 not in chosen
    every = select_poison(index, PoisonConfig(kind="label_consistent", amount=99))
    assert every == eligible


def test_asking_for_too_many_names_the_eligible_count(index: PairIndex) -> None:
    with pytest.raises(DataError, match="only 99 eligible"):
        select_poison(index, PoisonConfig(kind="label_consistent", amount=100))
    with pytest.raises(DataError, match="only 500 eligible"):
        select_poison(index, PoisonConfig(kind="badnet", amount=501))
    with pytest.raises(DataError, match="rounds to 0"):
        select_poison(index, PoisonConfig(kind="badnet", amount=0.0001))


def test_poison_caption_is_a_filled_template() -> None:
    filled = {t("banana") for t in CLIP_TEMPLATES}
    rng = random.Random(3)
    captions = [poison_caption("banana", rng) for _ in range(50)]
    assert all(c in filled for c in captions)
    assert len(set(captions)) > 10  # a random template each time


@pytest.mark.parametrize(
    ("size", "patch"), [(224, 16), (96, 7), (64, 5), (32, 5), (16, 5), (448, 32)]
)
def test_patch_size_scales_with_image_size(size: int, patch: int) -> None:
    assert default_patch_size(size) == patch
    trigger = make_trigger("badnet", image_size=size)
    assert trigger.kind == "badnet" and trigger.patch_size == patch  # type: ignore[attr-defined]
    assert make_trigger("badnet", image_size=size, patch_size=7).patch_size == 7  # type: ignore[attr-defined]


def _patch_boxes(before: torch.Tensor, after: torch.Tensor) -> list[tuple[int, int, int, int]]:
    boxes = []
    for b, a in zip(before, after, strict=True):
        changed = (a != b).any(dim=0)
        ys, xs = changed.nonzero(as_tuple=True)
        boxes.append((int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())))
    return boxes


def test_badnet_patch_is_fresh_noise_inside_the_image() -> None:
    images = torch.full((64, 3, 32, 32), 0.5)
    trigger = make_trigger("badnet", image_size=32, patch_size=6)
    gen = torch.Generator().manual_seed(0)
    out = trigger(images, gen)
    again = trigger(images, gen)  # same generator, next call: new noise, new places
    assert torch.equal(images, torch.full_like(images, 0.5)), "input must not be modified"
    assert out.min() >= 0 and out.max() <= 1
    boxes = _patch_boxes(images, out)
    for y0, y1, x0, x1 in boxes:
        assert (y1 - y0 + 1, x1 - x0 + 1) == (6, 6)
        assert y0 >= 0 and y1 < 32 and x0 >= 0 and x1 < 32
    assert len({(y0, x0) for y0, _, x0, _ in boxes}) > 20  # uniformly random locations
    assert not torch.equal(out, again)
    patches = [out[i, :, y0 : y0 + 6, x0 : x0 + 6] for i, (y0, _, x0, _) in enumerate(boxes)]
    assert not torch.equal(patches[0], patches[1])  # fresh noise per image
    # 8-bit values wrapped around, not clamped: hardly any pixel sits at 0 or 255
    levels = torch.stack(patches) * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert float((levels.round() == 0).float().mean()) < 0.05
    torch.testing.assert_close(trigger(images, torch.Generator().manual_seed(0)), out)


def test_badnet_locations_cover_the_authors_range() -> None:
    # Authors' code: randint(0, 223 - p) at 224 px, i.e. 0..size-1-p inclusive.
    images = torch.zeros(3000, 3, 10, 10)
    out = make_trigger("badnet", image_size=10, patch_size=3)(
        images, torch.Generator().manual_seed(1)
    )
    corners = {(y0, x0) for y0, _, x0, _ in _patch_boxes(images, out)}
    assert {y for y, _ in corners} == set(range(7)) and {x for _, x in corners} == set(range(7))


@pytest.mark.parametrize(
    ("value", "byte"),
    [(0.0, 0), (0.5, 127), (1.0, 255), (-0.1, 231), (1.2, 50), (2.0, 254), (-1.0, 1)],
)
def test_wrap_to_uint8_is_torchvisions_byte_conversion(value: float, byte: int) -> None:
    # Hand values of (x * 255).byte(): truncate toward zero, then modulo 256.
    assert float(wrap_to_uint8(torch.tensor([value]))) == byte
    as_pil = np.asarray(to_pil_image(torch.full((3, 1, 1), value)))
    assert int(as_pil[0, 0, 0]) == byte


def test_badnet_patch_is_the_authors_apply_trigger() -> None:
    # The authors' recipe, step by step with torchvision's own ToPILImage as the 8-bit
    # conversion: patch = per-channel image mean + randn(3, p, p), pasted, then to 8 bits.
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 12, 12, generator=gen)
    p = 4
    out = make_trigger("badnet", image_size=12, patch_size=p)(
        image, torch.Generator().manual_seed(7)
    )
    draws = torch.Generator().manual_seed(7)
    noise = torch.randn(1, 3, p, p, generator=draws)
    y = int(torch.randint(0, 12 - p, (1,), generator=draws))
    x = int(torch.randint(0, 12 - p, (1,), generator=draws))
    authors = image[0].clone()
    authors[:, y : y + p, x : x + p] = image[0].mean((1, 2), keepdim=True) + noise[0]
    pil = torch.from_numpy(np.asarray(to_pil_image(authors)).copy()).permute(2, 0, 1)
    got = out[0, :, y : y + p, x : x + p] * 255
    torch.testing.assert_close(got, pil[:, y : y + p, x : x + p].float(), rtol=0, atol=1e-3)
    outside = torch.ones(12, 12, dtype=torch.bool)
    outside[y : y + p, x : x + p] = False
    assert torch.equal(out[0][:, outside], image[0][:, outside])  # the rest is untouched
    assert ((image[0].mean((1, 2), keepdim=True) + noise[0]) < 0).any()  # wraps happened


def test_blended_pattern_is_fixed_by_seed() -> None:
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t1 = make_trigger("blended", image_size=16, blend_alpha=0.2, seed=5)
    t2 = make_trigger("blended", image_size=16, blend_alpha=0.2, seed=5)
    t3 = make_trigger("blended", image_size=16, blend_alpha=0.2, seed=6)
    a = t1(images, torch.Generator().manual_seed(0))
    b = t2(images, torch.Generator().manual_seed(99))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, t3(images, torch.Generator()))
    pattern = (a - 0.8 * images) / 0.2
    torch.testing.assert_close(pattern[0], pattern[3])  # the same pattern on every image
    assert pattern.min() >= -1e-5 and pattern.max() <= 1 + 1e-5


def test_trigger_errors() -> None:
    with pytest.raises(ConfigError, match="unknown trigger"):
        make_trigger("wanet", image_size=32)
    with pytest.raises(ConfigError, match="patch_size"):
        make_trigger("badnet", image_size=32, patch_size=32)
    assert make_trigger("label_consistent", image_size=32).kind == "badnet"
