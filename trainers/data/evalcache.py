"""The decoded eval set on disk, shared by every trial, epoch and sweep that reads it.

ImageNet val at 224 px is 7.5 GB of uint8, past what a trial keeps in memory, so without
this every evaluation of every trial decodes 50,000 JPEGs. Here the first trial decodes
and resizes the set once into `<cache_dir>/eval/<key>/images.u8` (uint8 [N, 3, S, S], raw
C order) with `labels.npy` and `meta.json`; every later one maps the file read-only
(copy-on-write, so the page cache is shared by the trials of a node and nothing is read
twice from disk while it stays cached). The trigger is never cached: the evaluation
applies it to the float tensor made from these bytes, as on a fresh decode.

The key hashes the image size, the resize rule, the labels and each file's identity
(absolute path, size, mtime), not its bytes: hashing 6.4 GB of JPEGs per trial would cost
what the cache saves. A file rewritten in place gets a new mtime and so a new cache.

Concurrency: builders take an exclusive `flock` on `<key>.lock`, so trials that start at
once decode once (the others wait, then map the result); the build goes to a temporary
folder renamed into place, so a killed builder leaves nothing that a reader would take for
a cache, and where `flock` does not hold (some network file systems) two builders each
write a whole folder and the loser of the rename discards its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

CACHE_VERSION = 1
IMAGES_FILE = "images.u8"
# The eval decode's resize rule (`transforms.decode_image`'s default); part of the key.
RESIZE_MODE = "shortest"

Decoded = Iterator[tuple[Tensor, Tensor]]  # batches of (uint8 [B, 3, S, S], labels [B])


def eval_cache_key(files: list[str], labels: list[int], image_size: int) -> str:
    """The key of a decoded eval set: image size, resize rule, labels, files' identity."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, image_size, RESIZE_MODE, labels]).encode())
    for path in files:
        st = os.stat(path)
        h.update(f"\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def open_cached(folder: Path) -> tuple[Tensor, Tensor] | None:
    """(images uint8 [N, 3, S, S], mapped from disk; labels long [N]), or None if absent."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        n, size = int(meta["n"]), int(meta["image_size"])
        labels = torch.from_numpy(np.load(folder / "labels.npy", allow_pickle=False))
        # mode "c": private copy-on-write pages, so a tensor op that writes in place can
        # never reach the shared file.
        images = np.memmap(folder / IMAGES_FILE, dtype=np.uint8, mode="c", shape=(n, 3, size, size))
    except (OSError, ValueError, KeyError) as err:
        log.warning("eval cache %s is unreadable (%s); decoding the eval set", folder, err)
        return None
    if len(labels) != n:
        log.warning("eval cache %s holds %d labels for %d images; decoding", folder, len(labels), n)
        return None
    if meta.get("left_out"):
        log.warning("eval cache %s: %d unreadable eval image(s) left out", folder, meta["left_out"])
    return torch.from_numpy(images), labels.long()


def open_or_build(
    cache_dir: str | os.PathLike[str], key: str, image_size: int, n_files: int, decode: Decoded
) -> tuple[Tensor, Tensor] | None:
    """The cached set under `<cache_dir>/eval/<key>`, built from `decode` when absent.

    `decode` is only consumed when this call builds the cache. None when the cache folder
    cannot be written (full disk, read-only): the caller decodes without it.
    """
    root = Path(cache_dir) / "eval"
    folder = root / key
    hit = open_cached(folder)
    if hit is not None:
        return hit
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root / f"{key}.lock"):
            hit = open_cached(folder)  # built by another trial while this one waited
            if hit is not None:
                return hit
            _build(root, key, image_size, n_files, decode)
    except OSError as err:
        log.warning("cannot write the eval cache under %s (%s); decoding without it", root, err)
        return None
    return open_cached(folder)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(root: Path, key: str, image_size: int, n_files: int, decode: Decoded) -> None:
    # Under the lock, a temporary folder of this key is a killed builder's: remove it.
    for stale in root.glob(f".tmp-{key}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{key}-{os.getpid()}"
    tmp.mkdir()
    try:
        n, labels = _write_images(tmp / IMAGES_FILE, decode)
        if n == 0:
            return  # nothing readable: the evaluation reports it, nothing is cached
        np.save(tmp / "labels.npy", np.asarray(labels, dtype=np.int64), allow_pickle=False)
        meta = {"n": n, "image_size": image_size, "left_out": n_files - n, "key": key}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(tmp, root / key)
        except OSError:
            if not (root / key / "meta.json").is_file():
                raise
            log.info("eval cache %s was built by another trial; keeping that one", root / key)
        else:
            log.info(
                "eval set decoded once into %s (%d images at %d px)", root / key, n, image_size
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_images(path: Path, decode: Decoded) -> tuple[int, list[int]]:
    n = 0
    labels: list[int] = []
    with open(path, "wb") as f:
        for images, batch_labels in decode:
            f.write(images.contiguous().numpy().tobytes())
            labels.extend(batch_labels.tolist())
            n += len(batch_labels)
        f.flush()
        os.fsync(f.fileno())
    return n, labels
