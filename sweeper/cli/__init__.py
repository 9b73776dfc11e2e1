"""`sweeper` command line: one small module per subcommand.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func` to a `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("launch", "resume", "status", "validate", "ls", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweeper",
        description="Staged Ray Tune sweeps for backdoor cleaning of CLIP models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"sweeper.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 sweep failed, 2 bad input)."""
    from results.errors import ResultsError
    from sweeper.errors import SweeperError
    from trainers.errors import TrainerError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (SweeperError, TrainerError, ResultsError) as err:
        print(f"sweeper {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sweeper {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
