"""Each value of a grid parameter, checked once against the config field it sets.

A grid of 200,000 learning rates is one pydantic call over the list; a bad value is reported
at its own field (`clean.grid.lr[3]: must be > 0 (got -1)`) and no point that holds it is
planned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from sweeper import registry
from sweeper.spec_errors import shown
from sweeper.trial_configs import field_values, normalised

# (section, field, JSON value) that a grid value sets; section "" for a top-level field (seed).
Sets = tuple[tuple[str, str, Any], ...]
Report = Callable[[str, str], None]


class GridValue(NamedTuple):
    name: str
    at: int  # its index in the parameter's list
    label: str  # the spec field: clean.grid.lr[3]
    raw: Any
    ok: bool
    norm: Any  # as the p_<name> column holds it
    key: str  # which points are repeats of one another
    sets: Sets = ()


def grid_values(stage: str, name: str, raws: list[Any], report: Report) -> list[GridValue]:
    """The values of `stage.grid.name`, each checked; `report(field, message)` per bad one."""
    path = registry.PARAMS[name].path
    if path is None:
        return [_value(stage, name, i, raw, None, report) for i, raw in enumerate(raws)]
    # One pydantic call for all the values of a config field (200,000 of them in ~0.1 s).
    scalar = [isinstance(raw, (str, int, float, bool)) for raw in raws]
    checkable = [r if ok else None for r, ok in zip(raws, scalar, strict=True)]
    values, problems = field_values(path, checkable)
    out = []
    for i, raw in enumerate(raws):
        if not scalar[i]:
            out.append(_value(stage, name, i, raw, None, report))
        elif i in problems:
            out.append(_bad(name, i, f"{stage}.grid.{name}[{i}]", raw, problems[i], report))
        else:
            out.append(_value(stage, name, i, raw, (split(path, values[i]),), report))
    return out


def _value(stage: str, name: str, i: int, raw: Any, sets: Sets | None, report: Report) -> GridValue:
    """A grid value; `sets`: what a config-field value sets, checked already."""
    label = f"{stage}.grid.{name}[{i}]"
    if not isinstance(raw, (str, int, float, bool)):
        message = f"must be a number or a string (got {type(raw).__name__})"
        return _bad(name, i, label, raw, message, report)
    param = registry.PARAMS[name]
    if name == "method" and raw not in registry.METHODS:
        message = f"unknown method {shown(raw)} (known: {', '.join(registry.METHODS)})"
        return _bad(name, i, label, raw, message, report)
    if param.choices and raw not in param.choices:
        allowed = ", ".join(map(str, param.choices))
        return _bad(name, i, label, raw, f"must be one of {allowed} (got {shown(raw)})", report)
    if name == "base_loss":
        sets = tuple(("loss", k, float(v)) for k, v in registry.BASE_LOSSES[str(raw)].items())
    elif name == "clean_poisons" and (isinstance(raw, bool) or not isinstance(raw, int) or raw < 0):
        message = f"must be a whole number of poisoned pairs >= 0 (got {shown(raw)})"
        return _bad(name, i, label, raw, message, report)
    norm = normalised(name, raw)
    return GridValue(name, i, label, raw, True, norm, repr((name, norm)), sets or ())


def _bad(name: str, i: int, label: str, raw: Any, message: str, report: Report) -> GridValue:
    report(label, message)
    return GridValue(name, i, label, raw, False, None, "")


def split(path: str, value: Any) -> tuple[str, str, Any]:
    """`("optim", "lr", value)` for `optim.lr`; `("", "seed", value)` for a top-level field."""
    section, _, name = path.partition(".")
    return ("", section, value) if not name else (section, name, value)
