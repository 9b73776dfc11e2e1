"""The paper's words for stored names: methods, objectives and groups."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

METHOD_LABELS: dict[str, str] = {
    "cleanclip": "CleanCLIP",
    "mmcl": "MMCL only",
    "ssl": "SSL only",
    "heavy_reg": "heavy regularisation",
    "shrink_perturb": "shrink-and-perturb",
    "deep_cluster": "deep clustering",
}

OBJECTIVE_LABELS: dict[str, str] = {
    "mmcl": "MMCL",
    "mmcl_ssl": "MMCL+SSL",
}


def method_label(method: str | None) -> str:
    """CleanCLIP for "cleanclip"; unknown names pass through unchanged."""
    if method is None:
        return "unknown method"
    return METHOD_LABELS.get(method, method)


def objective_label(objective: str | None) -> str:
    """MMCL+SSL for "mmcl_ssl"; unknown names pass through unchanged."""
    if objective is None:
        return "unknown objective"
    return OBJECTIVE_LABELS.get(objective, objective)


def format_value(value: Any) -> str:
    """A hyperparameter value as a short string (1e-05, 0.95, True)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def value_label(column: str, value: Any) -> str:
    """One group value in the paper's words."""
    if column == "method":
        return method_label(value)
    if column == "objective":
        return objective_label(value)
    if column.startswith("p_"):
        return f"{column[2:]}={format_value(value)}"
    return format_value(value)


def group_words(key: Mapping[str, Any]) -> dict[str, Any]:
    """A group key with methods and objectives in the paper's words (other values as is)."""
    words = {"method": method_label, "objective": objective_label}
    return {c: words[c](v) if c in words else v for c, v in key.items()}


def group_label(key: Mapping[str, Any]) -> str:
    """ "MMCL+SSL · CleanCLIP · sweep-a": the key's values in the paper's words."""
    order = ("objective", "method")
    columns = [c for c in order if c in key] + [c for c in key if c not in order]
    return " · ".join(value_label(c, key[c]) for c in columns) or "all"


def swept_names(params: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The parameters whose value differs between some of `params` (sorted): what a legend
    needs to tell those trials apart; a value shared by all says nothing."""
    names = sorted({n for p in params for n in p})
    return tuple(n for n in names if len({repr(p.get(n)) for p in params}) > 1)


def trial_label(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """ "lr=0.0001 · ssl_weight=0.5": a trial by its swept values, in `names` order."""
    return " · ".join(f"{n}={format_value(params.get(n))}" for n in names)


def unique_labels(labels: Sequence[str], ids: Sequence[str]) -> list[str]:
    """`labels` with the id appended to each one that occurs more than once (repeats), and
    the id alone in place of an empty one."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    out = []
    for label, i in zip(labels, ids, strict=True):
        out.append(i if not label else f"{label} ({i})" if seen[label] > 1 else label)
    return out
