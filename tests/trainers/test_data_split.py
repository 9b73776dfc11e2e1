"""The loader at scale: shards split across ranks x workers, persistent workers, the shard
index cached on disk, `pipe:` sources, worker counts from a trial's CPUs."""

from __future__ import annotations

import os
import shutil
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import open_clip
import pytest
from torch import Tensor

from trainers.config import DataConfig, PoisonConfig
from trainers.data import SyntheticPaths, TrainData, build_train_data, index_pairs, make_synthetic
from trainers.data.loader import resolve_num_workers
from trainers.errors import DataError

N_TRAIN, SHARD = 240, 30  # 8 shards


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    root = tmp_path_factory.mktemp("split") / "ds"
    return make_synthetic(root, n_train=N_TRAIN, n_clean=8, n_eval_per_class=1, shard_size=SHARD)


@pytest.fixture(scope="module")
def tokenizer() -> Callable[[list[str]], Tensor]:
    return open_clip.get_tokenizer("RN50")


def _data(
    train: str | Path,
    tokenizer: Callable[[list[str]], Tensor],
    *,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    **data: object,
) -> TrainData:
    cfg = DataConfig(train=str(train), batch_size=16, **data)  # type: ignore[arg-type]
    return build_train_data(
        cfg,
        PoisonConfig(),
        image_size=16,
        tokenizer=tokenizer,
        ssl=False,
        seed=0,
        drop_last=False,
        num_workers=workers,
        rank=rank,
        world_size=world_size,
    )


def _keys(data: TrainData) -> list[str]:
    """The sample keys of one epoch, as read (the index maps a position to its key)."""
    return [data.index.keys[i] for batch in data for i in batch.index.tolist()]


def _all_keys(paths: SyntheticPaths) -> list[str]:
    """Every sample key in the shards, read with tarfile (not with the index under test)."""
    keys = set()
    for shard in sorted(Path(paths.train).glob("*.tar")):
        with tarfile.open(shard) as tar:
            keys |= {m.name.split(".")[0] for m in tar.getmembers() if m.isfile()}
    assert len(keys) == N_TRAIN
    return sorted(keys)


