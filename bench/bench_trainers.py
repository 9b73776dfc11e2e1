"""Trainer timings at the demo's size, and evaluation throughput against a bare forward pass.

    python bench/bench_trainers.py [--model tiny-rn] [--threads 2]

Prints the time of one pre-training epoch (MMCL and MMCL+SSL), one CleanCLIP epoch, and one
full evaluation (class embeddings from 80 templates, clean pass, triggered pass), plus the
evaluation's images/s over the image encoder's bare forward images/s on the same images.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from trainers import ListReporter, clean, pretrain
from trainers.config import DataConfig
from trainers.data import load_eval_data, make_trigger
from trainers.data.synthetic import make_synthetic
from trainers.evaluate import evaluate
from trainers.models import create_model, get_tokenizer


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
    bench_eval(args.model, syn.eval)


def bench_eval(model_name: str, eval_dir: Path, repeats: int = 5) -> None:
    model, info = create_model(model_name, seed=0)
    model.eval()
    tok = get_tokenizer(model_name)
    data = load_eval_data(DataConfig(eval=str(eval_dir)), image_size=info.image_size)
    trigger = make_trigger("badnet", image_size=info.image_size, patch_size=8)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    images = torch.cat([x for x, _ in data.batches(256)])  # decode once, cache
    n = len(images)

    def full() -> None:
        evaluate(
            model,
            tok,
            data,
            trigger=trigger,
            target="banana",
            normalize=lambda x: (x - mean) / std,
            device=torch.device("cpu"),
        )

    @torch.no_grad()
    def bare() -> None:
        for i in range(0, n, 256):
            model.encode_image((images[i : i + 256] - mean) / std)

    full()
    bare()
    t_full = min(_timed(full) for _ in range(repeats))
    t_bare = min(_timed(bare) for _ in range(repeats))
    # The full evaluation sees each image twice at most (clean + triggered), plus 80 text
    # prompts per class; the bare pass sees each image once.
    print(
        f"evaluation of {n} images (clean + triggered, 80 templates x {len(data.classnames)} classes): "
        f"{t_full:.3f} s = {n / t_full:.0f} images/s"
    )
    print(
        f"bare image-encoder forward of the same {n} images: {t_bare:.3f} s = {n / t_bare:.0f} images/s"
    )
    print(f"evaluation images/s over bare forward images/s: {(n / t_full) / (n / t_bare):.2f}")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
