"""Packing cleaning trials onto one GPU: trials/hour and utilisation at 1, 2, 4 and 8 per GPU.

    python bench/bench_packing.py [--per-gpu 1 2 4 8] [--model RN50] [--epochs 2]

For each packing k, `sweeper launch` (through `sweeper.driver.launch`, in this process) runs a
clean-only sweep of `--waves` x k CleanCLIP trials, each asking for gpu: 1/k and cpu:
(cores / k), on a local Ray cluster: Ray puts k trials on the GPU at once. The trials use
`profile: real` on data this script writes in the real formats (a CleanCLIP CSV of image
files, an ImageNet-style eval folder) and start from a saved checkpoint of the model (random
weights: a trial's cost does not depend on what the weights are).

Reported per k: wall time of the trials (first start -> last end, from the store's trial
table), trials/hour, mean trial time, and the device's utilisation sampled every 0.5 s while
the trials run (GPU: `nvidia-smi` utilisation.gpu and memory.used of the one GPU the script
pins with CUDA_VISIBLE_DEVICES; no GPU: CPU % and used RAM of the machine). Without a GPU the script gives the local cluster one logical GPU, so Ray packs the
trials exactly as it would on a real one, and runs them on the CPU (default model tiny-rn at
32 px): the figures are CPU contention, not GPU packing, and say so.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

import yaml


class Sampler:
    """Samples device utilisation in a thread until stopped."""

    def __init__(self, gpu: str | None, every: float = 0.5) -> None:
        self.gpu, self.every = gpu, every  # gpu: nvidia-smi's --id of the GPU, or None
        self.samples: list[tuple[float, float, float]] = []  # (time, utilisation, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        psutil.cpu_percent()
        while not self._stop.wait(self.every):
            if self.gpu is None:
                used = psutil.virtual_memory().used / 2**20
                self.samples.append((time.time(), psutil.cpu_percent(), used))
                continue
            out = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    f"--id={self.gpu}",
                ],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            try:
                util, mib = (float(x) for x in out.split(",")[:2])
            except ValueError:  # "[N/A]" (MIG, unsupported) or no answer: no sample
                continue
            self.samples.append((time.time(), util, mib))

    def summary(self, t0: float, t1: float) -> tuple[float, float]:
        """Mean utilisation and peak memory (MiB) over the samples taken in [t0, t1]."""
        window = [(u, m) for t, u, m in self.samples if t0 <= t <= t1]
        if not window:
            return float("nan"), float("nan")
        return sum(u for u, _ in window) / len(window), max(m for _, m in window)


def write_spec(
    tmp: Path, k: int, *, waves: int, epochs: int, batch: int, cpus: float, data: dict[str, str]
) -> Path:
    n = waves * k
    body = {
        "name": f"packing-{k}",
        "paper": "bench",
        "profile": "real",
        "real": {
            "model": data["model"],
            "clean_data": data["clean"],
            "eval_data": data["eval"],
            "classnames": data["classnames"],
            "trial": {"data": {"num_workers": data["workers"]}},
        },
        "start": {"checkpoint": data["checkpoint"], "objective": "mmcl", "trigger": "badnet"},
        "clean": {
            "method": "cleanclip",
            "grid": {"lr": [round(1e-5 * (i + 1), 8) for i in range(n)]},
            "trial": {
                "optim": {"epochs": epochs, "warmup_steps": 5},
                "data": {"batch_size": batch},
                "save": "none",
            },
            "resources": {"gpu": floor4(1 / k), "cpu": cpus},
        },
    }
    path = tmp / f"packing-{k}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def floor4(x: float) -> float:
    """Down to Ray's resource unit (0.0001): rounding 1/6 up would fit only 5 on a GPU."""
    return math.floor(x * 1e4) / 1e4


def prepare(tmp: Path, model_name: str, pairs: int) -> dict[str, str]:
    import torch

    from trainers.checkpoint import save_checkpoint
    from trainers.data.synthetic import make_synthetic
    from trainers.models import create_model

    model, info = create_model(model_name, seed=0)
    syn = make_synthetic(
        tmp / "data", n_train=10, n_clean=pairs, n_eval_per_class=20, image_size=info.image_size
    )
    ckpt = save_checkpoint(
        tmp / "start.pt",
        model,
        model_name=model_name,
        config={},
        meta={"poison_kind": "badnet", "target": "banana", "patch_size": 16, "trigger_seed": 0},
    )
    del model
    torch.cuda.empty_cache()
    return {
        "model": model_name,
        "clean": str(syn.clean),
        "eval": str(syn.eval),
        "classnames": str(syn.classnames),
        "checkpoint": str(ckpt),
        "image_size": str(info.image_size),
    }


