"""`sweeper status SWEEP`: trial counts by stage and status, failures, best model so far."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

from results.best import DEFAULT_THRESHOLD
from sweeper.errors import SweepNotFound

SUCCESS_ASR = DEFAULT_THRESHOLD


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="summarise one sweep from its store")
    p.add_argument("sweep", help="sweep id or sweep directory")
    p.add_argument(
        "--store",
        default=os.environ.get("SWEEPER_STORE", "sweeps"),
        help="results store (default ./sweeps)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def summarise(store: str | Path, sweep: str) -> dict:
    from results.store import read_epochs, read_trials

    sweep_path = Path(sweep)
    if sweep_path.is_dir():
        store, sweep = sweep_path.parent, sweep_path.name
    elif not (Path(store) / sweep).is_dir():
        raise SweepNotFound(f"no sweep {sweep!r} in store {store}: check the id and --store")
    trials = read_trials(store, [sweep]).to_pylist()
    # A sweep whose trials have not reported yet has no epoch parts: that is 0 rows, not an
    # error. A part that is there but broken is an error, and says so.
    has_parts = any((Path(store) / sweep / "epochs").glob("part-*.parquet"))
    epochs = read_epochs(store, [sweep]).to_pylist() if has_parts else []
    by_stage: dict[str, Counter] = {}
    for t in trials:
        by_stage.setdefault(t["stage"], Counter())[t["status"]] += 1
    ok = [e for e in epochs if e["stage"] == "clean" and e["asr"] <= SUCCESS_ASR and e["epoch"] > 0]
    best = max(ok, key=lambda e: e["clean_acc"], default=None)
    return {
        "sweep": sweep,
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
    s = summarise(args.store, args.sweep)
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    print(f"sweep {s['sweep']}: {s['epoch_rows']} epoch rows")
    for stage, counts in s["stages"].items():
        print(f"  {stage}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for f in s["failed"]:
        print(f"  failed {f['trial_id']}: {' '.join(f['error'])}")
    b = s["best_clean"]
    print(
        f"  best clean_acc at ASR<={SUCCESS_ASR:g}%: {b['clean_acc']:.2f} ({b['trial_id']}, epoch {b['epoch']}, asr {b['asr']:.2f})"
        if b
        else f"  no cleaned candidate at ASR<={SUCCESS_ASR:g}% yet"
    )
    return 0
