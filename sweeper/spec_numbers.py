"""Numbers that pydantic's lax mode would take but a search space must not.

Pydantic reads `true` as 1 where an int belongs, and `1e400` (which YAML reads as inf),
`.inf`, `"inf"` and `nan` as floats; `epochs: true` or `lr: .nan` would then run. These
checks walk a raw value along a model's annotations before the model validates it, so each
such value is refused with its field, whatever the section (spec, trial patch, grid value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from sweeper.spec_errors import candidates, is_model, shown

Loc = tuple[Any, ...]


def number_problems(tp: Any, raw: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """(location, message) of every boolean or non-finite number where `tp` wants a number."""
    out: list[tuple[Loc, str]] = []
    stack: list[tuple[Any, Any, Loc]] = [(tp, raw, loc)]
    while stack:
        tp, raw, at = stack.pop()
        kinds = candidates(tp)
        message = leaf_problem(kinds, raw)
        if message is not None:
            out.append((at, message))
            continue
        for cand in kinds:
            children = _children(cand, raw, at)
            if children is not None:
                stack.extend(reversed(children))
                break
    return out


def leaf_problem(kinds: list[Any], raw: Any) -> str | None:
    """The problem of one value for a field of these types, if it is a bad number."""
    numeric = any(k in (int, float) for k in kinds)
    if not numeric or bool in kinds:
        return None
    if isinstance(raw, bool):
        return f"must be a number, not a boolean (got {str(raw).lower()})"
    if isinstance(raw, float) and math.isnan(raw):
        return "must be a finite number (got nan)"
    if isinstance(raw, float) and not math.isfinite(raw):
        return f"must be a finite number (got {raw}: YAML reads .inf, and numbers past 1.8e308, as infinity)"
    if isinstance(raw, str) and str not in kinds and not _finite_text(raw):
        return f"must be a finite number (got {shown(raw)})"
    return None


def _finite_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return True  # not a number at all: the model's own check says so


def _children(tp: Any, raw: Any, at: Loc) -> list[tuple[Any, Any, Loc]] | None:
    if is_model(tp) and isinstance(raw, Mapping):
        fields = tp.model_fields
        return [(fields[k].annotation, v, (*at, k)) for k, v in raw.items() if k in fields]
    origin = get_origin(tp)
    if origin in (dict, Mapping) and isinstance(raw, Mapping):
        value_type = get_args(tp)[1]
        return [(value_type, v, (*at, k)) for k, v in raw.items()]
    if origin in (list, tuple) and isinstance(raw, list):
        item = get_args(tp)[0]
        if item is Any:
            return []  # checked where it is used (a grid value against its config field)
        return [(item, v, (*at, i)) for i, v in enumerate(raw)]
    return None
