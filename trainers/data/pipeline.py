"""What a loader worker does: read its share of the pairs, decode, poison, augment, chunk.

Each worker yields *chunks*: dicts of tensors with up to `batch_size` samples plus the
number of pairs it dropped since the previous chunk. The last chunk of a worker may be
partial (even empty, to carry a skip count); the main process (`loader.py`) merges partial
chunks, so `drop_last` drops at most one partial batch per epoch, not one per worker.

Splitting. Every rank and worker permutes the shards (or CSV rows) by the same (seed, epoch)
and takes every `ranks x workers`-th one from its global id `rank * workers + worker`, so
each sample is read once per epoch across all of them. With fewer shards than that,
`few_shards` decides: "share" (every worker reads every shard, keeps its own samples),
"error" (refused when the data is built: `loader.build_train_data`), "resample".

Randomness. What a pair looks like never depends on the worker count; the order does:
- order: shards or CSV rows permuted by (seed, epoch); shard samples pass a shuffle
  buffer seeded by (seed, epoch, global worker id);
- AutoAugment view: (seed, epoch, position), fresh every epoch as in the authors' code;
- EDA caption: (seed, position), once per caption as in the authors' code;
- poison noise, patch location and caption: (poison.seed, position), fixed across epochs.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import tarfile_samples

from trainers.config import PoisonConfig
from trainers.data.poison import Trigger, poison_caption
from trainers.data.readers import CAPTION_EXTENSION, IMAGE_EXTENSIONS, PairIndex
from trainers.data.seeding import mix_seed, py_rng, torch_generator
from trainers.data.text import eda
from trainers.data.transforms import auto_augment, decode_image, to_float, to_uint8

log = logging.getLogger(__name__)

Chunk = dict[str, Any]

# Streams of the per-sample seeds (second component), so that they never coincide.
_EDA_STREAM, _POISON_CAPTION_STREAM = 1, 2


@dataclass(frozen=True)
class StreamSpec:
    """Everything a worker needs; pickled to workers when they are not forked."""

    index: PairIndex
    num_samples: int
    poisoned: np.ndarray  # bool [num_samples]
    poison: PoisonConfig
    trigger: Trigger | None
    image_size: int
    tokenizer: Callable[[list[str]], Tensor]
    ssl: bool
    seed: int
    batch_size: int
    shuffle: bool
    shuffle_buffer: int
    resize_mode: str = "shortest"  # see transforms.decode_image
    rank: int = 0  # this process's rank in a data-parallel job, of `world_size`
    world_size: int = 1
    few_shards: str = "share"  # see the module docstring and DataConfig.few_shards


@dataclass
class RawSample:
    position: int
    image: bytes | None
    caption: str


class _Skips:
    """Pairs dropped since the last chunk (a plain counter shared by the generators)."""

    def __init__(self) -> None:
        self.count = 0


def _single_threaded(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Make each chunk with one intra-op thread, restoring the caller's setting in between.

    Per-sample tensors are tiny: spreading an op over an OpenMP team costs more than the op
    (milliseconds per AutoAugment call on a busy host). DataLoader workers already run with
    one thread; this gives in-process loading (num_workers=0) the same.
    """
    while True:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        finally:
            torch.set_num_threads(previous)
        yield chunk


