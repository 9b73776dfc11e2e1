"""Cheap indexes of image-text pair sets: WebDataset shards or a CleanCLIP CSV.

An index lists every sample's key and caption without decoding an image, so poison
selection (which needs captions for the label-consistent attack) and the loader agree on
one numbering: a sample's *position* in the index. Shards are read with `tarfile` headers
(the data of image members is skipped) and grouped into samples by WebDataset's own rule
(`base_plus_ext`), so the loader, which streams shards through `webdataset`, finds the same
keys.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import glob
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, overload

import braceexpand
import numpy as np
from webdataset.gopen import gopen
from webdataset.tariterators import base_plus_ext

from trainers.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSION = "txt"
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# WebDataset skips members named like "__meta__" or "__stats__/x"; so must the index.
_META_MEMBER = re.compile(r"__[^/]*__($|/)")


class PackedStrings(Sequence[str]):
    """An immutable list of strings stored as one UTF-8 blob plus offsets.

    Millions of short Python strings cost ~60 bytes each; packed, a CC3M-sized index
    (keys and captions) stays a few hundred MB smaller and pickles fast to loader workers.
    """

    __slots__ = ("_blob", "_offsets")

    def __init__(self, blob: bytes, offsets: np.ndarray) -> None:
        self._blob = blob
        self._offsets = offsets

    @classmethod
    def pack(cls, strings: Iterable[str]) -> PackedStrings:
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return cls(b"".join(encoded), offsets)

    @property
    def blob(self) -> bytes:
        return self._blob

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> PackedStrings: ...
    def __getitem__(self, i: int | slice) -> str | PackedStrings:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return PackedStrings.pack([self[j] for j in range(start, stop, step)])
            stop = max(start, stop)
            lo, hi = int(self._offsets[start]), int(self._offsets[stop])
            return PackedStrings(self._blob[lo:hi], self._offsets[start : stop + 1] - lo)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} strings")
        return self._blob[int(self._offsets[i]) : int(self._offsets[i + 1])].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        offs = self._offsets.tolist()
        blob = self._blob
        for lo, hi in zip(offs[:-1], offs[1:], strict=True):
            yield blob[lo:hi].decode("utf-8")

    def __repr__(self) -> str:
        return f"PackedStrings(n={len(self)})"


@dataclass(frozen=True)
class PairIndex:
    """Keys and captions of a pair set, in reading order; a sample's position is its id.

    `kind == "shards"`: samples of `shards[s]` occupy positions
    `shard_starts[s]:shard_starts[s + 1]`. `kind == "csv"`: keys are the image paths,
    relative to `csv_root`.
    """

    source: str
    kind: Literal["shards", "csv"]
    keys: PackedStrings
    captions: PackedStrings
    shards: tuple[str, ...] = ()
    shard_starts: tuple[int, ...] = ()
    csv_root: str = ""
    # Readable notes on data the index could not fully read (a truncated shard, ...).
    problems: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.keys)

    def head(self, n: int) -> PairIndex:
        """The first `n` samples (all of them when there are fewer)."""
        if n >= len(self):
            return self
        if self.kind == "csv":
            return replace(self, keys=self.keys[:n], captions=self.captions[:n])
        n_shards = bisect.bisect_left(self.shard_starts, n, hi=len(self.shards))
        starts = self.shard_starts[:n_shards] + (n,)
        return replace(
            self,
            keys=self.keys[:n],
            captions=self.captions[:n],
            shards=self.shards[:n_shards],
            shard_starts=starts,
        )

    def describe(self) -> str:
        where = f"{len(self.shards)} shard(s)" if self.kind == "shards" else "a CSV"
        return f"{len(self)} pairs in {where} at {self.source}"


def index_pairs(path: str, *, cache_dir: str | None = None) -> PairIndex:
    """Index a directory of .tar shards, a brace pattern or glob of shards, a `pipe:` command
    or URL (brace patterns expanded, as WebDataset does), or a .csv file.

    With `cache_dir`, a shard index is read from (or written to) `<cache_dir>/index/`
    (`index_cache`), so only the first trial on a dataset scans its tars. A `pipe:`/URL
    source is indexed by streaming each shard once (its captions are needed to choose the
    poison), then cached under its URL text. Raises `DataError` naming `path` when it does
    not exist or holds no samples.
    """
    if not str(path).strip():
        raise DataError("no training data given: set data.train to a shard folder or a CSV")
    path = str(path)
    if path.lower().endswith((".csv", ".tsv")) and not is_remote(path):
        index = _index_csv(path)
    else:
        index = _cached_shard_index(path, resolve_shards(path), cache_dir)
    if len(index) == 0:
        notes = "; ".join(index.problems[:3])
        raise DataError(f"no image-text samples in {path}" + (f" ({notes})" if notes else ""))
    for note in index.problems:
        log.warning("%s", note)
    return index


def is_remote(path: str) -> bool:
    """A `pipe:` command or a URL: opened by WebDataset's `gopen`, not by path."""
    return path.startswith("pipe:") or "://" in path


