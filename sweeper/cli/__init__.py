"""`sweeper` command line: one small module per subcommand.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func` to a `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("launch", "resume", "status", "check", "validate", "ls", "report", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweeper",
        description="Staged Ray Tune sweeps for backdoor cleaning of CLIP models.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"sweeper.cli.{name}")
        module.register(sub)
    return parser


EXIT_CODES = """exit codes:
  0    every trial completed
  1    some trial failed or diverged (the last line names them)
  2    bad input (a spec, a path, a cluster that cannot run it) or a damaged store
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: `sweeper resume` finishes the sweep
  141  the reader of the output went away (`sweeper report ... | head`), as for SIGPIPE"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (EXIT_CODES)."""
    from results.errors import ResultsError
    from sweeper.errors import SweeperError
    from sweeper.interrupts import SweepInterrupted
    from trainers.errors import TrainerError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SweepInterrupted as err:
        print(f"sweeper {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except (SweeperError, TrainerError, ResultsError) as err:
        print(f"sweeper {args.command}: error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    except KeyboardInterrupt:
        print(f"sweeper {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `| head` closed stdout: no traceback, and none at exit when Python flushes it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
