"""`sweeper status SWEEP`: trial counts by stage and status, failures, best model so far."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

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
    s = summarise(args.store, args.sweep, args.threshold)
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    print(f"sweep {s['sweep']}: {s['epoch_rows']} epoch rows")
    for stage, counts in s["stages"].items():
        print(f"  {stage}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for f in s["failed"]:
        print(f"  failed {f['trial_id']}: {' '.join(f['error'])}")
    b, t = s["best_clean"], s["threshold"]
    if not s["stages"]:
        print("  no trial has started yet")
    print(
        f"  best clean_acc at ASR<={t:g}%: {b['clean_acc']:.2f} ({b['trial_id']}, epoch "
        f"{b['epoch']}, asr {b['asr']:.2f})"
        if b
        else f"  no cleaned candidate at ASR<={t:g}% yet"
    )
    return 0
