"""The decoded eval set on disk: built once, reused by later trials and sweeps without
decoding, safe under concurrent builders, and numerically the uncached evaluation."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from trainers.config import DataConfig, load_config
from trainers.data import SyntheticPaths, load_eval_data, make_synthetic
from trainers.data.evalcache import IMAGES_FILE
from trainers.trial import build_context, load_start

SIZE = 24


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPaths:
    root = tmp_path_factory.mktemp("evalcache") / "ds"
    return make_synthetic(root, n_train=10, n_clean=2, n_eval_per_class=4)


def _copy_eval(paths: SyntheticPaths, tmp_path: Path) -> Path:
    shutil.copytree(paths.eval, tmp_path / "ev")
    return tmp_path / "ev"


def _scramble_keeping_identity(folder: Path) -> None:
    """Zero every image's bytes, keeping its size and mtime (the cache key's identity)."""
    for f in folder.rglob("*.jpg"):
        st = f.stat()
        f.write_bytes(b"\0" * st.st_size)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def _pass(eval_dir: Path, cache: Path | None, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = DataConfig(eval=str(eval_dir), cache_dir=None if cache is None else str(cache))
    data = load_eval_data(cfg, image_size=SIZE)
    images, labels = zip(*data.batches(batch), strict=True)
    return torch.cat(images), torch.cat(labels)


def test_built_once_then_read_by_later_trials_without_decoding(
    paths: SyntheticPaths, tmp_path: Path
) -> None:
    ev, cache = _copy_eval(paths, tmp_path), tmp_path / "cache"
    fresh = _pass(ev, None)  # today's uncached decode
    first = _pass(ev, cache)  # the first trial builds the cache
    folders = [p for p in (cache / "eval").iterdir() if p.is_dir()]
    assert len(folders) == 1 and not list((cache / "eval").glob(".tmp-*"))
    size = (folders[0] / IMAGES_FILE).stat().st_size
    assert size == 40 * 3 * SIZE * SIZE  # uint8, every image once
    _scramble_keeping_identity(ev)
    uncached = load_eval_data(DataConfig(eval=str(ev)), image_size=SIZE)
    assert list(uncached.batches(16)) == []  # a decode now finds no readable image
    # A second trial (another batch size) and a second sweep of the same store: served
    # from the cache, without decoding.
    second = _pass(ev, cache, batch=7)
    third = _pass(ev, cache)
    for images, labels in (first, second, third):
        assert torch.equal(images, fresh[0]) and torch.equal(labels, fresh[1])
    assert [p for p in (cache / "eval").iterdir() if p.is_dir()] == folders


def test_another_size_or_a_changed_file_is_another_cache(
    paths: SyntheticPaths, tmp_path: Path
) -> None:
    ev, cache = _copy_eval(paths, tmp_path), tmp_path / "cache"
    _pass(ev, cache)
    load = load_eval_data(DataConfig(eval=str(ev), cache_dir=str(cache)), image_size=SIZE + 8)
    assert sum(len(lab) for _, lab in load.batches(16)) == 40
    one = next(ev.rglob("*.jpg"))
    os.utime(one, ns=(1, 1))  # rewritten in place: new mtime
    _pass(ev, cache)
    assert len([p for p in (cache / "eval").iterdir() if p.is_dir()]) == 3


def _build(eval_dir: str, cache: str, queue: Any) -> None:
    cfg = DataConfig(eval=eval_dir, cache_dir=cache)
    data = load_eval_data(cfg, image_size=SIZE)
    queue.put(sum(int(lab.sum()) for _, lab in data.batches(8)))


def test_concurrent_builders_leave_one_whole_cache(paths: SyntheticPaths, tmp_path: Path) -> None:
    ev, cache = _copy_eval(paths, tmp_path), tmp_path / "cache"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build, args=(str(ev), str(cache), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    sums = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    assert sums == [sum(c * 4 for c in range(10))] * 3
    folders = [p for p in (cache / "eval").iterdir() if p.is_dir()]
    assert len(folders) == 1 and not list((cache / "eval").glob(".tmp-*"))
    fresh = _pass(ev, None)
    assert torch.equal(_pass(ev, cache)[0], fresh[0])


def test_accuracy_and_asr_equal_the_uncached_evaluation(
    poisoned: Any, synthetic: Any, tmp_path: Path
) -> None:
    """The trigger is applied to the tensor made from the cached bytes, as after a decode."""
    _, outcome, _ = poisoned
    results = []
    for cache in (None, str(tmp_path / "cache"), str(tmp_path / "cache")):
        cfg = {
            "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval)},
            "model": {"name": "tiny-rn", "checkpoint": outcome.final_checkpoint},
        }
        cfg["data"]["cache_dir"] = cache
        config = load_config(cfg)
        results.append(build_context(config, start=load_start(config)).evaluate())
    assert results[0].asr > 50  # a poisoned model: the trigger matters to the numbers
    assert results[0] == results[1] == results[2]
