"""Caption text: the CLIP prompt templates, ImageNet class names, EDA and word matching.

EDA (Wei & Zou 2019) is CleanCLIP's text augmentation for the in-modal SSL loss. The
authors call it with `num_aug=1` and every rate at 0.1: EDA then builds one candidate per
operation (synonym replacement, random insertion, random swap, random deletion) and keeps
one of them at random, so each augmented caption has exactly one operation applied. We do
the same. WordNet is replaced by a small hand-written lexicon shipped in `trainers/assets`.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

# The 80 prompt templates of CLIP's ImageNet zero-shot classifier ("a photo of a {}.").
CLIP_TEMPLATES: list[Callable[[str], str]] = list(OPENAI_IMAGENET_TEMPLATES)

LEXICON_PATH = Path(__file__).resolve().parents[1] / "assets" / "eda_lexicon.json"


def imagenet_classnames() -> list[str]:
    """The 1000 ImageNet-1K class names in class-index order (open_clip's list)."""
    return list(IMAGENET_CLASSNAMES)


@functools.lru_cache(maxsize=256)
def _word_pattern(word: str) -> re.Pattern[str]:
    # Lookarounds instead of \b so that targets starting or ending in a non-word character
    # ("t-shirt", "o'clock") still match as a whole.
    return re.compile(rf"(?<!\w){re.escape(word.strip())}(?!\w)", re.IGNORECASE)


def contains_word(caption: str, word: str) -> bool:
    """Whether `word` occurs in `caption` as a whole word (case-insensitive).

    "banana" matches "A Banana." and "banana's peel", not "bananas" or "bananabread".
    """
    if not word.strip():
        return False
    return _word_pattern(word).search(caption) is not None


@functools.lru_cache(maxsize=1)
def _lexicon() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    raw = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    synonyms: dict[str, set[str]] = {}
    for group in raw["groups"]:
        for word in group:
            synonyms.setdefault(word, set()).update(w for w in group if w != word)
    # Sorted tuples: the choice made by a seeded rng must not depend on set order.
    return frozenset(raw["stop_words"]), {w: tuple(sorted(s)) for w, s in synonyms.items()}


def synonyms_of(word: str) -> tuple[str, ...]:
    """Synonyms of `word` in the shipped lexicon (empty when it has none)."""
    return _lexicon()[1].get(word, ())


def normalize_caption(caption: str) -> str:
    """EDA's clean-up: lowercase, apostrophes dropped, anything but a-z becomes a space."""
    text = caption.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^a-z]+", " ", text).split())


def eda(caption: str, rng: random.Random, alpha: float = 0.1) -> str:
    """One EDA augmentation of `caption` (one of four operations, each at rate `alpha`).

    The result is normalised like EDA's output (lowercase letters and single spaces). A
    caption without letters comes back normalised (possibly empty).
    """
    words = normalize_caption(caption).split()
    if not words:
        return ""
    n_changes = max(1, int(alpha * len(words)))
    operation = rng.randrange(4)
    if operation == 0:
        words = _synonym_replacement(words, n_changes, rng)
    elif operation == 1:
        words = _random_insertion(words, n_changes, rng)
    elif operation == 2:
        words = _random_swap(words, n_changes, rng)
    else:
        words = _random_deletion(words, alpha, rng)
    return " ".join(" ".join(words).split())


def _synonym_replacement(words: list[str], n: int, rng: random.Random) -> list[str]:
    stop_words, _ = _lexicon()
    candidates = sorted({w for w in words if w not in stop_words})
    rng.shuffle(candidates)
    out = list(words)
    replaced = 0
    for word in candidates:
        options = synonyms_of(word)
        if not options:
            continue
        synonym = rng.choice(options)
        out = [synonym if w == word else w for w in out]
        replaced += 1
        if replaced >= n:
            break
    return out


def _random_insertion(words: list[str], n: int, rng: random.Random) -> list[str]:
    out = list(words)
    for _ in range(n):
        # EDA tries ten random words for one that has a synonym, then gives up.
        for _attempt in range(10):
            options = synonyms_of(out[rng.randrange(len(out))])
            if options:
                out.insert(rng.randrange(len(out) + 1), rng.choice(options))
                break
    return out


def _random_swap(words: list[str], n: int, rng: random.Random) -> list[str]:
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i = rng.randrange(len(out))
        j = rng.randrange(len(out) - 1)
        j = j + 1 if j >= i else j  # a different position, uniformly
        out[i], out[j] = out[j], out[i]
    return out


def _random_deletion(words: list[str], p: float, rng: random.Random) -> list[str]:
    if len(words) == 1:
        return list(words)
    kept = [w for w in words if rng.random() > p]
    return kept if kept else [words[rng.randrange(len(words))]]
