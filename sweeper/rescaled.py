"""No silent overrides: what the embedded profile runs in place of a value the user set.

The planner records, for every spec field whose value the embedded profile changes (an
epoch count scaled, a batch capped, a poison count replaced, ...), the value as written, the
values it runs as, and the rule that changed it. `rescaled_lines` turns the records that a
command line's overrides touched into one line each, for `launch` and `--dry-run` to print:

    clean.trial.optim.epochs=3 runs as 1 (embedded.epoch_scale 0.25; embedded.epoch_scale=1 runs it as written)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sweeper.errors import SpecError
from sweeper.overrides import parse_override
from sweeper.spec_errors import shown

if TYPE_CHECKING:
    from sweeper.plan_types import SweepPlan
    from sweeper.spec import EmbeddedProfile

_SHOWN_VALUES = 12  # of a grid override's values, in its line


def rule_text(rule: str, emb: EmbeddedProfile, written: Any) -> str:
    """Why the embedded profile changes a value, and how to run it as written."""
    if rule == "embedded.epoch_scale":
        return (
            f"embedded.epoch_scale {emb.epoch_scale:g}; embedded.epoch_scale=1 runs it as written"
        )
    if rule == "embedded.max_batch_size":
        return (
            f"embedded.max_batch_size {emb.max_batch_size}; "
            f"embedded.max_batch_size={written} runs it as written"
        )
    if rule == "embedded.max_warmup_fraction":
        return (
            f"warmup capped at embedded.max_warmup_fraction {emb.max_warmup_fraction:g} "
            "of a trial's steps"
        )
    if rule == "embedded.n_clusters":
        return f"embedded.n_clusters {emb.n_clusters}; embedded.n_clusters={written} runs it as written"
    if rule == "embedded.poison_fraction":
        return (
            f"embedded.poison_fraction {emb.poison_fraction:g} replaces a count of poisoned "
            "pairs, which the synthetic set may not hold"
        )
    if rule == "embedded.scratch_lr":
        return (
            f"embedded.scratch_lr {emb.scratch_lr:g}: there is no checkpoint of the tiny model "
            "to finetune, so the job trains from scratch"
        )
    if rule.startswith("embedded.resources."):
        shown_written = f"{written:g}" if isinstance(written, float) else written
        return f"the embedded profile asks {rule} of every trial; set {rule}={shown_written}"
    return rule


class Rescales:
    """The records of one plan, keyed by the spec field that set the value."""

    def __init__(self, emb: EmbeddedProfile) -> None:
        self.emb = emb
        self._records: dict[str, tuple[Any, set[Any], str]] = {}

    def add(self, source: str, written: Any, runs_as: Any, rule: str) -> None:
        record = self._records.get(source)
        if record is None:
            record = self._records[source] = (written, set(), rule_text(rule, self.emb, written))
        record[1].add(runs_as)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            source: {"written": written, "runs_as": sorted(runs, key=repr), "rule": rule}
            for source, (written, runs, rule) in self._records.items()
        }


def rescaled_lines(plan: SweepPlan, overrides: Sequence[str]) -> list[str]:
    """One line per override (or part of one) the embedded profile runs with another value."""
    lines: list[str] = []
    for text in overrides:
        key = text.partition("=")[0].strip()
        hits = {
            src: rec
            for src, rec in plan.rescaled.items()
            if src == key or src.startswith((key + ".", key + "["))
        }
        if not hits:
            continue
        grid = {src: rec for src, rec in hits.items() if src.startswith(key + "[")}
        for src, rec in hits.items():
            if src not in grid:
                shown_as = text.strip() if src == key else f"{src}={_value(rec['written'])}"
                lines.append(f"{shown_as} runs as {_runs(rec['runs_as'])} ({rec['rule']})")
        if grid:
            lines += _grid_lines(text, key, grid)
    return lines


def _grid_lines(text: str, key: str, grid: dict[str, dict[str, Any]]) -> list[str]:
    try:
        _, values = parse_override(text)
    except SpecError:
        return []
    if not isinstance(values, list):
        return []
    runs = [
        _runs(grid[f"{key}[{i}]"]["runs_as"]) if f"{key}[{i}]" in grid else _value(v)
        for i, v in enumerate(values)
    ]
    more = f", ... ({len(runs)} values)" if len(runs) > _SHOWN_VALUES else ""
    rules = list(dict.fromkeys(rec["rule"] for rec in grid.values()))
    return [
        f"{text.strip()} runs as [{', '.join(runs[:_SHOWN_VALUES])}{more}] ({'; '.join(rules)})"
    ]


def _runs(values: Sequence[Any]) -> str:
    if len(values) == 1:
        return _value(values[0])
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(numbers) == len(values):
        return f"{_value(min(numbers))} to {_value(max(numbers))}, depending on the trial"
    return " or ".join(_value(v) for v in values)


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else shown(value)
