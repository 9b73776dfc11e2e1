"""`sweeper validate FILE... [dotted.key=value ...]`: check search spaces without running them.

Each file is read, checked field by field and planned (every trial config validated); one
line per good file, every problem of a bad one. Exit 2 if any file fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeper.cli.launch import intermixed
from sweeper.errors import SpecError
from sweeper.plan import StagePlan, SweepPlan, check_file


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check search-space files (schema, ranges, every trial config)",
        description="Check search spaces without running them; overrides apply to every file.",
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="FILE|dotted.key=value",
        help="search-space files; key=value overrides apply to every file",
    )
    intermixed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # A FILE and a key=value override are told apart by the "=" (unless such a file exists).
    items = list(args.items)
    overrides = [a for a in items if "=" in a and not _is_file(a)]
    files = [a for a in items if a not in overrides]
    if not files:
        print("sweeper validate: no FILE given", file=sys.stderr)
        return 2
    failed = 0
    for name in files:
        try:
            _, stages = check_file(name, overrides)
        except SpecError as err:
            failed += 1
            print(f"FAILED {err}", file=sys.stderr)
            continue
        print(f"ok {name}: {describe_stages(stages)}")
    return 2 if failed else 0


def describe_plan(plan: SweepPlan) -> str:
    return describe_stages(plan.stages)


def describe_stages(stages: Sequence[StagePlan]) -> str:
    total = sum(s.n_trials for s in stages)
    parts = [f"{s.name} ({s.n_trials}{' optuna' if s.search is not None else ''})" for s in stages]
    return f"{total} trials in stages {', '.join(parts)}"


def _is_file(item: str) -> bool:
    try:
        return Path(item).exists()
    except OSError:  # a name too long for a path (an override's value may be long)
        return False
