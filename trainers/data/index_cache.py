"""The shard index on disk, built once per dataset and reused by every trial that reads it.

Indexing reads every tar header of every shard (and every caption): minutes for CC3M's 332
shards, once per trial without a cache. The index is stored as
`<cache_dir>/index/<key>.npz` (numpy arrays only, read without pickle), where the key hashes
the shard list and each local shard's identity (absolute path, size, mtime): a rewritten
shard changes its size or mtime and gets a fresh index. A `pipe:` or URL shard has no
identity to read without streaming it, so its key is the URL text alone: a source whose
content changes behind an unchanged URL needs its cache file deleted (the log names it).

Files are written under a temporary name and renamed into place, so concurrent trials
building the same index at once each write a whole file and the last rename wins (the files
are identical); a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from trainers.data.readers import PackedStrings, PairIndex, is_remote

log = logging.getLogger(__name__)

INDEX_VERSION = 1


def index_key(shards: list[str]) -> str:
    """The cache key of a shard list: its files' identity, or the URL text when remote."""
    ident: list[object] = [INDEX_VERSION]
    for shard in shards:
        if is_remote(shard):
            ident.append(shard)
        else:
            st = os.stat(shard)
            ident.append([os.path.abspath(shard), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:24]


def index_path(cache_dir: str | os.PathLike[str], shards: list[str]) -> Path:
    return Path(cache_dir) / "index" / f"{index_key(shards)}.npz"


def load_index(path: Path, source: str, shards: list[str]) -> PairIndex | None:
    """The cached index at `path` (for `source`), or None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            keys = PackedStrings(z["keys_blob"].tobytes(), z["keys_offsets"].copy())
            captions = PackedStrings(z["captions_blob"].tobytes(), z["captions_offsets"].copy())
            starts = tuple(int(s) for s in z["shard_starts"])
    except (OSError, ValueError, KeyError) as err:
        log.warning("shard index %s is unreadable (%s); indexing again", path, err)
        return None
    if meta.get("shards") != shards or len(starts) != len(shards) + 1:
        log.warning("shard index %s does not match its shards; indexing again", path)
        return None
    return PairIndex(
        source=source,
        kind="shards",
        keys=keys,
        captions=captions,
        shards=tuple(shards),
        shard_starts=starts,
        problems=tuple(meta.get("problems", ())),
    )


def save_index(path: Path, index: PairIndex) -> None:
    """Write `index` to `path` atomically; a failure to write is logged, never fatal."""
    meta = {"version": INDEX_VERSION, "shards": list(index.shards), "problems": index.problems}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(
                f,
                meta=np.array(json.dumps(meta)),
                keys_blob=np.frombuffer(index.keys.blob, dtype=np.uint8),
                keys_offsets=index.keys.offsets,
                captions_blob=np.frombuffer(index.captions.blob, dtype=np.uint8),
                captions_offsets=index.captions.offsets,
                shard_starts=np.asarray(index.shard_starts, dtype=np.int64),
            )
        os.replace(tmp, path)
    except OSError as err:
        # A read-only or full cache folder costs the next trial a re-scan, nothing more.
        log.warning("cannot write the shard index %s (%s); it is rebuilt next time", path, err)
        tmp.unlink(missing_ok=True)
