"""Spec problems as messages: each line names the file and the dotted field, and says the fix.

Pydantic's errors become `(field, message)` pairs; an unknown key lists the allowed ones.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sweeper.errors import SpecError

Problem = tuple[str, str]  # (dotted field, message)


def spec_error(where: str, problems: Sequence[Problem | str]) -> SpecError:
    """One SpecError; each line names the file and the field."""
    lines = list(
        dict.fromkeys(p if isinstance(p, str) else f"{where}: {p[0]}: {p[1]}" for p in problems)
    )
    if len(lines) == 1:
        return SpecError(lines[0])
    return SpecError(f"{len(lines)} problems in {where}:\n" + "\n".join(f"  {x}" for x in lines))


def validation_problems(
    err: ValidationError, root: type[BaseModel], prefix: str = ""
) -> list[Problem]:
    """Turn pydantic errors into (field, message) pairs with short, fix-naming messages."""
    out: list[Problem] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p != "[key]")
        out.append(
            (
                prefix + format_loc(loc) if loc else prefix.rstrip(".") or "(top level)",
                describe(e, root),
            )
        )
    return out


def format_loc(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def describe(e: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "extra_forbidden":
        allowed = allowed_keys(root, tuple(p for p in e["loc"] if p != "[key]"))
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return "required"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        bound = ctx[key]
        text = (
            f"must be {op} {bound:g}"
            if isinstance(bound, (int, float))
            else f"must be {op} {bound}"
        )
    elif kind in ("too_short", "list_too_short", "dict_too_short"):
        text = "must not be empty"
    elif kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", e["msg"]))
    else:
        text = e["msg"][:1].lower() + e["msg"][1:]
    if isinstance(value, (int, float, str, bool)) and kind not in ("value_error",):
        text += f" (got {shown(value)})"
    return text


def shown(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut at `limit` characters (a value may be huge)."""
    if isinstance(value, (list, dict, tuple, set)):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model that holds `loc`'s last key, if any."""
    tp: Any = root
    for part in loc[:-1]:
        tp = _step(tp, part)
        if tp is None:
            return None
    model = next((c for c in candidates(tp) if is_model(c)), None)
    return list(model.model_fields) if model is not None else None


def candidates(tp: Any) -> list[Any]:
    """The types a field annotation accepts (Annotated and unions unwrapped)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return candidates(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [c for arg in get_args(tp) for c in candidates(arg)]
    return [tp]


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _step(tp: Any, part: Any) -> Any:
    for cand in candidates(tp):
        if is_model(cand) and isinstance(part, str) and part in cand.model_fields:
            return cand.model_fields[part].annotation
        origin = get_origin(cand)
        if origin in (dict, Mapping):
            return get_args(cand)[1]
        if origin in (list, tuple) and isinstance(part, int):
            return get_args(cand)[0]
    return None
