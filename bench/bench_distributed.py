"""Data-parallel pre-training: epoch time with 1 and 2 workers (`trainers.distributed`).

    python bench/bench_distributed.py [--model tiny-vit] [--batch 32] [--epochs 2]

Each worker is a process of a gloo group (what Ray Train's TorchTrainer starts on CPU for
`distributed: {workers: N}`) with one torch thread and the same per-worker batch, so the
global batch grows with the workers: 1 x B, then 2 x B. The figure is the mean wall time of
a training epoch over the same pairs (the evaluation after each epoch, on rank 0 only, is
left out), and the pairs per second that gives.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainers import pretrain
from trainers.data.synthetic import make_synthetic
from trainers.reporter import EpochRecord


class _Timer:
    """A reporter that keeps when each epoch's record arrived, before its evaluation."""

    def __init__(self) -> None:
        self.records: list[EpochRecord] = []

    def report(self, record: EpochRecord) -> None:
        self.records.append(record)


def _train_seconds(cfg: dict[str, Any], rep: _Timer) -> tuple[float, int]:
    """Mean seconds of a training epoch and the pairs an epoch trained on."""
    # Wall times from the trainer's own clock; each record's wall includes that epoch's
    # evaluation, so subtract the epoch-0 record (an evaluation alone) per epoch.
    walls = [r.wall_s for r in rep.records]
    evaluation = walls[0]
    per_epoch = (walls[-1] - walls[0]) / (len(walls) - 1) - evaluation
    return per_epoch, rep.records[1].samples_seen


def _rank(rank: int, world: int, init: str, cfg: dict[str, Any], out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        rep = _Timer()
        pretrain(cfg, rep)
        if rank == 0:
            torch.save(_train_seconds(cfg, rep), out)
    finally:
        dist.destroy_process_group()


def run(cfg: dict[str, Any], workers: int, tmp: Path) -> tuple[float, int]:
    if workers == 1:
        torch.set_num_threads(1)
        rep = _Timer()
        pretrain(cfg, rep)
        return _train_seconds(cfg, rep)
    out = tmp / f"w{workers}.pt"
    init = f"file://{tmp / f'rendezvous-{workers}-{time.time_ns()}'}"
    mp.spawn(_rank, args=(workers, init, cfg, str(out)), nprocs=workers, join=True)
    return torch.load(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-vit")
    ap.add_argument("--batch", type=int, default=32, help="pairs per worker and step")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=2048)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    syn = make_synthetic(
        tmp / "data",
        n_train=args.pairs,
        n_clean=8,
        n_eval_per_class=4,
        image_size=32,
        shard_size=args.pairs // 8,
    )
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} cores visible to torch, "
        f"torch {torch.__version__}, model {args.model}, {args.pairs} pairs, "
        f"{args.batch} pairs per worker and step, gloo, 1 torch thread a worker"
    )
    base = {
        "data": {
            "train": str(syn.train),
            "eval": str(syn.eval),
            "batch_size": args.batch,
            "num_workers": 0,
        },
        "model": {"name": args.model},
        "poison": {"kind": "none"},
        "optim": {"lr": 1e-3, "epochs": args.epochs, "warmup_steps": 5},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 0.0},
        "threads": 1,
        "save": "none",
    }
    one = None
    for workers in (1, 2):
        cfg = {**base, "checkpoint_dir": str(tmp / f"ckpt{workers}")}
        seconds, pairs = run(cfg, workers, tmp)
        one = one or seconds
        print(
            f"{workers} worker(s): global batch {workers * args.batch}, "
            f"{pairs // (workers * args.batch)} steps an epoch, epoch {seconds:.2f} s, "
            f"{pairs / seconds:.0f} pairs/s, speed-up {one / seconds:.2f}"
        )


if __name__ == "__main__":
    main()
