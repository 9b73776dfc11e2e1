"""Orchestration overhead: the same N cleaning trials through `sweeper launch` and a plain loop.

    python bench/bench_overhead.py [--trials 8] [--epochs 2] [--concurrency 2]

(a) `sweeper launch` of a spec whose pre-training is already cached, so only the cleaning
    stage runs: N trials on a local Ray cluster, `concurrency` at a time (cpu per trial set
    so that Ray packs exactly that many).
(b) the same N trial configs (taken from the sweep's own plan) run by a process pool of
    `concurrency` workers calling `trainers.clean` directly.
Prints both wall times, (a)/(b), and the per-trial overhead ((a) - (b)) * concurrency / N.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def spec(tmp: Path, trials: int, epochs: int, cpu: float) -> Path:
    lrs = [round(1e-4 * (i + 1), 6) for i in range(trials)]
    body = {
        "name": "overhead",
        "paper": "bench",
        "embedded": {
            "synthetic": {
                "n_train": 600,
                "n_clean": 500,
                "n_eval_per_class": 10,
                "image_size": 32,
                "seed": 0,
            },
            "clean_pairs": 500,
            "epoch_scale": 1,
            "resources": {"cpu": cpu},
        },
        "pretrain": {
            "trial": {
                "poison": {"kind": "badnet", "amount": 0.05},
                "optim": {"lr": 2e-3, "epochs": 2},
            },
            "jobs": {"mmcl": {"objective": "mmcl"}},
            "resources": {"cpu": 1},
        },
        "clean": {
            "method": "cleanclip",
            "grid": {"lr": lrs},
            "trial": {"optim": {"epochs": epochs, "warmup_steps": 5}, "data": {"batch_size": 64}},
            "resources": {"cpu": 1},
        },
    }
    path = tmp / "overhead.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def launch(path: Path, store: Path) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "sweeper", "launch", str(path), "--store", str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    sweep = next(ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("sweep:"))
    return time.perf_counter() - t, sweep


def _one(config: dict) -> float:
    from trainers import ListReporter, clean

    t = time.perf_counter()
    clean(config, ListReporter())
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    cpu = round((os.cpu_count() or 2) / args.concurrency, 3)
    tmp = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    store = tmp / "store"
    path = spec(tmp, args.trials, args.epochs, cpu)
    warm, _ = launch(path, store)  # pre-trains once and fills the cache; not measured
    a, sweep = launch(path, store)
    configs = plain_configs(store, sweep, threads=max(1, int(cpu)))
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.concurrency) as pool:
        per_trial = pool.map(_one, configs)
    b = time.perf_counter() - t0
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}"
    )
    print(
        f"{args.trials} CleanCLIP trials x {args.epochs} epochs (500 pairs, tiny-rn), "
        f"{args.concurrency} at a time; warm-up launch (pre-training) {warm:.1f} s"
    )
    print(f"(a) sweeper launch, cached pre-training: {a:.1f} s (includes Ray start-up)")
    print(
        f"(b) plain process pool calling trainers.clean: {b:.1f} s "
        f"(mean trial {sum(per_trial) / len(per_trial):.1f} s)"
    )
    print(
        f"(a)/(b) = {a / b:.2f}; overhead per trial = {(a - b) * args.concurrency / args.trials:.2f} s"
    )


def plain_configs(store: Path, sweep: str, *, threads: int) -> list[dict]:
    """The sweep's own cleaning configs, completed as the driver completes them."""
    from results.store import read_trials

    plan = json.loads((store / sweep / "plan.json").read_text())
    stage = next(s for s in plan["stages"] if s["name"] == "clean")
    start = next(
        r["start_checkpoint"]
        for r in read_trials(store, [sweep]).to_pylist()
        if r["stage"] == "clean" and r["start_checkpoint"]
    )
    data = next((store / ".cache" / "data").iterdir())
    paths = {
        "@synthetic/clean": str(data / "clean" / "clean.csv"),
        "@synthetic/eval": str(data / "eval"),
        "@synthetic/classnames": str(data / "eval" / "classnames.txt"),
    }
    configs = []
    for t in stage["trials"]:
        c = json.loads(json.dumps(t["config"]))
        c["data"] = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in c["data"].items()}
        c["model"]["checkpoint"] = start
        c["threads"] = threads
        c["checkpoint_dir"] = None
        configs.append(c)
    return configs


if __name__ == "__main__":
    main()