def test_each_sample_once_per_epoch_across_two_ranks_of_two_workers(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    ranks = [_data(paths.train, tokenizer, workers=2, rank=r, world_size=2) for r in (0, 1)]
    orders = []
    for epoch in (1, 2):  # the second epoch reaches the persistent workers
        per_rank = []
        for data in ranks:
            data.set_epoch(epoch)
            per_rank.append(_keys(data))
        seen = Counter(k for keys in per_rank for k in keys)
        assert sorted(seen) == _all_keys(paths) and set(seen.values()) == {1}, epoch
        assert not set(per_rank[0]) & set(per_rank[1])
        orders.append(per_rank[0])
    assert orders[0] != orders[1], "epoch 2 was not reshuffled in the persistent workers"
    for data in ranks:
        data.close()


def test_persistent_workers_read_what_in_process_loading_reads(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    solo, pair = _data(paths.train, tokenizer), _data(paths.train, tokenizer, workers=2)
    for epoch in (1, 2):
        solo.set_epoch(epoch)
        pair.set_epoch(epoch)
        assert sorted(_keys(solo)) == sorted(_keys(pair)) == _all_keys(paths)
    pair.close()


def test_fewer_shards_than_readers_is_refused_when_asked(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    # 8 shards for 3 ranks x 3 workers = 9 readers.
    with pytest.raises(DataError, match=r"8 shard\(s\) for 3 rank\(s\) x 3 .*few_shards"):
        _data(paths.train, tokenizer, workers=3, rank=0, world_size=3, few_shards="error")
    _data(paths.train, tokenizer, workers=2, rank=0, world_size=2, few_shards="error")  # 4 <= 8


def test_fewer_shards_than_readers_shared_or_resampled(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    shared = [
        _keys(_data(paths.train, tokenizer, rank=r, world_size=9, few_shards="share"))
        for r in range(9)
    ]
    seen = Counter(k for keys in shared for k in keys)
    assert sorted(seen) == _all_keys(paths) and set(seen.values()) == {1}
    resampled = [
        _keys(_data(paths.train, tokenizer, rank=r, world_size=9, few_shards="resample"))
        for r in range(9)
    ]
    # Each reader gets its share of the epoch (240 over 9: 27 or 26), drawn from shards.
    assert [len(k) for k in resampled] == [len(range(r, N_TRAIN, 9)) for r in range(9)]
    assert all(set(k) <= set(_all_keys(paths)) for k in resampled)


def test_a_rank_outside_the_job_is_an_error(paths, tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="rank 2 is outside a data-parallel job of 2"):
        _data(paths.train, tokenizer, rank=2, world_size=2)


def _scramble_keeping_identity(files: list[Path]) -> None:
    """Overwrite each file with zeros of its size and give it back its mtime: whatever
    reads the bytes now finds no tar and no image, while (path, size, mtime) is unchanged."""
    for f in files:
        st = f.stat()
        f.write_bytes(b"\0" * st.st_size)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_the_shard_index_is_built_once_and_reused(paths, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shards = tmp_path / "shards"
    shutil.copytree(paths.train, shards)
    cache = str(tmp_path / "cache")
    first = index_pairs(str(shards), cache_dir=cache)
    assert len(list((tmp_path / "cache" / "index").glob("*.npz"))) == 1
    _scramble_keeping_identity(sorted(shards.glob("*.tar")))
    with pytest.raises(DataError, match="no image-text samples"):
        index_pairs(str(shards))  # scanning the tars now finds nothing...
    again = index_pairs(str(shards / "*.tar"), cache_dir=cache)  # ...the cache never opens them
    assert list(again.keys) == list(first.keys) and list(again.captions) == list(first.captions)
    assert again.shard_starts == first.shard_starts and again.source == str(shards / "*.tar")
    # A rewritten shard (new mtime) is a new dataset: indexed again, from its bytes.
    os.utime(shards / "00000.tar", ns=(1, 1))
    with pytest.raises(DataError, match="no image-text samples"):
        index_pairs(str(shards), cache_dir=cache)


def test_a_pipe_source_is_indexed_and_read(paths, tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pattern = f"pipe:cat {paths.train}/{{00000..00007}}.tar"
    cache = str(tmp_path / "cache")
    data = _data(pattern, tokenizer, workers=2, cache_dir=cache)
    assert len(data.index) == N_TRAIN and len(data.index.shards) == 8
    assert sorted(_keys(data)) == _all_keys(paths)
    data.close()
    assert len(list((tmp_path / "cache" / "index").glob("*.npz"))) == 1
    missing = f"pipe:cat {tmp_path}/nothing-{{0..1}}.tar"
    with pytest.raises(DataError, match=r"no image-text samples in pipe:cat .*exit 1"):
        index_pairs(missing)


@pytest.mark.parametrize(
    ("requested", "threads", "on_gpu", "expected"),
    [
        (None, 1, False, 0),  # the embedded default: one CPU, in-process
        (None, 2, False, 1),  # CPU training keeps a core for the model
        (None, 2, True, 2),  # a fractional-GPU cleaning trial: both CPUs decode
        (None, 8, True, 8),  # the authors' 8 workers per GPU
        (None, 64, True, 16),
        (None, 0, False, 0),  # outside a sweep (torch's default threads)
        (3, 1, False, 3),  # set by the user: as given, 0 included
        (0, 8, True, 0),
    ],
)
def test_worker_count_from_the_trials_cpus(
    requested: int | None, threads: int, on_gpu: bool, expected: int
) -> None:
    assert resolve_num_workers(requested, threads, on_gpu=on_gpu) == expected