class TrainStream(IterableDataset):
    """One epoch of chunks for the calling worker (or the whole set without workers)."""

    def __init__(self, spec: StreamSpec) -> None:
        super().__init__()
        self.spec = spec
        # In shared memory: persistent workers keep the copy of this object they started
        # with, and must still see the epoch the main process sets before each pass.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.fill_(value)

    def __iter__(self) -> Iterator[Chunk]:
        info = get_worker_info()
        local, n_local = (info.id, info.num_workers) if info is not None else (0, 1)
        # The global worker id over every rank's workers: the unit the data is split by.
        worker = self.spec.rank * n_local + local
        n_workers = self.spec.world_size * n_local
        skips = _Skips()
        if self.spec.index.kind == "csv":
            raw = self._csv_samples(worker, n_workers)
        else:
            raw = self._buffered(self._shard_samples(worker, n_workers, skips), worker)
        chunks = self._chunks(raw, skips)
        yield from chunks if info is not None else _single_threaded(chunks)

    # -- reading -------------------------------------------------------------------------

    def _csv_samples(self, worker: int, n_workers: int) -> Iterator[RawSample]:
        spec = self.spec
        order = np.arange(spec.num_samples)
        if spec.shuffle:
            order = np.random.default_rng(mix_seed(spec.seed, self.epoch)).permutation(order)
        root = spec.index.csv_root
        for position in order[worker::n_workers].tolist():
            path = os.path.join(root, spec.index.keys[position])
            try:
                with open(path, "rb") as f:
                    data: bytes | None = f.read()
            except OSError:
                data = None  # counted as skipped when decoded
            yield RawSample(position, data, spec.index.captions[position])

    def _shard_samples(self, worker: int, n_workers: int, skips: _Skips) -> Iterator[RawSample]:
        spec = self.spec
        shards = list(range(len(spec.index.shards)))
        if spec.shuffle:
            random.Random(mix_seed(spec.seed, self.epoch)).shuffle(shards)
        if len(shards) >= n_workers:
            mine, stride = shards[worker::n_workers], 1
        elif spec.few_shards == "resample":
            yield from self._resampled(worker, n_workers, skips)
            return
        else:
            # "share": every worker reads every shard and keeps the positions congruent to
            # its id, so no worker idles on a tiny dataset and no sample comes twice.
            mine, stride = shards, n_workers
        for shard in mine:
            yield from self._one_shard(shard, worker, stride, skips)

    def _resampled(self, worker: int, n_workers: int, skips: _Skips) -> Iterator[RawSample]:
        """Whole shards drawn with replacement until this worker has its share of the
        epoch (WebDataset's `resampled=True` with `with_epoch`): samples may repeat."""
        quota = len(range(worker, self.spec.num_samples, n_workers))
        rng = random.Random(mix_seed(self.spec.seed, self.epoch, worker, 11))
        n_shards = len(self.spec.index.shards)
        given = empty_draws = 0
        while given < quota:
            before = given
            for sample in self._one_shard(rng.randrange(n_shards), worker, 1, skips):
                yield sample
                given += 1
                if given == quota:
                    return
            empty_draws = empty_draws + 1 if given == before else 0
            if empty_draws > 2 * n_shards:
                log.warning("worker %d: no readable shard in %d draws", worker, empty_draws)
                return  # every shard is unreadable: end the epoch rather than spin

    def _one_shard(
        self, shard: int, worker: int, stride: int, skips: _Skips
    ) -> Iterator[RawSample]:
        spec = self.spec
        index = spec.index
        span = range(
            index.shard_starts[shard], min(index.shard_starts[shard + 1], spec.num_samples)
        )
        owned = [p for p in span if p % stride == worker % stride] if stride > 1 else list(span)
        if not owned:
            return
        by_key: dict[str, int] = {}
        for p in reversed(owned):
            by_key[index.keys[p]] = p  # reversed: a duplicated key maps to its first position
        seen: set[int] = set()
        errors: list[str] = []

        def note(err: Exception) -> bool:
            errors.append(str(err.args[0]) if err.args else repr(err))
            return True  # keep going: a broken member or a truncated tar must not end the epoch

        url = index.shards[shard]
        for sample in tarfile_samples([{"url": url}], handler=note):
            position = by_key.get(sample.get("__key__", ""))
            if position is None or position in seen:
                continue
            seen.add(position)
            image = next((sample[e] for e in IMAGE_EXTENSIONS if e in sample), None)
            caption = sample.get(CAPTION_EXTENSION, b"")
            text = caption.decode("utf-8", errors="replace") if isinstance(caption, bytes) else ""
            yield RawSample(position, image, text)
            if len(seen) == len(owned):
                break  # the rest of the shard is past max_samples or another worker's
        lost = len(owned) - len(seen)
        skips.count += lost
        if errors or lost:
            log.warning(
                "shard %s: %d sample(s) unreadable (%s)",
                url,
                lost,
                "; ".join(errors[:2]) or "missing",
            )

    def _buffered(self, samples: Iterator[RawSample], worker: int) -> Iterator[RawSample]:
        """WebDataset-style shuffle buffer over the raw bytes (before the costly decode)."""
        size = self.spec.shuffle_buffer if self.spec.shuffle else 0
        if size <= 1:
            yield from samples
            return
        rng = random.Random(mix_seed(self.spec.seed, self.epoch, worker, 7))
        buffer: list[RawSample] = []
        for sample in samples:
            if len(buffer) < size:
                buffer.append(sample)
                continue
            k = rng.randrange(size)
            buffer[k], sample = sample, buffer[k]
            yield sample
        rng.shuffle(buffer)
        yield from buffer

    # -- per sample ----------------------------------------------------------------------

    def _process(self, raw: RawSample) -> dict[str, Any] | None:
        """Decode, poison and augment one pair; None when it must be skipped."""
        spec = self.spec
        caption = raw.caption.strip()
        if not caption or raw.image is None:
            return None
        try:
            image = decode_image(raw.image, spec.image_size, spec.resize_mode)
        except Exception:  # noqa: BLE001 - any decoder failure is one skipped pair
            return None
        p = raw.position
        poisoned = bool(spec.poisoned[p])
        if poisoned and spec.trigger is not None:
            gen = torch_generator(spec.poison.seed, p)
            image = to_uint8(spec.trigger(to_float(image)[None], gen)[0])
            if spec.poison.kind != "label_consistent":
                caption = poison_caption(
                    spec.poison.target, py_rng(spec.poison.seed, p, _POISON_CAPTION_STREAM)
                )
        out: dict[str, Any] = {"image": image, "caption": caption, "index": p, "poisoned": poisoned}
        if spec.ssl:
            out["image_aug"] = auto_augment(image, spec.seed, self.epoch, p)
            out["text_aug"] = eda(caption, py_rng(spec.seed, p, _EDA_STREAM))
        return out

    def _chunks(self, raw: Iterator[RawSample], skips: _Skips) -> Iterator[Chunk]:
        pending: list[dict[str, Any]] = []
        for sample in raw:
            item = self._process(sample)
            if item is None:
                skips.count += 1
                continue
            pending.append(item)
            if len(pending) == self.spec.batch_size:
                yield self._collate(pending, skips)
                pending = []
        # Always emit the tail, even empty: it carries the last skip counts.
        yield self._collate(pending, skips)

    def _collate(self, items: list[dict[str, Any]], skips: _Skips) -> Chunk:
        spec = self.spec
        skipped, skips.count = skips.count, 0
        chunk: Chunk = {"n": len(items), "skipped": skipped}
        if not items:
            return chunk
        captions = [it["caption"] for it in items]
        chunk["captions"] = captions
        chunk["image"] = to_float(torch.stack([it["image"] for it in items]))
        chunk["text"] = spec.tokenizer(captions)
        chunk["index"] = torch.tensor([it["index"] for it in items], dtype=torch.long)
        chunk["poisoned"] = torch.tensor([it["poisoned"] for it in items], dtype=torch.bool)
        if spec.ssl:
            chunk["image_aug"] = to_float(torch.stack([it["image_aug"] for it in items]))
            chunk["text_aug"] = spec.tokenizer([it["text_aug"] for it in items])
        return chunk
