"""Search efficiency: how much of a grid's frontier each strategy finds for what share of it.

    python bench/bench_search.py --quick            # 10 of D.6's learning rates x 6 epochs
    python bench/bench_search.py                    # D.6's 85 learning rates x 20 epochs
    python bench/bench_search.py --lrs 17           # 17 of them (same spread) x 20 epochs
    python bench/bench_search.py --from-store SWEEP_DIR   # replay a finished grid only
    python bench/bench_search.py --quick --rerun    # also run pareto_asha for real

1. Runs the full grid once (`sweeper launch`, a real run on the embedded default: a tiny
   MMCL+SSL model poisoned with BadNet, CleanCLIP over the learning rates of D.6 or an even
   subset of them, the same spread). Every epoch >= 1 of every trial is a candidate; the
   grid's hypervolume (`results.hypervolume`) and its training epochs are the 100%.
2. Replays each strategy on the recorded trajectories, deciding stops from the recorded
   epochs only (the same trajectories for all, so the comparison is fair): `workers` trials
   run at once, one epoch per time step, trials start in the order the real run started
   them.
   - pareto_asha: `sweeper.pareto_asha.ParetoASHA` over the whole grid;
   - optuna: Optuna's multi-objective TPE over log(lr) in the grid's range, each sampled
     value mapped to the nearest recorded trajectory, told the trial's best cleaning epoch
     (`sweeper.trialrun.best_point`), with as many trials as pareto_asha's epochs pay for;
   - optuna+asha: the same search with pareto_asha stopping its trials, until pareto_asha's
     epoch budget is spent;
   - random: whole trials drawn at random until that budget is spent (mean of `--seeds`).
3. With `--rerun`, runs the grid again with `scheduler: {pareto_asha: ...}` for real and
   measures what it found from its own store.

Prints each strategy's fraction of the grid's hypervolume against its fraction of the
grid's epochs, then one line `hv_fraction=X epoch_fraction=Y` for pareto_asha (replay).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results.candidates import BASELINE_METHODS  # noqa: E402
from results.hypervolume import hypervolume  # noqa: E402
from results.store import read_epochs, read_trials  # noqa: E402
from sweeper.pareto_asha import ParetoASHA  # noqa: E402

Point = tuple[float, float]


@dataclass(frozen=True)
class Trajectory:
    trial: str
    lr: float
    points: tuple[Point, ...]  # epochs 1..E, in order


def grid_lrs(quick: bool, n: int | None = None) -> list[float]:
    """D.6's 85 learning rates, or `n` of them (quick: 10) evenly through the sorted list,
    smallest and largest included: the same spread."""
    d06 = yaml.safe_load((ROOT / "search_spaces/d06_finetune_mmcl_ssl.yaml").read_text())
    lrs = [float(v) for v in d06["clean"]["grid"]["lr"]]
    n = n or (10 if quick else None)
    if not n or n >= len(lrs):
        return lrs
    ranked = sorted(lrs)
    return [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]


def write_spec(tmp: Path, lrs: list[float], epochs: int, scheduler: dict | None) -> Path:
    clean: dict[str, Any] = {
        "method": "cleanclip",
        "grid": {"lr": lrs},
        "trial": {"optim": {"epochs": epochs, "warmup_steps": 5}, "data": {"batch_size": 64}},
        "resources": {"cpu": 1},
    }
    if scheduler:
        clean["scheduler"] = scheduler
    body = {
        "name": "bench_search" + ("_asha" if scheduler else ""),
        "paper": "D.6 (shape)",
        "embedded": {
            "synthetic": {"n_train": 2000, "n_clean": 500, "n_eval_per_class": 20, "seed": 0},
            "clean_pairs": 500,
            "epoch_scale": 1,
            "resources": {"cpu": 1},
        },
        "pretrain": {
            "trial": {
                "poison": {"kind": "badnet", "amount": 0.05, "target": "banana"},
                "optim": {"lr": 2e-3, "epochs": 6, "warmup_steps": 20},
                "data": {"batch_size": 64},
            },
            "jobs": {"mmcl_ssl": {"objective": "mmcl_ssl"}},
        },
        "clean": clean,
    }
    path = tmp / f"{body['name']}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def launch(spec: Path, store: Path) -> tuple[Path, float]:
    from sweeper.cli import main

    for attempt in range(6):
        before = set(store.iterdir()) if store.is_dir() else set()
        t0 = time.monotonic()
        code = main(["launch", str(spec), "--store", str(store)])
        wall = time.monotonic() - t0
        # Ray gives a local node 30 s to start; on a loaded machine that may not be enough,
        # and the launch then leaves nothing in the store: try again.
        fresh = (set(store.iterdir()) if store.is_dir() else set()) - before
        if code == 0 or fresh or attempt == 5:
            break
        print(f"sweeper launch wrote nothing (exit {code}): trying again", flush=True)
    if code != 0:
        raise SystemExit(f"sweeper launch {spec} ended with {code}")
    newest = max((d for d in store.iterdir() if (d / "plan.json").is_file()), key=os.path.getmtime)
    return newest, wall


def trajectories(sweep_dir: Path) -> list[Trajectory]:
    """The clean trials of a sweep, in the order the run started them (the BN-only
    baseline is no trial of the grid: it is left out, as the report leaves it out)."""
    rows = read_epochs(sweep_dir.parent, [sweep_dir.name]).to_pylist()
    trials = read_trials(sweep_dir.parent, [sweep_dir.name]).to_pylist()
    started = {r["trial_id"]: r["started_at"] for r in trials if r["started_at"] is not None}
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["stage"] == "clean" and r["epoch"] >= 1 and r["method"] not in BASELINE_METHODS:
            by.setdefault(r["trial_id"], []).append(r)
    out = []
    for trial, rs in by.items():
        rs.sort(key=lambda r: r["epoch"])
        pts = tuple((float(r["clean_acc"]), float(r["asr"])) for r in rs)
        out.append(Trajectory(trial, float(rs[0]["p_lr"]), pts))
    out.sort(key=lambda t: (str(started.get(t.trial, "")), t.trial))
    return out


@dataclass
class Outcome:
    name: str
    found: list[Point]
    epochs: int
    trials: int
    stopped: int = 0


# A trial source: given the number of trials already started, the next trajectory to run
# (None: no more), and a hook told each finished trial with the epochs it ran.
Source = Callable[[int], Trajectory | None]


def simulate(
    name: str,
    source: Source,
    workers: int,
    budget: int | None,
    asha: ParetoASHA | None,
    told: Callable[[Trajectory, int, int], None] = lambda t, n, i: None,
) -> Outcome:
    """Runs trials `workers` at a time, one epoch per step; stops starting new ones once
    `budget` epochs are spent (running ones finish or are stopped)."""
    out = Outcome(name, [], 0, 0)
    running: list[tuple[int, Trajectory, int]] = []  # (trial number, trajectory, epochs run)
    exhausted = False
    while True:
        while not exhausted and len(running) < workers and (budget is None or out.epochs < budget):
            traj = source(out.trials)
            if traj is None:
                exhausted = True
                break
            running.append((out.trials, traj, 0))
            out.trials += 1
        if not running:
            return out
        still = []
        for i, traj, ran in running:
            ran += 1
            out.epochs += 1
            out.found.append(traj.points[ran - 1])
            acc, asr = traj.points[ran - 1]
            key = f"{i}:{traj.trial}"
            last = len(traj.points)
            d = asha.report(key, ran, acc, asr, last_epoch=last) if asha else None
            if d is not None and d.stop:
                out.stopped += 1
                told(traj, ran, i)
            elif ran == last:
                told(traj, ran, i)
            else:
                still.append((i, traj, ran))
        running = still


def grid_source(trajs: list[Trajectory]) -> Source:
    return lambda n: trajs[n] if n < len(trajs) else None


def optuna_run(
    trajs: list[Trajectory], workers: int, budget: int, asha: ParetoASHA | None, seed: int
) -> Outcome:
    import optuna

    from sweeper.trialrun import best_point
    from trainers.reporter import EpochRecord

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=seed)
    )
    logs = [math.log(t.lr) for t in trajs]
    low, high = min(logs), max(logs)
    asked: dict[int, optuna.trial.Trial] = {}

    def source(n: int) -> Trajectory | None:
        trial = study.ask()
        x = trial.suggest_float("log_lr", low, high)
        asked[n] = trial
        return min(trajs, key=lambda t: (abs(math.log(t.lr) - x), t.trial))

    def tell(traj: Trajectory, ran: int, n: int) -> None:
        records = [EpochRecord(epoch=0, clean_acc=0.0, clean_top5=0.0, asr=100.0)] + [
            EpochRecord(epoch=e, clean_acc=a, clean_top5=a, asr=s)
            for e, (a, s) in enumerate(traj.points[:ran], start=1)
        ]
        study.tell(asked.pop(n), list(best_point(records)))

    name = "optuna+asha" if asha else "optuna"
    if asha is None:  # as many whole trials as the budget pays for
        n_trials = max(1, budget // len(trajs[0].points))
        bounded: Source = lambda n: source(n) if n < n_trials else None  # noqa: E731
        return simulate(name, bounded, workers, None, None, tell)
    return simulate(name, source, workers, budget, asha, tell)


def random_run(trajs: list[Trajectory], budget: int, seed: int) -> Outcome:
    order = random.Random(seed).sample(trajs, len(trajs))
    out = Outcome("random", [], 0, 0)
    for t in order:
        if out.epochs >= budget:
            break
        out.found += t.points
        out.epochs += len(t.points)
        out.trials += 1
    return out


def replay(
    trajs: list[Trajectory], workers: int, grace: int, reduction: float, seeds: int
) -> list[tuple[str, float, float, str]]:
    """(strategy, hv fraction, epoch fraction, note) for each strategy, replayed."""
    full_hv = hypervolume([p for t in trajs for p in t.points])
    total = sum(len(t.points) for t in trajs)

    def row(o: Outcome, note: str = "") -> tuple[str, float, float, str]:
        return (o.name, hypervolume(o.found) / full_hv, o.epochs / total, note)

    sched = simulate("pareto_asha", grid_source(trajs), workers, None, ParetoASHA(grace, reduction))
    budget = sched.epochs
    rows = [row(sched, f"{sched.stopped}/{sched.trials} trials stopped")]
    for make in (
        lambda s: optuna_run(trajs, workers, budget, None, s),
        lambda s: optuna_run(trajs, workers, budget, ParetoASHA(grace, reduction), s),
        lambda s: random_run(trajs, budget, s),
    ):
        outs = [make(s) for s in range(seeds)]
        hv = sum(hypervolume(o.found) for o in outs) / len(outs) / full_hv
        ep = sum(o.epochs for o in outs) / len(outs) / total
        lo = min(hypervolume(o.found) for o in outs) / full_hv
        rows.append((outs[0].name, hv, ep, f"mean of {seeds} seeds, min hv {lo:.3f}"))
    return rows


def real_scheduler(spec: Path, store: Path, trajs: list[Trajectory]) -> tuple[float, float, str]:
    sweep_dir, wall = launch(spec, store)
    found = trajectories(sweep_dir)
    full_hv = hypervolume([p for t in trajs for p in t.points])
    statuses = [r["status"] for r in read_trials(store, [sweep_dir.name]).to_pylist()]
    epochs = sum(len(t.points) for t in found)
    hv = hypervolume([p for t in found for p in t.points]) / full_hv
    total = sum(len(t.points) for t in trajs)
    return hv, epochs / total, f"{statuses.count('stopped')} stopped, wall {wall:.0f} s"


def conditions() -> str:
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "ray", "optuna"))
    return f"{platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {versions}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 learning rates x 6 epochs")
    ap.add_argument("--epochs", type=int, default=None, help="cleaning epochs (20; quick 6)")
    ap.add_argument(
        "--lrs", type=int, default=None, help="this many of D.6's rates, same spread (85; quick 10)"
    )
    ap.add_argument("--from-store", type=Path, default=None, help="a finished grid's sweep dir")
    ap.add_argument("--store", type=Path, default=None, help="where the runs go (a temp dir)")
    ap.add_argument("--workers", type=int, default=2, help="trials at once in the replay")
    ap.add_argument("--grace", type=int, default=1)
    ap.add_argument("--reduction", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, default=5, help="seeds of optuna and random")
    ap.add_argument("--rerun", action="store_true", help="also run pareto_asha for real")
    args = ap.parse_args(argv)
    epochs = args.epochs or (6 if args.quick else 20)
    store = args.store or Path(tempfile.mkdtemp(prefix="bench_search-"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_search-spec-"))
    lrs = grid_lrs(args.quick, args.lrs)
    print(f"conditions: {conditions()}", flush=True)
    if args.from_store is not None:
        grid_dir, wall = args.from_store, float("nan")
    else:
        grid_dir, wall = launch(write_spec(tmp, lrs, epochs, None), store)
    trajs = trajectories(grid_dir)
    total = sum(len(t.points) for t in trajs)
    print(
        f"full grid (real run): {grid_dir}: {len(trajs)} trials, {total} training epochs, "
        f"wall {wall:.0f} s, hypervolume {hypervolume([p for t in trajs for p in t.points]):.4f}"
    )
    print(
        f"replay: {args.workers} trials at once, pareto_asha grace {args.grace}, "
        f"reduction {args.reduction:g}; budgets: pareto_asha's epochs"
    )
    print(f"{'strategy':<14}{'hv_fraction':>12}{'epoch_fraction':>16}  source / note")
    rows = replay(trajs, args.workers, args.grace, args.reduction, args.seeds)
    for name, hv, ep, note in rows:
        print(f"{name:<14}{hv:>12.4f}{ep:>16.4f}  replay; {note}")
    if args.rerun:
        sched = {"pareto_asha": {"grace": args.grace, "reduction": args.reduction}}
        hv, ep, note = real_scheduler(write_spec(tmp, lrs, epochs, sched), store, trajs)
        print(f"{'pareto_asha':<14}{hv:>12.4f}{ep:>16.4f}  real run; {note}")
    _, hv, ep, _ = rows[0]
    print(f"hv_fraction={hv:.4f} epoch_fraction={ep:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
