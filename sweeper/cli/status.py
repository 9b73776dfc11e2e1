"""`sweeper status SWEEP [--watch [--interval S] [--count N]]`: trial counts by stage and
status, failures, the best model so far; `--watch` refreshes it until the sweep ends."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from results.best import DEFAULT_THRESHOLD
from sweeper.errors import SweepNotFound


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="summarise one sweep from its store")
    p.add_argument("sweep", help="sweep id or sweep directory")
    p.add_argument(
        "--store",
        default=os.environ.get("SWEEPER_STORE", "sweeps"),
        help="results store (default ./sweeps)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        metavar="PCT",
        help="ASR (%%) at or under which a cleaned model counts as a success (default 5)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--watch",
        action="store_true",
        help="refresh until the sweep is finished (or Ctrl-C): per stage done / running / "
        "failed, each running trial's epoch, an ETA, the best candidate",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="S",
        help="--watch: seconds between refreshes",
    )
    p.add_argument(
        "--count", type=int, default=None, metavar="N", help="--watch: stop after N refreshes"
    )
    p.set_defaults(func=run)


def summarise(store: str | Path, sweep: str, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Counts, failures and the best candidate at every moment of a sweep: before its first
    row, with pre-training rows only, part-way through cleaning. A damaged part is an error."""
    from results.best import best_of_rows
    from results.store import read_epochs, read_trials

    sweep_path = Path(sweep)
    if sweep_path.is_dir():
        store, sweep = sweep_path.parent, sweep_path.name
    elif not (Path(store) / sweep).is_dir():
        raise SweepNotFound(f"no sweep {sweep!r} in store {store}: check the id and --store")
    trials = read_trials(store, [sweep], missing_ok=True).to_pylist()
    epochs = read_epochs(store, [sweep], missing_ok=True).to_pylist()
    by_stage: dict[str, Counter] = {}
    for t in trials:
        by_stage.setdefault(t["stage"], Counter())[t["status"]] += 1
    best = best_of_rows((e for e in epochs if e["stage"] == "clean"), threshold)
    return {
        "sweep": sweep,
        "threshold": threshold,
        "stages": {s: dict(c) for s, c in by_stage.items()},
        "epoch_rows": len(epochs),
        "failed": [
            {"trial_id": t["trial_id"], "error": (t["error"] or "").splitlines()[-1:]}
            for t in trials
            if t["status"] == "failed"
        ],
        "best_clean": None
        if best is None
        else {k: best[k] for k in ("trial_id", "epoch", "clean_acc", "asr")},
    }


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return _watch(args)
    s = summarise(args.store, args.sweep, args.threshold)
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    print("\n".join(summary_lines(s)))
    return 0


def summary_lines(s: dict[str, Any], stages: list[str] | None = None) -> list[str]:
    """The text of a summary; `stages` replaces the per-stage counts (the watch's lines)."""
    lines = [f"sweep {s['sweep']}: {s['epoch_rows']} epoch rows"]
    if stages is not None:
        lines += stages
    else:
        for stage, counts in s["stages"].items():
            lines.append(f"  {stage}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for f in s["failed"]:
        lines.append(f"  failed {f['trial_id']}: {' '.join(f['error'])}")
    b, t = s["best_clean"], s["threshold"]
    if not s["stages"]:
        lines.append("  no trial has started yet")
    lines.append(
        f"  best clean_acc at ASR<={t:g}%: {b['clean_acc']:.2f} ({b['trial_id']}, epoch "
        f"{b['epoch']}, asr {b['asr']:.2f})"
        if b
        else f"  no cleaned candidate at ASR<={t:g}% yet"
    )
    return lines


def _watch(args: argparse.Namespace) -> int:
    if args.interval < 0 or (args.count is not None and args.count < 1):
        print("sweeper status: --interval must be >= 0 and --count >= 1", file=sys.stderr)
        return 2
    return watch_sweep(
        args.store,
        args.sweep,
        threshold=args.threshold,
        interval=args.interval,
        count=args.count,
        out=sys.stdout,
        tty=sys.stdout.isatty(),
    )


def watch_sweep(
    store: str | Path,
    sweep: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    interval: float = 5.0,
    count: int | None = None,
    out: TextIO = sys.stdout,
    tty: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """`status --watch`: the summary with each stage's running trials and ETA, refreshed
    every `interval` seconds (cleared in place on a terminal, appended otherwise) until the
    sweep is finished, `count` refreshes, or Ctrl-C. `sleep` waits between refreshes."""
    from results.store import read_epochs, read_trials
    from sweeper.progress import ENDED
    from sweeper.watch import latest_trials, load_plan_of, stage_lines, sweep_finished, watch

    summarise(store, sweep, threshold)  # an unknown sweep is an error before the first refresh
    sweep_dir = Path(sweep) if Path(sweep).is_dir() else Path(store) / sweep
    plan = load_plan_of(sweep_dir)
    root, name = sweep_dir.parent, sweep_dir.name

    def refresh() -> tuple[list[str], bool]:
        s = summarise(root, name, threshold)
        trials = latest_trials(read_trials(root, [name], missing_ok=True).to_pylist())
        if plan is None:  # no plan.json: finished once every trial it has ended
            done = bool(trials) and all(r["status"] in ENDED for r in trials.values())
            return summary_lines(s), done
        epochs = read_epochs(root, [name], missing_ok=True).to_pylist()
        finished = sweep_finished(plan, trials)
        lines = summary_lines(s, stage_lines(plan, trials, epochs))
        if finished:
            lines.append("finished: nothing more will be written to this sweep")
        return lines, finished

    return watch(refresh, interval=interval, count=count, out=out, tty=tty, sleep=sleep)
