"""A shrink-and-perturb screen's wall against its evaluations: one trial per point vs chunks.

    python bench/bench_screen.py [--shrinks 17] [--sigmas 15]

Runs the main job's screen (D.13's 17 x 15 grid by default, on the embedded default, from
one cached pre-training) twice through `sweeper launch`: with `screen.points_per_trial=1`
(a Ray trial per point, as before chunking) and with `auto` (sweeper.screen_chunks). For
each it prints, from the store's own timestamps:
- the screen stage's wall: first point started -> last point ended (trials table);
- its evaluations at the same concurrency: the sum over points of the trainer's own clock
  for the point (epoch 0's `wall_s`: model, start weights, perturbation, evaluation),
  divided by the number of trial slots;
- their ratio (goal: <= 1.5 with chunks).
The clean stage is one 1-epoch trial so the sweep ends soon after the screen.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results.store import read_epochs, read_trials  # noqa: E402


def _spec(tmp: Path, shrinks: int, sigmas: int, per_trial: str) -> Path:
    body = yaml.safe_load((ROOT / "search_spaces" / "shrink_perturb.yaml").read_text())
    grid = body["screen"]["grid"]
    grid["shrink"] = grid["shrink"][:shrinks]
    grid["perturb_sigma"] = grid["perturb_sigma"][:sigmas]
    # The temp spec lives elsewhere: its pre-training path must not be relative.
    body["start"]["pretrain"] = str(ROOT / "search_spaces" / body["start"]["pretrain"])
    body["screen"]["points_per_trial"] = per_trial if per_trial == "auto" else int(per_trial)
    body["clean"]["grid"] = {"lr": [body["clean"]["grid"]["lr"][0]]}
    body["clean"]["baselines"] = []
    path = tmp / f"screen-{per_trial}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def _run(spec: Path, store: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "sweeper", "launch", str(spec), "--store", str(store)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(
            f"launch failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    line = next(x for x in out.stdout.splitlines() if x.startswith("sweep: "))
    return line.split()[1]


def _measure(store: Path, sweep: str, slots: int) -> tuple[float, float, int]:
    trials = [t for t in read_trials(store, [sweep]).to_pylist() if t["stage"] == "screen"]
    rows = [r for r in read_epochs(store, [sweep]).to_pylist() if r["stage"] == "screen"]
    # A trial has a row per status it went through: only the finished ones have ended_at.
    ended = [t["ended_at"] for t in trials if t["ended_at"] is not None]
    started = [t["started_at"] for t in trials if t["started_at"] is not None]
    wall = (max(ended) - min(started)).total_seconds()
    open_rows = [(t["trial_id"], t["status"]) for t in trials if t["ended_at"] is None]
    if open_rows:
        print(f"  {len(open_rows)} screen trial(s) without ended_at: {open_rows[:5]}")
    trials = [t for t in trials if t["ended_at"] is not None]
    evals = sum(float(r["wall_s"] or 0.0) for r in rows) / slots
    return wall, evals, len(trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shrinks", type=int, default=17)
    ap.add_argument("--sigmas", type=int, default=15)
    ap.add_argument("--store", type=Path, default=None, help="keep the runs here (a temp dir)")
    args = ap.parse_args()
    slots = os.cpu_count() or 1  # the embedded profile's trials ask for one CPU each
    print(f"machine: {platform.processor() or platform.machine()}, {slots} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        store = args.store or tmp / "store"
        results = {}
        for per_trial in ("1", "auto"):
            sweep = _run(_spec(tmp, args.shrinks, args.sigmas, per_trial), store)
            results[per_trial] = _measure(store, sweep, slots)
        for per_trial, (wall, evals, n) in results.items():
            print(
                f"points_per_trial={per_trial}: {n} points, screen wall {wall:.1f} s, "
                f"evaluations / {slots} slots {evals:.1f} s, ratio {wall / evals:.2f}"
            )
        one, auto = results["1"][0], results["auto"][0]
        print(f"wall one-per-point / chunked = {one / auto:.2f}")


if __name__ == "__main__":
    main()
