"""`sweeper resume SWEEP`: finish an interrupted sweep without re-running finished trials."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="finish an interrupted sweep (finished trials are kept, the rest re-run)",
        description="Finish an interrupted sweep. Trials recorded as completed, diverged, "
        "failed or stopped (by the stage's scheduler) are kept; the others run again from their start, and their new rows replace "
        "the old ones in the store's reader.",
    )
    p.add_argument("sweep", help="sweep id (as `sweeper launch` printed it) or a sweep directory")
    p.add_argument(
        "--store",
        default=os.environ.get("SWEEPER_STORE", "sweeps"),
        help="results store (default ./sweeps)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (default $RAY_ADDRESS, else a local one)",
    )
    p.add_argument(
        "--dashboard-host", default="127.0.0.1", help="interface the local dashboard binds to"
    )
    p.add_argument(
        "--fit-resources",
        action="store_true",
        help="as for launch: run a stage no node can hold on the biggest node",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweeper.driver import resume

    return resume(
        args.sweep,
        store=args.store,
        address=args.address,
        dashboard_host=args.dashboard_host,
        fit_resources=args.fit_resources,
    )
