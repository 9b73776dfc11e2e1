"""Training batches: `build_train_data(...) -> TrainData`, iterated once per epoch.

Workers (`pipeline.TrainStream`) produce chunks; this module turns them into `Batch`es of
exactly `batch_size` (the last one smaller only with `drop_last=False`) and makes sure the
count of skipped pairs reaches the caller: every pair of an epoch is either in a batch, in
the one dropped partial batch, or counted in some batch's `skipped`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from trainers.config import DataConfig, PoisonConfig
from trainers.data.evalset import EvalData, load_eval_data
from trainers.data.pipeline import Chunk, StreamSpec, TrainStream
from trainers.data.poison import Trigger, select_poison, trigger_for_poison
from trainers.data.readers import PairIndex, index_pairs
from trainers.data.seeding import mix_seed
from trainers.errors import DataError

__all__ = ["Batch", "EvalData", "TrainData", "build_train_data", "load_eval_data"]

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One training batch. Images are floats in [0, 1], not normalised."""

    image: Tensor  # float32 [B, 3, S, S]
    text: Tensor  # long [B, context_length], the tokenizer's output
    index: Tensor  # long [B], position of each pair in the PairIndex (stable across epochs)
    poisoned: Tensor  # bool [B]
    captions: list[str]  # the captions as trained on (poisoned ones replaced)
    skipped: int = 0  # pairs dropped while making this batch (undecodable, empty caption)
    image_aug: Tensor | None = None  # ssl: AutoAugment view of `image`, float32 [B, 3, S, S]
    text_aug: Tensor | None = None  # ssl: tokens of EDA(caption)

    def __len__(self) -> int:
        return int(self.index.shape[0])


class TrainData:
    """The training pairs of one trial, as an iterable of `Batch` per epoch."""

    def __init__(
        self,
        spec: StreamSpec,
        *,
        poisoned_positions: list[int],
        num_workers: int,
        drop_last: bool,
    ) -> None:
        self._spec = spec
        self._stream = TrainStream(spec)
        self.index: PairIndex = spec.index
        self.num_samples: int = spec.num_samples
        self.batch_size: int = spec.batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.trigger: Trigger | None = spec.trigger
        self.poisoned_positions: list[int] = poisoned_positions
        self.poisoned_keys: list[str] = [spec.index.keys[p] for p in poisoned_positions]
        self.epoch = 0
        # Set True when training on a GPU (before the first epoch): batches then arrive in
        # page-locked memory, so the loop's `.to(device, non_blocking=True)` copies overlap
        # with compute. On CPU pinning is a wasted copy.
        self.pin_memory = False
        self._loader: DataLoader | None = None

    @property
    def num_batches(self) -> int:
        """Batches per epoch when nothing is skipped (an upper bound)."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle (and redraw the AutoAugment views) deterministically by (seed, epoch)."""
        self.epoch = epoch
        self._stream.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[Batch]:
        if self._loader is None:
            self._loader = DataLoader(
                self._stream,
                batch_size=None,
                num_workers=self.num_workers,
                collate_fn=_identity,
                # Workers live for the whole trial: forking them and re-importing their
                # state each epoch costs seconds per epoch on a real set (the epoch reaches
                # them through shared memory, see TrainStream).
                persistent_workers=self.num_workers > 0,
                pin_memory=self.pin_memory,
                # DataLoader draws its workers' base seed from this generator; without one
                # it would consume the caller's global torch RNG on every epoch. No sample
                # depends on it (every draw is seeded by (seed, epoch, position)).
                generator=torch.Generator().manual_seed(mix_seed(self._spec.seed)),
            )
        yield from rebatch(iter(self._loader), self.batch_size, drop_last=self.drop_last)

    def close(self) -> None:
        """Stop the persistent workers now rather than when this object is collected."""
        self._loader = None

    def write_poisoned_ids(self, path: str | os.PathLike[str]) -> None:
        """The keys of the poisoned pairs, one per line in index order, written atomically.

        A key is the sample key in the shards (`000000012`) or the image path in the CSV.
        """
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(f"{k}\n" for k in self.poisoned_keys), encoding="utf-8")
        os.replace(tmp, target)

    def __repr__(self) -> str:
        return (
            f"TrainData({self.index.describe()}, num_samples={self.num_samples}, "
            f"poisoned={len(self.poisoned_positions)}, batch_size={self.batch_size})"
        )


def _identity(x: Any) -> Any:
    return x


def resolve_num_workers(requested: int | None, threads: int, *, on_gpu: bool) -> int:
    """Loader workers for a trial: `requested` when set, else from its CPU count.

    On a GPU the training process mostly waits on the device, so every CPU of the trial
    decodes (at most 16: past that one trial's batches are not the bottleneck). On CPU the
    training process computes on the same cores, so it keeps one of them; a one-CPU trial
    (the embedded default) loads in-process. `threads == 0` (torch's default, a trial run
    outside a sweep) counts as one CPU.
    """
    if requested is not None:
        return requested
    cpus = max(1, threads)
    return min(16, cpus if on_gpu else cpus - 1)


