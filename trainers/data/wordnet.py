"""WordNet 3.0 synonyms for EDA, read from a table shipped in `trainers/assets`.

EDA (Wei & Zou 2019), as CleanCLIP and the paper's authors call it, takes its synonyms from
NLTK's WordNet: `get_synonyms(word)` is every lemma of every synset of
`wordnet.synsets(word)`, underscores and hyphens turned into spaces, lowercased, anything
but a-z and spaces dropped, the word itself removed. `wordnet.synsets` first lemmatises the
word with WordNet's `morphy` (exception lists, then suffix rules), so "dogs" finds the
synsets of "dog". NLTK's WordNet corpus is a run-time download, so the project ships the
part of WordNet 3.0 (the same release NLTK's corpus is) that a caption word can reach:
every single-word lemma of a-z letters, its synsets' lemma names and the exception lists.
`python -m trainers.data.wordnet DICT_DIR` rebuilds the table from a WordNet 3.0 `dict/`
folder (data.*, index.*, *.exc); WordNet's licence is shipped beside it.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

TABLE_PATH = Path(__file__).resolve().parents[1] / "assets" / "wordnet30_synonyms.json.gz"

# NLTK's POS_LIST order: noun, verb, adjective, adverb.
POS = ("n", "v", "a", "r")
_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}

# NLTK's WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS (the rules of WordNet's morphy).
SUBSTITUTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (
        ("s", ""),
        ("ses", "s"),
        ("ves", "f"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "v": (
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}

_WORD = re.compile(r"^[a-z]+$")
# Adjective lemmas carry a syntactic marker in the data files ("galore(ip)"); NLTK drops it.
_MARKER = re.compile(r"\([a-z]+\)$")


def clean_lemma(name: str) -> str:
    """EDA's clean-up of a lemma name: '_' and '-' to spaces, lowercase, only a-z and spaces."""
    name = _MARKER.sub("", name).replace("_", " ").replace("-", " ").lower()
    return "".join(c for c in name if c in " abcdefghijklmnopqrstuvwxyz")


class WordNet:
    """The synonym side of NLTK's WordNet reader, over the shipped table."""

    def __init__(self, table: dict) -> None:
        self._synsets: list[tuple[str, ...]] = [tuple(s) for s in table["synsets"]]
        self._index: dict[str, dict[str, list[int]]] = table["index"]
        self._exceptions: dict[str, dict[str, list[str]]] = table["exceptions"]

    def morphy(self, form: str, pos: str) -> list[str]:
        """NLTK's `_morphy`: the base forms of `form` that WordNet lists under `pos`."""
        index = self._index[pos]
        rules = SUBSTITUTIONS[pos]

        def known(forms: Iterable[str]) -> list[str]:
            return list(dict.fromkeys(f for f in forms if f in index))

        def apply(forms: list[str]) -> list[str]:
            return [f[: -len(old)] + new for f in forms for old, new in rules if f.endswith(old)]

        if form in self._exceptions[pos]:
            return known([form, *self._exceptions[pos][form]])
        forms = apply([form])
        found = known([form, *forms])
        while not found and forms:
            forms = apply(forms)
            found = known(forms)
        return found

    def synonyms(self, word: str) -> tuple[str, ...]:
        """EDA's `get_synonyms(word)`, sorted (EDA's is an unordered set)."""
        word = word.lower()
        names: set[str] = set()
        for pos in POS:
            for form in self.morphy(word, pos):
                for sid in self._index[pos][form]:
                    names.update(self._synsets[sid])
        names.discard(word)
        return tuple(sorted(names))


@functools.lru_cache(maxsize=1)
def wordnet() -> WordNet:
    with gzip.open(TABLE_PATH, "rt", encoding="utf-8") as f:
        return WordNet(json.load(f))


# -- building the table from WordNet's dict/ files (a maintainer's step, not run time) ------


def _read_data(path: Path) -> dict[int, tuple[str, ...]]:
    """offset -> cleaned lemma names of that synset."""
    out: dict[int, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue  # the licence header
            fields = line.split()
            n_words = int(fields[3], 16)
            names = (clean_lemma(w) for w in fields[4 : 4 + 2 * n_words : 2])
            out[int(fields[0])] = tuple(dict.fromkeys(names))
    return out


def _read_index(path: Path) -> dict[str, list[int]]:
    """lemma -> synset offsets, single-word a-z lemmas only (no caption word reaches others)."""
    out: dict[str, list[int]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            if not _WORD.match(fields[0]):
                continue
            n_synsets = int(fields[2])
            out[fields[0]] = [int(o) for o in fields[-n_synsets:]]
    return out


def build_table(dict_dir: str | Path) -> dict:
    root = Path(dict_dir)
    synsets: list[tuple[str, ...]] = []
    ids: dict[tuple[str, int], int] = {}
    index: dict[str, dict[str, list[int]]] = {}
    exceptions: dict[str, dict[str, list[str]]] = {}
    for pos in POS:
        data = _read_data(root / f"data.{_FILES[pos]}")
        index[pos] = {}
        for lemma, offsets in _read_index(root / f"index.{_FILES[pos]}").items():
            for off in offsets:
                if (pos, off) not in ids:
                    ids[(pos, off)] = len(synsets)
                    synsets.append(data[off])
            index[pos][lemma] = [ids[(pos, off)] for off in offsets]
        exceptions[pos] = {}
        for line in (root / f"{_FILES[pos]}.exc").read_text(encoding="utf-8").splitlines():
            form, *bases = line.split()
            if _WORD.match(form):
                exceptions[pos][form] = bases
    return {
        "source": "Princeton WordNet 3.0 (see wordnet30_LICENSE.txt)",
        "synsets": [list(s) for s in synsets],
        "index": index,
        "exceptions": exceptions,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trainers.data.wordnet WORDNET_3.0_DICT_DIR", file=sys.stderr)
        return 2
    table = build_table(args[0])
    # mtime=0: the same dict/ folder always gives the same bytes.
    with open(TABLE_PATH, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(json.dumps(table, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    print(f"{TABLE_PATH}: {len(table['synsets'])} synsets, {TABLE_PATH.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