def resolve_shards(path: str) -> list[str]:
    """The shard files a shard spec names, sorted; `DataError` naming `path` if none.

    A `pipe:`/URL spec is brace-expanded only: whether each shard exists is known when it
    is streamed (an unreadable one is reported by the index).
    """
    if is_remote(path):
        return list(braceexpand.braceexpand(path))
    if os.path.isdir(path):
        shards = sorted(str(p) for p in Path(path).iterdir() if p.name.endswith(SHARD_SUFFIXES))
        if not shards:
            raise DataError(f"no .tar shards in the folder {path} (data.train)")
        return shards
    if "{" in path:
        shards = list(braceexpand.braceexpand(path))
        missing = [s for s in shards if not os.path.isfile(s)]
        if missing:
            raise DataError(
                f"{len(missing)} of the {len(shards)} shards of {path} do not exist "
                f"(first: {', '.join(missing[:3])}); check the pattern in data.train"
            )
        return shards
    if any(c in path for c in "*?["):
        shards = sorted(glob.glob(path))
        if not shards:
            raise DataError(f"no file matches the shard pattern {path} (data.train)")
        return shards
    if os.path.isfile(path):
        return [path]
    raise DataError(f"training data {path} does not exist (data.train)")


def _cached_shard_index(source: str, shards: list[str], cache_dir: str | None) -> PairIndex:
    if cache_dir is None:
        return _index_shards(source, shards)
    # Imported here: index_cache builds on this module's PairIndex.
    from trainers.data.index_cache import index_path, load_index, save_index

    path = index_path(cache_dir, shards)
    index = load_index(path, source, shards)
    if index is not None:
        log.info("shard index of %s read from %s", source, path)
        return index
    index = _index_shards(source, shards)
    if len(index):
        save_index(path, index)
        log.info("shard index of %s written to %s", source, path)
    return index


def _index_shards(source: str, shards: list[str]) -> PairIndex:
    keys: list[str] = []
    captions: list[str] = []
    starts = [0]
    problems: list[str] = []
    for shard in shards:
        problem = _index_one_shard(shard, keys, captions)
        if problem:
            problems.append(problem)
        starts.append(len(keys))
    return PairIndex(
        source=source,
        kind="shards",
        keys=PackedStrings.pack(keys),
        captions=PackedStrings.pack(captions),
        shards=tuple(shards),
        shard_starts=tuple(starts),
        problems=tuple(problems),
    )


def _index_one_shard(shard: str, keys: list[str], captions: list[str]) -> str | None:
    """Append the shard's samples; a note when it could not be read to the end."""
    first = len(keys)
    current: str | None = None
    remote = is_remote(shard)
    try:
        with _open_tar(shard) as tar:
            for member in tar:
                if not member.isreg() or _META_MEMBER.match(member.name):
                    continue
                prefix, suffix = base_plus_ext(member.name)
                if prefix is None:
                    continue
                if prefix != current:
                    keys.append(prefix)
                    captions.append("")
                    current = prefix
                if suffix.lower() == CAPTION_EXTENSION:
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    captions[-1] = data.decode("utf-8", errors="replace").strip()
            end = tar.offset
    except (tarfile.TarError, OSError, EOFError, ValueError) as err:
        # ValueError: gopen refusing a pipe: under WDS_SECURE=1.
        # A truncated or corrupt shard keeps the samples listed so far; the loader counts
        # whatever of them it cannot read as skipped.
        return f"shard {shard} is unreadable after {len(keys) - first} samples: {err}"
    if remote:
        return None  # a stream has no size to check the end against
    if shard.endswith(".tar") and os.path.getsize(shard) - end < 2 * tarfile.BLOCKSIZE:
        # tarfile stops quietly when a file ends exactly between members; a complete
        # archive ends with two zero blocks.
        return f"shard {shard} ends without its end-of-archive blocks: truncated?"
    return None


@contextlib.contextmanager
def _open_tar(shard: str) -> Iterator[tarfile.TarFile]:
    """A local shard by path; a `pipe:`/URL one as a stream through WebDataset's `gopen`
    (what the loader reads it with), whose close reports a failed command."""
    if not is_remote(shard):
        with tarfile.open(shard, "r:*") as tar:
            yield tar
        return
    stream = gopen(shard, "rb")
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            yield tar
    finally:
        stream.close()


def _index_csv(path: str) -> PairIndex:
    if not os.path.isfile(path):
        raise DataError(f"training CSV {path} does not exist (data.train)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = f.readline()
            f.seek(0)
            delimiter = "\t" if "\t" in header and "," not in header else ","
            reader = csv.DictReader(f, delimiter=delimiter)
            columns = reader.fieldnames or []
            if "image" not in columns or "caption" not in columns:
                raise DataError(
                    f"CSV {path} needs columns 'image' and 'caption' (found: "
                    f"{', '.join(columns) or 'none'}); rename its header"
                )
            rows = [((r["image"] or "").strip(), (r["caption"] or "").strip()) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read the training CSV {path}: {err}") from err
    return PairIndex(
        source=path,
        kind="csv",
        keys=PackedStrings.pack(r[0] for r in rows),
        captions=PackedStrings.pack(r[1] for r in rows),
        csv_root=str(Path(path).resolve().parent),
    )
