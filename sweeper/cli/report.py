"""`sweeper report SWEEP... [--store DIR] [--out FILE] [--threshold 5] [--json] [--csv FILE]`

Writes one self-contained HTML report (plotly.js embedded, opens offline) of the sweeps:
accuracy vs ASR of every cleaning epoch, frontiers, trajectories, an Optuna search's sampled
values and hypervolume, pre-training curves and a summary table. One sweep's report is
<sweep>/report.html; several sweeps get their own <store>/reports/<A>+<B>.html. `--json` prints the summary for scripts instead (the HTML is then written only
when `--out` is given); `--csv FILE` also writes it as a spreadsheet. Imports only `results`
and the standard library, so it runs on a laptop without torch or ray.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_STORE = "./sweeps"


def register(subparsers: Any) -> None:
    """Add the `report` subcommand."""
    p = subparsers.add_parser(
        "report",
        help="write an HTML report (and JSON/CSV summary) of one or more sweeps",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "sweeps",
        nargs="+",
        metavar="SWEEP",
        help="a sweep id in --store, or a path to a sweep directory",
    )
    p.add_argument("--store", default=DEFAULT_STORE, help="results store (default ./sweeps)")
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="HTML file to write (default <store>/<sweep>/report.html for one sweep, "
        "<store>/reports/<A>+<B>.html for several)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        metavar="PCT",
        help="ASR (%%) at or under which a cleaned model counts as a success (default 5)",
    )
    p.add_argument(
        "--group-by",
        default="sweep_id,objective,method",
        metavar="COLS",
        help="comma-separated columns that split the analyses into groups (any p_<name> "
        "swept value may be added; default sweep_id,objective,method)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (HTML only with --out)",
    )
    p.add_argument("--csv", default=None, metavar="FILE", help="also write the summary as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the report; returns 0 (errors surface as ResultsError, exit code 2 in main)."""
    from results.report import build_report, default_report_path, load_report_data, save_html
    from results.summary import summary_json, write_csv

    by = tuple(c.strip() for c in args.group_by.split(",") if c.strip())
    data = load_report_data(args.store, args.sweeps)
    report = build_report(data, threshold=args.threshold, by=by)
    wrote = []
    if not args.json or args.out is not None:
        path = Path(args.out) if args.out else default_report_path(args.store, args.sweeps)
        save_html(report, path)
        wrote.append(f"report: {path}")
    if args.csv:
        wrote.append(f"csv: {write_csv(report.summary, args.csv)}")
    if args.json:
        json.dump(summary_json(report.summary), sys.stdout, indent=2)
        sys.stdout.write("\n")
        for line in wrote:
            print(line, file=sys.stderr)
    else:
        for line in wrote:
            print(line)
        _print_summary(report.summary)
        for b in report.baselines:
            print(
                f"  {b.sweep_id} {b.objective or ''}: BN only (no weight update) "
                f"{b.clean_acc:.2f}% at ASR {b.asr:.2f}% (start {b.start_acc:.2f}% / "
                f"{b.start_asr:.2f}%)"
            )
    # Whatever the output format, a study that cannot answer says so on stderr.
    for w in report.warnings:
        print(w.line(), file=sys.stderr)
    return 0


def _print_summary(summary: Any) -> None:
    """A few lines per group on stdout, so a terminal user sees the answer at once."""
    from results.summary import no_candidate_note

    for gs in summary.groups:
        b = gs.best
        if b.best is None:
            best = no_candidate_note(summary.threshold)
        else:
            change = "" if b.relative_change is None else f" ({b.relative_change:+.1%})"
            best = (
                f"best {b.best.clean_acc:.2f}% at ASR {b.best.asr:.2f}%{change}, "
                f"trial {b.best.trial_id} epoch {b.best.epoch}"
            )
        print(f"  {gs.group.label}: {best}; hypervolume {gs.hypervolume:.4f}")
