"""Data throughput at 224 px: the training pipeline against bare decoding, and the eval
cache cold and warm.

    python bench/bench_data.py [--pairs 2000] [--source-px 256] [--workers 1 2] [--ssl]

Training. WebDataset shards of JPEGs in the real format (`trainers.data.synthetic`, rendered
at `--source-px`, as img2dataset writes CC3M at 256 px) are read by the trial's pipeline
(`build_train_data`: shards split across workers, decode at 224 px, tokenize, collate,
rebatch; `--ssl` adds AutoAugment and EDA) with 1 and 2 loader workers, and by a bare loop
in one process: tarfile, PIL decode and the same resize and crop (`decode_image`), nothing
else. The pipeline's images/s is measured on its second epoch (workers are persistent; the
first epoch's, with their start-up, is printed too). Goal: per worker, >= 0.8 of bare.

Evaluation. An ImageNet-style folder of JPEGs at `--source-px` is read at 224 px by a
trial's eval pass (`EvalData.batches`: uint8 -> float batches) with the on-disk cache
(`data.cache_dir`): cold (a new cache: decode, write, then serve) and warm (a new trial on
the same cache: map the file, serve). The uncached decode, what every evaluation of a set
past 1 GiB costs without the cache, is printed as well. Goal: warm >= 5x cold.

Figures depend on the machine and its load: run everything in one invocation and compare
the ratios, not the absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tarfile
import tempfile
import time
from pathlib import Path

import open_clip
import torch

from trainers.config import DataConfig, PoisonConfig
from trainers.data import build_train_data, load_eval_data
from trainers.data.synthetic import make_synthetic
from trainers.data.transforms import decode_image

SIZE = 224


def bare_decode(shards: Path, size: int) -> float:
    """Images/s of tarfile + PIL decode + resize/crop in this process, nothing else."""
    n = 0
    t0 = time.perf_counter()
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".jpg"):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    decode_image(handle.read(), size)
                    n += 1
    return n / (time.perf_counter() - t0)


def pipeline(shards: Path, size: int, workers: int, ssl: bool) -> tuple[float, float]:
    """Images/s of the trial's training pipeline: (first epoch, second epoch)."""
    cfg = DataConfig(train=str(shards), batch_size=64, num_workers=workers)
    data = build_train_data(
        cfg,
        PoisonConfig(kind="badnet", amount=0.01),
        image_size=size,
        tokenizer=open_clip.get_tokenizer("RN50"),
        ssl=ssl,
        seed=0,
        drop_last=False,
    )
    rates = []
    for epoch in (1, 2):
        data.set_epoch(epoch)
        t0 = time.perf_counter()
        n = sum(len(batch) for batch in data)
        rates.append(n / (time.perf_counter() - t0))
    data.close()
    return rates[0], rates[1]


def eval_pass(folder: Path, size: int, cache: Path | None, workers: int) -> float:
    """Images/s of one evaluation's image pass, as a new trial would make it."""
    cfg = DataConfig(eval=str(folder), num_workers=workers, cache_dir=str(cache) if cache else None)
    data = load_eval_data(cfg, image_size=size)
    t0 = time.perf_counter()
    n = sum(len(labels) for _, labels in data.batches(256))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000, help="training pairs in the shards")
    ap.add_argument("--eval-per-class", type=int, default=100, help="10 classes")
    ap.add_argument("--source-px", type=int, default=256, help="side of the stored JPEGs")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--eval-workers", type=int, default=0)
    ap.add_argument("--ssl", action="store_true", help="AutoAugment + EDA in the pipeline")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the main process of a loader; workers run one thread each
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    t0 = time.perf_counter()
    syn = make_synthetic(
        tmp / "data",
        n_train=args.pairs,
        n_clean=10,
        n_eval_per_class=args.eval_per_class,
        image_size=args.source_px,
        shard_size=250,
    )
    n_shards = len(list(Path(syn.train).glob("*.tar")))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
        f"torch {torch.__version__}; data: {args.pairs} pairs in {n_shards} shards, JPEGs at "
        f"{args.source_px} px decoded at {SIZE} px (generated in {time.perf_counter() - t0:.0f} s)"
    )
    bare = bare_decode(Path(syn.train), SIZE)
    print(f"bare decode+resize, 1 process:    {bare:7.1f} images/s")
    for w in args.workers:
        first, second = pipeline(Path(syn.train), SIZE, w, args.ssl)
        print(
            f"pipeline, {w} worker(s){' +ssl' if args.ssl else ''}: {second:7.1f} images/s "
            f"(first epoch {first:.1f}); per worker / bare = {second / w / bare:.2f}, "
            f"total / bare = {second / bare:.2f}"
        )
    cache = tmp / "cache"
    n_eval = 10 * args.eval_per_class
    uncached = eval_pass(Path(syn.eval), SIZE, None, args.eval_workers)
    cold = eval_pass(Path(syn.eval), SIZE, cache, args.eval_workers)
    warm = eval_pass(Path(syn.eval), SIZE, cache, args.eval_workers)
    print(f"eval, {n_eval} images, {args.eval_workers} worker(s):")
    print(f"  uncached decode: {uncached:8.1f} images/s")
    print(f"  cache cold:      {cold:8.1f} images/s (decode + write the cache)")
    print(f"  cache warm:      {warm:8.1f} images/s; warm / cold = {warm / cold:.1f}")


if __name__ == "__main__":
    main()
