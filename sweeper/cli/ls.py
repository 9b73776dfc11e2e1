"""`sweeper ls [methods|params|triggers|schedulers|models|spaces|loggers]`: the registered short names."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sweeper import registry
from sweeper.errors import SpecError

KINDS = ("methods", "params", "triggers", "schedulers", "models", "spaces", "loggers")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ls",
        help="list cleaning methods, swept parameters, triggers, schedulers, models, search "
        "spaces, loggers",
        description="List the names a search space may use. No KIND: everything but the full "
        "open_clip model list.",
    )
    p.add_argument("kind", nargs="?", choices=KINDS, metavar="KIND", help=" | ".join(KINDS))
    p.add_argument(
        "--dir",
        default=None,
        help="search-space folder for `spaces` (default: ./search_spaces, else the shipped one)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else [k for k in KINDS]
    blocks = []
    for kind in kinds:
        lines = _LISTERS[kind](args, full=args.kind is not None)
        blocks.append("\n".join(lines if args.kind else [f"{kind}:", *("  " + x for x in lines)]))
    print("\n\n".join(blocks))
    return 0


def _methods(args: argparse.Namespace, full: bool) -> list[str]:
    return [f"{m.name:<16}{m.description}" for m in registry.METHODS.values()]


def _params(args: argparse.Namespace, full: bool) -> list[str]:
    return [
        f"{p.name:<16}{(p.path or '(planner)'):<30}{p.description}"
        for p in registry.PARAMS.values()
        if p.listed
    ]


def _triggers(args: argparse.Namespace, full: bool) -> list[str]:
    return [f"{name:<18}{text}" for name, text in registry.TRIGGERS.items()]


def _schedulers(args: argparse.Namespace, full: bool) -> list[str]:
    return [f"{name:<18}{text}" for name, text in registry.SCHEDULERS.items()]


def _models(args: argparse.Namespace, full: bool) -> list[str]:
    lines = [f"{name:<18}{text}" for name, text in registry.TINY_MODELS.items()]
    if not full:
        return [*lines, "(`sweeper ls models` adds every open_clip model, e.g. RN50)"]
    return [*lines, *(m for m in registry.list_models() if m not in registry.TINY_MODELS)]


def _spaces(args: argparse.Namespace, full: bool) -> list[str]:
    from sweeper.cli.validate import describe_stages
    from sweeper.plan import check_file

    root = spaces_dir(args.dir)
    lines = []
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        try:
            spec, stages = check_file(path)
        except SpecError as err:
            lines.append(f"{rel:<40}{'-':<20}invalid: {str(err).splitlines()[0]}")
            continue
        lines.append(f"{rel:<40}{spec.paper or '-':<20}{describe_stages(stages)}")
    return lines or [f"(no search spaces in {root})"]


def _loggers(args: argparse.Namespace, full: bool) -> list[str]:
    from importlib.util import find_spec

    return [
        f"{lg.name:<14}{lg.description}"
        + (
            ""
            if find_spec(lg.module)
            else f" (not installed: pip install 'sweeper[{registry.LOGGERS_EXTRA}]')"
        )
        for lg in registry.LOGGERS.values()
    ]


def spaces_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    here = Path("search_spaces")
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "search_spaces"


_LISTERS = {
    "methods": _methods,
    "params": _params,
    "triggers": _triggers,
    "schedulers": _schedulers,
    "models": _models,
    "spaces": _spaces,
    "loggers": _loggers,
}
