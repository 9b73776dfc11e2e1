"""Orchestration overhead: the same N cleaning trials through `sweeper launch` and a plain loop.

    python bench/bench_overhead.py [--trials 8] [--epochs 2] [--concurrency 2]

(a) `sweeper launch` of a spec whose pre-training is already cached, so only the cleaning
    stage runs: N trials on a local Ray cluster, `concurrency` at a time (cpu per trial set
    so that Ray packs exactly that many).
(b) the same N trial configs (taken from the sweep's own plan) run by a process pool of
    `concurrency` workers calling `trainers.clean` directly.
Prints both wall times and their ratio, and splits (a)'s extra time into what it is, from
the store's own timestamps (trial table: when Tune started each trial and when its outcome
arrived; epoch table: the trainer's clock):
- one-off: launch -> first trial start (Ray and the dashboard starting, the plan) and the
  shutdown after the last trial;
- once per Ray actor: its first trial imports torch and open_clip in a fresh process;
- per trial: the idle gap between one trial's end and the next one's start in the same
  slot, plus whatever time a trial spends outside the trainer's clock (set-up before the
  first epoch: model, checkpoint, eval set, prompts; wind-down after the last: the final
  checkpoint, the outcome reaching the driver) beyond what a direct call spends.
  That sum is the per-trial scheduling overhead.
For trials of a few minutes: --epochs 60 (about 100 s per trial on 2 quiet cores).
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
from importlib import metadata
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


def launch(path: Path, store: Path) -> tuple[float, str, float]:
    """Wall time of `sweeper launch`, the sweep id, and the wall-clock time it started."""
    started = time.time()
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "sweeper", "launch", str(path), "--store", str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    sweep = next(ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("sweep:"))
    return time.perf_counter() - t, sweep, started


def trial_times(store: Path, sweep: str) -> list[tuple[float, float, float]]:
    """(start, end, trainer wall) of each cleaning trial, by start time.

    start/end are the driver's (the trial table: Tune starting the trial, the outcome
    arriving); the trainer's wall is its own clock at its last epoch (the epoch table).
    """
    from results.store import read_epochs, read_trials

    rows = [r for r in read_trials(store, [sweep]).to_pylist() if r["stage"] == "clean"]
    walls: dict[str, float] = {}
    for e in read_epochs(store, [sweep]).to_pylist():
        walls[e["trial_id"]] = max(walls.get(e["trial_id"], 0.0), e["wall_s"])
    out = [
        (r["started_at"].timestamp(), r["ended_at"].timestamp(), walls[r["trial_id"]]) for r in rows
    ]
    return sorted(out)


def slots(trials: list[tuple[float, float, float]]) -> tuple[list[int], list[float]]:
    """Which trials were the first of their slot (a fresh Ray actor), and the idle gap
    before each of the others (the previous trial in its slot ending -> this one starting)."""
    ends: list[float] = []
    firsts: list[int] = []
    gaps: list[float] = []
    for i, (start, end, _) in enumerate(trials):
        done = [e for e in ends if e <= start]
        if done:
            prev = max(done)
            ends.remove(prev)
            gaps.append(start - prev)
        else:
            firsts.append(i)
        ends.append(end)
    return firsts, gaps


def _one(config: dict) -> tuple[float, float]:
    """(call duration, trainer wall at its last epoch) of one direct `trainers.clean` call."""
    from trainers import ListReporter, clean

    t = time.perf_counter()
    rep = ListReporter()
    clean(config, rep)
    return time.perf_counter() - t, rep.records[-1].wall_s


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


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
    warm, _, _ = launch(path, store)  # pre-trains once and fills the cache; not measured
    a, sweep, a_start = launch(path, store)
    trials = trial_times(store, sweep)
    startup = trials[0][0] - a_start
    teardown = a_start + a - max(t[1] for t in trials)
    firsts, gaps = slots(trials)
    steady = [t for i, t in enumerate(trials) if i not in firsts]
    fresh = [t for i, t in enumerate(trials) if i in firsts]
    configs = plain_configs(store, sweep, threads=max(1, int(cpu)))
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.concurrency) as pool:
        plain = pool.map(_one, configs)
    b = time.perf_counter() - t0

    v = {m: metadata.version(m) for m in ("torch", "ray", "open_clip_torch")}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; python {platform.python_version()}, "
        + ", ".join(f"{k} {x}" for k, x in v.items())
    )
    print(
        f"{args.trials} CleanCLIP trials x {args.epochs} epochs (500 pairs, tiny-rn, "
        f"{max(1, int(cpu))} thread each), {args.concurrency} at a time; "
        f"warm-up launch (pre-training, not measured) {warm:.1f} s"
    )
    print(f"(a) sweeper launch, pre-training cached: {a:.1f} s")
    print(
        f"    one-off: start-up (launch -> first trial starts: Ray, dashboard, plan) "
        f"{startup:.1f} s; shutdown (last trial ends -> exit) {teardown:.1f} s"
    )
    print(
        f"    first trial of each of the {len(fresh)} Ray actors: "
        f"{mean([e - s - w for s, e, w in fresh]):.2f} s beyond the trainer's own clock "
        "(a new worker process importing torch and open_clip)"
    )
    setup_a = mean([e - s - w for s, e, w in steady])
    print(
        f"    later trials ({len(steady)}): idle gap between trials {mean(gaps):.3f} s, "
        f"set-up + wind-down beyond the trainer's clock {setup_a:.2f} s, trainer time {mean([w for *_, w in steady]):.1f} s"
    )
    setup_b = mean([d - w for d, w in plain])
    print(
        f"(b) process pool of {args.concurrency} calling trainers.clean: {b:.1f} s; "
        f"set-up + wind-down beyond the trainer's clock {setup_b:.2f} s, trainer time {mean([w for _, w in plain]):.1f} s"
    )
    print(
        f"(a)/(b) = {a / b:.2f}; without (a)'s one-off start-up and shutdown: "
        f"{(a - startup - teardown) / b:.2f}"
    )
    print(
        f"per-trial scheduling overhead (idle gap + extra set-up, later trials): "
        f"{mean(gaps) + setup_a - setup_b:.2f} s"
    )
    print(
        f"per-trial overhead, whole run ((a) - one-off - (b)) x {args.concurrency} / "
        f"{args.trials}: {(a - startup - teardown - b) * args.concurrency / args.trials:.2f} s"
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
