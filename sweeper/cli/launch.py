"""`sweeper launch FILE [--store DIR] [--address ADDR] [--logger NAME] [--seeds N] [--dry-run [--json]]
[dotted.key=value ...]`.

Loads and checks the search space (every problem at once, nothing written on failure), plans
its stages, and hands the plan to the driver. `--dry-run` prints the plan and starts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from sweeper.disk import as_json, plan_disk
from sweeper.disk import lines as disk_lines
from sweeper.plan import SweepPlan, plan_file
from sweeper.rescaled import rescaled_lines
from sweeper.spec import SweepSpec


class _IntermixedParser(argparse.ArgumentParser):
    """Lets options and `key=value` overrides come in any order (`FILE a=1 --dry-run b=2`).

    Plain argparse stops filling a `nargs="*"` positional at the first option after it
    (CPython bpo-14191), so `FILE --dry-run a=1` would fail; a leaf parser can parse
    intermixed instead, which argparse supports but `parse_args` does not use.
    """

    _inside = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def intermixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make a subcommand's parser accept options between its positionals."""
    parser.__class__ = _IntermixedParser
    return parser


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "launch",
        help="run a search space as a staged Ray sweep",
        description="Run a search space: pre-train (or reuse), select, [screen, pick,] clean. "
        "Prints the sweep id and its store path.",
    )
    p.add_argument("file", metavar="FILE", help="search-space YAML (see search_spaces/)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="dotted.key=value",
        help="change any spec field without editing the file, e.g. clean.trial.optim.epochs=3 "
        "or profile=real (values are YAML: 1e-5, [1e-5, 2e-5], null). The embedded profile "
        "scales epoch counts by embedded.epoch_scale; set it to 1 to run them as written",
    )
    p.add_argument("--store", default="sweeps", help="results store folder (default: ./sweeps)")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else local)"
    )
    p.add_argument(
        "--dashboard-host", default="127.0.0.1", help="Ray dashboard bind host for a local cluster"
    )
    p.add_argument(
        "--logger",
        action="append",
        default=[],
        metavar="NAME",
        help="also log every epoch to this experiment tracker (repeatable; added to the "
        "file's `loggers:`; names: `sweeper ls loggers`)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan; start and write nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    p.add_argument(
        "--fit-resources",
        action="store_true",
        help="run a stage that asks more than any node has (profile=real on a machine "
        "without GPUs) on the biggest node instead of refusing it; said in one line",
    )
    p.add_argument(
        "--ignore-disk",
        action="store_true",
        help="launch even when the plan's checkpoints may not fit the store's free space",
    )
    p.add_argument(
        "--seeds",
        type=seeds_arg,
        default=None,
        metavar="N|S1,S2,...",
        help="run the study once per seed (N: seeds 0..N-1) and report the repeats together: "
        "intervals across seeds and attainment surfaces (each repeat is its own sweep)",
    )
    intermixed(p)
    p.set_defaults(func=run)


def seeds_arg(text: str) -> list[int]:
    """`3` -> [0, 1, 2]; `0,4,7` -> [0, 4, 7] (distinct seeds >= 0)."""
    try:
        seeds = [int(x) for x in text.split(",")] if "," in text else list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a count (3 runs seeds 0, 1, 2) or seeds like 0,4,7"
        ) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a count >= 1 or distinct seeds >= 0, like 0,4,7"
        )
    return seeds


def run(args: argparse.Namespace) -> int:
    if args.json and not args.dry_run:
        print("sweeper launch: --json goes with --dry-run", file=sys.stderr)
        return 2
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if not args.dry_run:
        from sweeper.api import launch_plan, launch_repeats

        options = {
            "store": args.store,
            "address": address,
            "dashboard_host": args.dashboard_host,
            "fit_resources": args.fit_resources,
            "loggers": args.logger,
            "ignore_disk": args.ignore_disk,
        }
        # The one path from spec to driver, shared with `sweeper.launch` from Python.
        if args.seeds:
            _, code = launch_repeats(args.file, args.overrides, args.seeds, **options)
        else:
            _, code = launch_plan(args.file, args.overrides, **options)
        return code
    # Nothing touches the store before the spec has passed every check.
    spec, plan = plan_file(args.file, args.overrides, args.logger)
    from sweeper.resources import check_feasible

    # A stage no node of this machine can hold: a warning (the plan may be meant for a
    # cluster); --dry-run never contacts a cluster at --address.
    warning = check_feasible(plan, address, fit=args.fit_resources)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    overrides = args.overrides
    if args.seeds:
        print(f"repeats: seeds {', '.join(map(str, args.seeds))}, one sweep each", file=sys.stderr)
    disk = plan_disk(plan)
    print(
        json.dumps({**summary(plan, overrides), "disk": as_json(disk)}, indent=2)
        if args.json
        else "\n".join([table(plan, spec, overrides), *disk_lines(disk)])
    )
    return 0


def summary(plan: SweepPlan, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The dry-run JSON: scripts and CI read `sweep`, `paper` and each stage's `trials`
    (and `rescaled`, when the embedded profile runs an override with another value)."""
    stages = []
    for stage in plan.stages:
        entry: dict[str, Any] = {
            "name": stage.name,
            "trials": stage.n_trials,
            "resources": stage.resources,
        }
        if stage.search is not None:
            entry["search"] = "optuna"
        if stage.scheduler:
            entry["scheduler"] = stage.scheduler
        stages.append(entry)
    out: dict[str, Any] = {
        "sweep": plan.name,
        "paper": plan.paper,
        "profile": plan.profile,
        "stages": stages,
    }
    rescaled = rescaled_lines(plan, overrides)
    if rescaled:
        out["rescaled"] = rescaled
    if plan.loggers:
        out["loggers"] = list(plan.loggers)
    return out


def table(plan: SweepPlan, spec: SweepSpec, overrides: Sequence[str] = ()) -> str:
    lines = [f"sweep {plan.name} (paper {plan.paper or '-'}, profile {plan.profile})"]
    lines.append(f"  {'stage':<10}{'trials':>8}  resources per trial")
    for stage in plan.stages:
        res = ", ".join(f"{k} {v:g}" for k, v in stage.resources.items() if v)
        kind = " (optuna)" if stage.search is not None else ""
        if stage.scheduler:
            name, options = next(iter(stage.scheduler.items()))
            kind += f" [{name} " + ", ".join(f"{k} {v:g}" for k, v in options.items()) + "]"
        lines.append(f"  {stage.name:<10}{stage.n_trials:>8}  {res}{kind}")
    lines.append(f"  {'total':<10}{sum(s.n_trials for s in plan.stages):>8}")
    if plan.profile == "embedded":
        emb = spec.embedded
        lines.append(
            f"embedded profile: synthetic data, {emb.model}, every epoch count x{emb.epoch_scale:g} "
            f"(embedded.epoch_scale=1 runs them as written), warmup <= "
            f"{emb.max_warmup_fraction:.0%} of a trial's steps; profile=real for the paper's data"
        )
    # No silent override: each one the embedded profile runs with another value, and how.
    lines += rescaled_lines(plan, overrides)
    if plan.loggers:
        lines.append(f"loggers: {', '.join(plan.loggers)} (under <store>/<sweep>/logs/)")
    return "\n".join(lines)
