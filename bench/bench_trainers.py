"""Trainer timings at the old demo's size: 2,000 pairs, 200 eval images, 10 classes (the demo
is now 3,000 pairs and 1,200 eval images of 20 classes).

    python bench/bench_trainers.py [--model tiny-rn] [--threads 2]

Prints the time of one pre-training epoch (MMCL and MMCL+SSL) and one CleanCLIP epoch
(evaluation throughput: bench/bench_eval.py).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from trainers import ListReporter, clean, pretrain
from trainers.data.synthetic import make_synthetic


def epoch_time(records: list) -> float:
    """Mean seconds per training epoch (epoch 0 is the evaluation of the start model)."""
    walls = [r.wall_s for r in records]
    return (walls[-1] - walls[0]) / (len(walls) - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-rn")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-trainers-"))
    t0 = time.perf_counter()
    syn = make_synthetic(
        tmp / "data", n_train=2000, n_clean=1000, n_eval_per_class=20, image_size=32
    )
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, model {args.model}"
    )
    print(f"synthetic set (2000 train, 1000 clean, 200 eval): {time.perf_counter() - t0:.1f} s")
    base = {
        "data": {"train": str(syn.train), "eval": str(syn.eval), "batch_size": 64},
        "model": {"name": args.model},
        "poison": {"kind": "badnet", "amount": 0.05, "patch_size": 8},
        "optim": {"lr": 2e-3, "epochs": args.epochs, "warmup_steps": 20},
        "checkpoint_dir": str(tmp / "pre"),
        "threads": args.threads,
    }
    for name, ssl in (("MMCL", 0.0), ("MMCL+SSL", 1.0)):
        rep = ListReporter()
        out = pretrain({**base, "loss": {"mmcl_weight": 1.0, "ssl_weight": ssl}}, rep)
        print(f"pre-training epoch, {name}, 2000 pairs: {epoch_time(rep.records):.2f} s")
    rep = ListReporter()
    clean(
        {
            "data": {
                "train": str(syn.clean),
                "eval": str(syn.eval),
                "batch_size": 64,
                "max_samples": 500,
            },
            "model": {"name": args.model, "checkpoint": out.final_checkpoint},
            "optim": {"lr": 1e-4, "epochs": args.epochs, "warmup_steps": 5},
            "loss": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
            "threads": args.threads,
        },
        rep,
    )
    print(f"cleaning epoch, CleanCLIP, 500 pairs: {epoch_time(rep.records):.2f} s")


if __name__ == "__main__":
    main()