def build_train_data(
    data: DataConfig,
    poison: PoisonConfig,
    *,
    image_size: int,
    tokenizer: Callable[[list[str]], Tensor],
    ssl: bool,
    seed: int,
    drop_last: bool = True,
    shuffle: bool = True,
    resize_mode: str = "shortest",
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> TrainData:
    """Index `data.train`, choose the poisoned pairs, and set up the per-epoch loader.

    Images are decoded at `image_size` by `resize_mode` (see `transforms.decode_image`).
    `num_workers` overrides `data.num_workers` (None there: in-process); `rank` of
    `world_size` selects this process's share of a data-parallel job (every rank indexes
    and poisons the same way, so the shares are disjoint and together cover the set).
    """
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is outside a data-parallel job of {world_size} rank(s)")
    workers = num_workers if num_workers is not None else (data.num_workers or 0)
    index = index_pairs(data.train, cache_dir=data.cache_dir)
    if data.max_samples is not None:
        index = index.head(data.max_samples)
    n = len(index)
    if drop_last and n < data.batch_size:
        raise DataError(
            f"{index.describe()}: fewer pairs than data.batch_size {data.batch_size}, so "
            "every epoch would be empty; lower data.batch_size or raise data.max_samples"
        )
    chosen = select_poison(index, poison)
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    spec = StreamSpec(
        index=index,
        num_samples=n,
        poisoned=mask,
        poison=poison,
        trigger=trigger_for_poison(poison, image_size),
        image_size=image_size,
        tokenizer=tokenizer,
        ssl=ssl,
        seed=seed,
        batch_size=data.batch_size,
        shuffle=shuffle,
        shuffle_buffer=data.shuffle_buffer,
        resize_mode=resize_mode,
        rank=rank,
        world_size=world_size,
        few_shards=data.few_shards,
    )
    _check_shard_count(index, data, workers=workers, world_size=world_size)
    if chosen:
        log.info(
            "poisoning %d of %d pairs (%s, target %r)", len(chosen), n, poison.kind, poison.target
        )
    return TrainData(spec, poisoned_positions=chosen, num_workers=workers, drop_last=drop_last)


def _check_shard_count(
    index: PairIndex, data: DataConfig, *, workers: int, world_size: int
) -> None:
    """`few_shards: error`: refuse a split in which some worker would get no shard."""
    readers = max(1, workers) * world_size
    if index.kind != "shards" or data.few_shards != "error" or len(index.shards) >= readers:
        return
    raise DataError(
        f"{index.describe()}: {len(index.shards)} shard(s) for {world_size} rank(s) x "
        f"{max(1, workers)} loader worker(s) = {readers} readers, so some would get no shard "
        "(data.few_shards: error); write more, smaller shards, lower data.num_workers, or set "
        "data.few_shards to share (every reader scans every shard) or resample"
    )


# -- merging worker chunks into batches --------------------------------------------------

_TENSOR_KEYS = ("image", "text", "index", "poisoned", "image_aug", "text_aug")


def rebatch(chunks: Iterator[Chunk], batch_size: int, *, drop_last: bool) -> Iterator[Batch]:
    """Batches of `batch_size` from worker chunks; skip counts are never lost.

    Each batch is held back until the next one exists, so that the skips counted after the
    last full batch (a truncated final shard, a dropped tail) can still be added to it.
    """
    buffer: list[Chunk] = []
    buffered = skipped = 0
    held: Batch | None = None
    for chunk in chunks:
        skipped += int(chunk["skipped"])
        if chunk["n"]:
            buffer.append(chunk)
            buffered += chunk["n"]
        while buffered >= batch_size:
            merged, buffer = _take(buffer, batch_size)
            buffered -= batch_size
            batch, skipped = _to_batch(merged, skipped), 0
            if held is not None:
                yield held
            held = batch
    if buffered and not drop_last:
        merged, buffer = _take(buffer, buffered)
        batch, skipped = _to_batch(merged, skipped), 0
        if held is not None:
            yield held
        held = batch
    if held is None:
        if skipped:
            log.warning("an epoch produced no batch; %d pair(s) were skipped", skipped)
        return
    held.skipped += skipped
    yield held


def _take(buffer: list[Chunk], n: int) -> tuple[Chunk, list[Chunk]]:
    """The first `n` samples of the buffered chunks, and what remains."""
    if buffer[0]["n"] == n:  # the common case: one full chunk, no copy
        return buffer[0], buffer[1:]
    parts: list[Chunk] = []
    need = n
    rest = list(buffer)
    while need:
        head = rest.pop(0)
        if head["n"] <= need:
            parts.append(head)
            need -= head["n"]
        else:
            parts.append(_slice(head, 0, need))
            rest.insert(0, _slice(head, need, head["n"]))
            need = 0
    merged: Chunk = {"n": n, "captions": [c for p in parts for c in p["captions"]]}
    for key in _TENSOR_KEYS:
        if key in parts[0]:
            merged[key] = torch.cat([p[key] for p in parts])
    return merged, rest


def _slice(chunk: Chunk, lo: int, hi: int) -> Chunk:
    out: Chunk = {"n": hi - lo, "captions": chunk["captions"][lo:hi]}
    for key in _TENSOR_KEYS:
        if key in chunk:
            out[key] = chunk[key][lo:hi]
    return out


def _to_batch(chunk: Chunk, skipped: int) -> Batch:
    extra: dict[str, Any] = {k: chunk[k] for k in ("image_aug", "text_aug") if k in chunk}
    return Batch(
        image=chunk["image"],
        text=chunk["text"],
        index=chunk["index"],
        poisoned=chunk["poisoned"],
        captions=list(chunk["captions"]),
        skipped=skipped,
        **extra,
    )
