"""Caption text: templates, class names, whole-word matching and EDA."""

from __future__ import annotations

import random

import pytest
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from trainers.data import CLIP_TEMPLATES, DEFAULT_CLASSES, contains_word, eda, imagenet_classnames
from trainers.data.shapes import PALETTE
from trainers.data.text import normalize_caption, synonyms_of


def test_templates_are_open_clips_80() -> None:
    assert len(CLIP_TEMPLATES) == 80
    assert list(CLIP_TEMPLATES) == list(OPENAI_IMAGENET_TEMPLATES)
    assert all("banana" in t("banana") for t in CLIP_TEMPLATES)


def test_imagenet_classnames() -> None:
    names = imagenet_classnames()
    assert len(names) == 1000 and names[0] == "tench" and "banana" in names


@pytest.mark.parametrize(
    ("caption", "word", "expected"),
    [
        ("A Banana on a table.", "banana", True),
        ("banana", "BANANA", True),
        ("the banana's peel", "banana", True),
        ("two bananas", "banana", False),
        ("bananabread for tea", "banana", False),
        ("a plantain", "banana", False),
        ("a red t-shirt here", "t-shirt", True),
        ("a golf ball", "golf ball", True),
        ("anything", "", False),
    ],
)
def test_contains_word(caption: str, word: str, expected: bool) -> None:
    assert contains_word(caption, word) is expected


def test_lexicon_covers_the_synthetic_vocabulary() -> None:
    for word in (*DEFAULT_CLASSES, *PALETTE, "small", "big", "photo", "background", "grass"):
        assert synonyms_of(word), f"no synonym for {word!r} in the shipped lexicon"


def test_eda_is_deterministic_by_rng() -> None:
    caption = "a small red apple on a blue background"
    assert eda(caption, random.Random(5)) == eda(caption, random.Random(5))


def test_eda_changes_some_words_but_keeps_most() -> None:
    caption = "A small red apple lying on a wooden table, next to a blue dot."
    words = normalize_caption(caption).split()
    outputs = [eda(caption, random.Random(seed)).split() for seed in range(300)]
    changed = [o for o in outputs if o != words]
    assert len(changed) > 0.6 * len(outputs)
    kept = [sum(min(o.count(w), words.count(w)) for w in set(words)) / len(words) for o in outputs]
    assert min(kept) >= 0.6  # deletion at p = 0.1 may, rarely, drop several words
    assert sum(kept) / len(kept) > 0.9
    # each of EDA's four operations shows up: insertion, deletion, swap, replacement
    assert any(len(o) > len(words) for o in outputs)
    assert any(len(o) < len(words) for o in outputs)
    assert any(o != words and sorted(o) == sorted(words) for o in outputs)
    assert any(len(o) == len(words) and sorted(o) != sorted(words) for o in outputs)


def test_eda_normalises_like_eda_and_handles_empty_text() -> None:
    out = eda("It's a BIG, Red ball!", random.Random(0))
    assert out == out.lower() and all(c.isalpha() or c == " " for c in out)
    assert eda("", random.Random(0)) == ""
    assert eda("?!", random.Random(0)) == ""