def main() -> None:
    # One GPU, the same one for torch, Ray and nvidia-smi: "per GPU" must mean one GPU.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    os.environ["CUDA_VISIBLE_DEVICES"] = visible
    import torch

    gpu = torch.cuda.is_available()
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-gpu", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--model", default="RN50" if gpu else "tiny-rn")
    ap.add_argument("--pairs", type=int, default=2000 if gpu else 300)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128 if gpu else 64)
    ap.add_argument("--waves", type=int, default=2, help="trials = waves x per-gpu")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="cores for trials")
    ap.add_argument("--workers", type=int, default=None, help="data loader workers per trial")
    args = ap.parse_args()

    import ray

    from results.store import read_trials
    from sweeper.driver import launch
    from sweeper.plan import load_spec, plan_sweep

    tmp = Path(tempfile.mkdtemp(prefix="bench-packing-"))
    data = prepare(tmp, args.model, args.pairs)
    ray.init(
        address="local",
        num_cpus=args.cpus,
        num_gpus=1,
        include_dashboard=False,
        logging_level="warning",
    )
    device = torch.cuda.get_device_name(0) if gpu else f"CPU ({platform.machine()})"
    table = []
    for k in args.per_gpu:
        cpus = max(floor4(args.cpus / k), 0.1)
        workers = args.workers if args.workers is not None else min(4, max(0, int(cpus) - 1))
        path = write_spec(
            tmp,
            k,
            waves=args.waves,
            epochs=args.epochs,
            batch=args.batch_size,
            cpus=cpus,
            data={**data, "workers": workers},
        )
        store = tmp / "store"
        plan = plan_sweep(load_spec(path), spec_path=path)
        with Sampler(visible if gpu else None) as sampler:
            code = launch(plan, store=store)
        if code != 0:
            raise SystemExit(f"the packing-{k} sweep failed (exit {code}); see {store}")
        sweep = sorted(p.name for p in store.iterdir() if p.name.startswith(f"packing-{k}-"))[-1]
        rows = [r for r in read_trials(store, [sweep]).to_pylist() if r["stage"] == "clean"]
        bad = [r["trial_id"] for r in rows if r["status"] != "completed"]
        if bad:
            raise SystemExit(f"trials did not complete: {bad}")
        t0 = min(r["started_at"].timestamp() for r in rows)
        t1 = max(r["ended_at"].timestamp() for r in rows)
        per = [(r["ended_at"] - r["started_at"]).total_seconds() for r in rows]
        util, peak = sampler.summary(t0, t1)
        table.append(
            f"{k:>7} {len(rows):>6} {t1 - t0:>8.1f} {len(rows) / (t1 - t0) * 3600:>9.0f} "
            f"{sum(per) / len(per):>8.1f} {util:>11.0f} {peak:>12.0f}"
        )
    ray.shutdown()
    print()
    print(
        f"device: {device}; {args.cpus} cores for trials, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, ray {metadata.version('ray')}, "
        f"open_clip {metadata.version('open_clip_torch')}"
    )
    print(
        f"CleanCLIP trials of {args.model} at {data['image_size']} px: {args.pairs} pairs, "
        f"batch {args.batch_size}, {args.epochs} epochs + an evaluation per epoch "
        f"(200 images, 80 templates x 10 classes); {args.waves} waves per packing"
    )
    if not gpu:
        print(
            "no GPU: the cluster has one logical GPU, the trials run on the CPU, and the "
            "utilisation column is the machine's CPU %; the GPU figures are pending"
        )
    unit = "GPU util %" if gpu else "CPU util %"
    mem = "peak GPU MiB" if gpu else "peak RAM MiB"
    print(
        f"{'per GPU':>7} {'trials':>6} {'wall s':>8} {'trials/h':>9} {'trial s':>8} "
        f"{unit:>11} {mem:>12}"
    )
    print("\n".join(table))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
