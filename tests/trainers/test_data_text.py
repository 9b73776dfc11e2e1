"""Caption text: templates, class names, whole-word matching and EDA."""

from __future__ import annotations

import math
import random

import pytest
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from trainers.data import CLIP_TEMPLATES, DEFAULT_CLASSES, contains_word, eda, imagenet_classnames
from trainers.data.shapes import PALETTE
from trainers.data.text import (
    STOP_WORDS,
    normalize_caption,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
    synonyms_of,
)


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


def test_wordnet_covers_the_synthetic_vocabulary() -> None:
    for word in (*DEFAULT_CLASSES, *PALETTE, "small", "big", "photo", "background", "grass"):
        assert synonyms_of(word), f"no WordNet synonym for {word!r}"


# WordNet 3.0 facts (as NLTK's `wordnet.synsets` + EDA's `get_synonyms` give them).
@pytest.mark.parametrize(
    ("word", "some_synonyms"),
    [
        ("car", {"auto", "automobile", "machine", "motorcar", "railcar"}),
        ("dogs", {"dog", "domestic dog", "canis familiaris"}),  # morphy: dogs -> dog
        ("churches", {"church", "church building"}),  # morphy: ches -> ch
        ("mice", {"mouse", "computer mouse"}),  # WordNet's noun exception list
        ("running", {"run", "operative", "campaign"}),  # verb, noun and adjective senses
        ("photo", {"photograph", "exposure", "pic", "picture"}),
        ("a", {"angstrom", "vitamin a", "adenine"}),  # EDA looks up stop words too (insertion)
    ],
)
def test_wordnet_synonyms(word: str, some_synonyms: set[str]) -> None:
    found = set(synonyms_of(word))
    assert some_synonyms <= found, some_synonyms - found
    assert word not in found


def test_words_without_other_lemmas_have_no_synonyms() -> None:
    assert synonyms_of("beach") == ()  # both of its synsets hold only "beach"
    assert synonyms_of("the") == () and synonyms_of("xqzv") == ()


def test_eda_stop_words_are_edas_list() -> None:
    assert len(STOP_WORDS) == 127 and {"because", "while", "the", "don"} <= STOP_WORDS
    words = ["the", "dog", "and", "the", "car"]
    for seed in range(50):
        out = synonym_replacement(words, 1, random.Random(seed))
        assert out.count("the") == 2 and "and" in out


# Captions written in CC3M's style (lowercase, entities replaced by hypernyms), 6-12 words.
CC3M_STYLE = [
    "actor attends the premiere of the film",
    "a man walks his dog on the beach at sunset",
    "person looks out of the window of a train",
    "the old church in the centre of the city",
    "a woman holding an umbrella in the rain",
    "aerial view of a small village surrounded by forest",
    "football player celebrates after scoring a goal during the match",
    "a bowl of fresh fruit on a wooden kitchen table",
    "young girl playing with her toys in the living room",
    "illustration of a cartoon cat sitting on a fence",
    "tourists walk along the street in the historic district",
    "a red car parked in front of a house",
    "the bride and groom pose for a photo after the wedding ceremony",
    "close up of a bee collecting pollen from a yellow flower",
    "snow covered mountains reflected in a calm lake",
    "businessman talking on the phone in his office",
    "a group of friends having dinner at a restaurant",
    "pop artist performs on stage during the festival",
    "vector illustration of a christmas tree with gifts",
    "a boat sailing on the river under a blue sky",
    "children run through a field of tall grass",
    "portrait of a smiling woman with long hair",
    "the skyline of the city at night",
    "a cup of coffee and a book on the bed",
    "horses grazing in a green meadow near the farm",
    "politician speaks to the media outside the building",
    "fireworks light up the sky over the harbour",
    "a chef preparing food in a busy kitchen",
    "abstract background with colorful lines and circles",
    "an elderly couple sitting on a park bench",
    "sports team poses with the trophy after winning the championship",
    "a bird perched on a branch of a tree",
    "students listen to a lecture in the classroom",
    "close up of hands typing on a laptop keyboard",
    "the ruins of an ancient castle on a hill",
    "a little boy riding a bicycle down the road",
    "crowd of people waiting at the train station",
    "a plate of pasta with tomato sauce and basil",
    "the interior of a modern apartment with large windows",
    "waves crashing against the rocks on the coast",
]
DRAWS = 200


def _rng(caption: str, draw: int) -> random.Random:
    # A separate stream per caption and draw (as the loader's per-sample seeds are): the
    # same 200 seeds for every caption would make the captions' rates move together.
    return random.Random(f"{caption}/{draw}")


def _changed_fraction(op, caption: str) -> float:  # type: ignore[no-untyped-def]
    words = caption.split()
    n = max(1, int(0.1 * len(words)))
    outs = [" ".join(" ".join(op(list(words), n, _rng(caption, s))).split()) for s in range(DRAWS)]
    return sum(o != caption for o in outs) / DRAWS


@pytest.mark.parametrize("op", [synonym_replacement, random_insertion], ids=["sr", "ri"])
def test_synonym_operations_change_every_ordinary_caption(op) -> None:  # type: ignore[no-untyped-def]
    # The old 538-word lexicon left 10-100% of these captions unchanged under SR and RI.
    rates = {c: _changed_fraction(op, c) for c in CC3M_STYLE}
    low = {c: r for c, r in rates.items() if r < 0.95}
    assert not low, low


def test_swap_keeps_a_caption_only_when_it_swaps_equal_words() -> None:
    # One swap of two distinct positions (n < 20 words): unchanged exactly when both hold
    # the same word, probability sum_w c_w (c_w - 1) / (n (n - 1)).
    for caption in CC3M_STYLE:
        words = caption.split()
        n = len(words)
        same = sum(words.count(w) * (words.count(w) - 1) for w in set(words)) / (n * (n - 1))
        kept = 1 - _changed_fraction(random_swap, caption)
        assert kept == pytest.approx(same, abs=4 * math.sqrt(0.25 / DRAWS)), caption


def test_deletion_keeps_a_caption_as_edas_rate_says() -> None:
    # EDA's deletion drops each word with p = 0.1, so it leaves an n-word caption whole
    # with probability 0.9^n (the authors' code does the same).
    for caption in CC3M_STYLE[:10]:
        n = len(caption.split())
        kept = 1 - _changed_fraction(lambda w, _n, r: random_deletion(w, 0.1, r), caption)
        assert kept == pytest.approx(0.9**n, abs=4 * math.sqrt(0.25 / DRAWS)), caption


def test_augmented_captions_differ_as_often_as_eda_allows() -> None:
    # One of the four operations at random: unchanged only when deletion drew no word
    # (probability 0.9^n / 4) or a swap exchanged two equal words (under 2% here).
    unchanged, floor = [], []
    for caption in CC3M_STYLE:
        outs = [eda(caption, _rng(caption, s)) for s in range(DRAWS)]
        unchanged.append(sum(o == caption for o in outs) / DRAWS)
        floor.append(0.9 ** len(caption.split()) / 4)
    mean_unchanged = sum(unchanged) / len(unchanged)
    print(f"unchanged: {mean_unchanged:.3f} (deletion's floor {sum(floor) / len(floor):.3f})")
    assert mean_unchanged <= sum(floor) / len(floor) + 0.02
    assert max(u - f for u, f in zip(unchanged, floor, strict=True)) < 0.06


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
