"""`sweeper check SWEEP`: read every file of a sweep whole and list each damaged one.

Exit 0 when every part file, the plan and the pre-training cache records it uses read
back; 2 with one line per damaged file otherwise. Nothing is written or moved.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="list every damaged file of a sweep (part files, plan, cache records)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("sweep", help="sweep id or sweep directory")
    p.add_argument(
        "--store",
        default=os.environ.get("SWEEPER_STORE", "sweeps"),
        help="results store (default ./sweeps)",
    )
    p.set_defaults(func=run)


def damaged_files(sweep_dir: Path) -> list[tuple[Path, str]]:
    """(path, problem) for every file of the sweep that does not read back."""
    from results.check import check_parts
    from sweeper.plan_io import load_plan

    found = [(d.path, d.problem) for d in check_parts(sweep_dir)]
    try:
        plan = load_plan(sweep_dir / "plan.json")
    except Exception as err:
        return [*found, (sweep_dir / "plan.json", str(err))]
    cache = sweep_dir.parent / ".cache" / "pretrain"
    for key in plan.pretrain_cache_keys.values():
        done = cache / key / "done.json"
        if not done.is_file():
            continue
        try:
            json.loads(done.read_text())["rows"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            found.append((done, f"unreadable cache record ({err}); it is re-made on the next use"))
    return found


def run(args: argparse.Namespace) -> int:
    from sweeper.driver import sweep_dir_of

    sweep_dir = sweep_dir_of(args.sweep, args.store)
    found = damaged_files(sweep_dir)
    if not found:
        print(f"sweep {sweep_dir.name}: every file reads back whole")
        return 0
    print(f"sweep {sweep_dir.name}: {len(found)} damaged file(s):")
    for path, problem in found:
        print(f"  {path}: {problem.splitlines()[0]}")
    print(
        "move each damaged part out of the store (its rows are lost; `sweeper resume` runs "
        "their trials again) or restore it from a backup"
    )
    return 2
