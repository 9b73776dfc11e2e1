"""Caption text: the CLIP prompt templates, ImageNet class names, EDA and word matching.

EDA (Wei & Zou 2019) is CleanCLIP's text augmentation for the in-modal SSL loss. The
authors call it with `num_aug=1` and every rate at 0.1: EDA then builds one candidate per
operation (synonym replacement, random insertion, random swap, random deletion) and keeps
one of them at random, so each augmented caption has exactly one operation applied. We do
the same. Synonyms are WordNet 3.0's, as NLTK gives them to EDA (`trainers.data.wordnet`,
a table shipped in `trainers/assets`, since NLTK's corpus is a run-time download).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable

from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

from trainers.data.wordnet import wordnet

# The 80 prompt templates of CLIP's ImageNet zero-shot classifier ("a photo of a {}.").
CLIP_TEMPLATES: list[Callable[[str], str]] = list(OPENAI_IMAGENET_TEMPLATES)


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


# EDA's own stop-word list (eda_nlp `code/eda.py`): never replaced by a synonym.
# fmt: off
STOP_WORDS = frozenset([
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours",
    "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself",
    "it", "its", "itself", "they", "them", "their", "theirs", "themselves", "what", "which",
    "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be",
    "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an",
    "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by",
    "for", "with", "about", "against", "between", "into", "through", "during", "before",
    "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over",
    "under", "again", "further", "then", "once", "here", "there", "when", "where", "why",
    "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no",
    "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will",
    "just", "don", "should", "now",
])
# fmt: on


def synonyms_of(word: str) -> tuple[str, ...]:
    """EDA's `get_synonyms(word)`: WordNet 3.0 synonyms, as NLTK's WordNet gives them."""
    return wordnet().synonyms(word)


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
        words = synonym_replacement(words, n_changes, rng)
    elif operation == 1:
        words = random_insertion(words, n_changes, rng)
    elif operation == 2:
        words = random_swap(words, n_changes, rng)
    else:
        words = random_deletion(words, alpha, rng)
    return " ".join(" ".join(words).split())


def synonym_replacement(words: list[str], n: int, rng: random.Random) -> list[str]:
    candidates = sorted({w for w in words if w not in STOP_WORDS})
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


def random_insertion(words: list[str], n: int, rng: random.Random) -> list[str]:
    out = list(words)
    for _ in range(n):
        # EDA tries ten random words for one that has a synonym, then gives up.
        for _attempt in range(10):
            options = synonyms_of(out[rng.randrange(len(out))])
            if options:
                # EDA inserts at randint(0, len - 1) (never after the last word) and takes
                # the first synonym of an unordered set, i.e. an arbitrary one: we draw it.
                out.insert(rng.randrange(len(out)), rng.choice(options))
                break
    return out


def random_swap(words: list[str], n: int, rng: random.Random) -> list[str]:
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i = rng.randrange(len(out))
        j = rng.randrange(len(out) - 1)
        j = j + 1 if j >= i else j  # a different position, uniformly
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], p: float, rng: random.Random) -> list[str]:
    # EDA's rule: each word goes with probability p. When none goes (0.9^n of the time at
    # p = 0.1: 35% for a 10-word caption) the caption comes back unchanged, as in the
    # authors' code; that, not the synonyms, is why ~10% of augmented captions equal
    # their original.
    if len(words) == 1:
        return list(words)
    kept = [w for w in words if rng.random() > p]
    return kept if kept else [words[rng.randrange(len(words))]]
