"""`dotted.key=value` overrides, and the partial-config layers a trial config is merged from.

An override's value is YAML, read by the loader that reads files (`sweeper.yaml_load`), so a
value reads the same in a file and on the command line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeper.errors import SpecError
from sweeper.yaml_load import kind as _kind
from sweeper.yaml_load import parse_yaml, read_yaml_mapping

__all__ = [
    "Layer",
    "apply_overrides",
    "deep_merge",
    "merge_layers",
    "nested",
    "parse_override",
    "parse_yaml",
    "read_yaml_mapping",
    "touches",
]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and its YAML-parsed value."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(_KEY.match(p) for p in parts):
        raise SpecError(
            f"override {text!r}: expected dotted.key=value, for example clean.trial.optim.epochs=3"
        )
    parsed = parse_yaml(value, f"override {text!r}") if value.strip() else ""
    return parts, parsed


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each override set; every bad override reported at once."""
    out = copy.deepcopy(dict(raw))
    problems: list[str] = []
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except SpecError as err:
            problems.append(str(err))
            continue
        node: dict[str, Any] = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                problems.append(
                    f"override {text!r}: {where} is a {_kind(child)}, not a mapping of keys"
                )
                break
            node = child
        else:
            node[parts[-1]] = value
    if problems:
        raise SpecError("\n".join(problems))
    return out


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, recursing into mappings present in both; inputs are not changed."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Layer:
    """One partial config in the stack a trial config is merged from, and where it came from.

    `label` names the spec field that set the values; a `patch` layer is a user's partial
    TrialConfig, so a problem inside it is reported at `label` + the config field.
    """

    label: str
    values: Mapping[str, Any]
    patch: bool = False


def nested(path: str, value: Any) -> dict[str, Any]:
    """`nested("optim.lr", 1e-5)` -> `{"optim": {"lr": 1e-5}}`."""
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def merge_layers(layers: Iterable[Layer]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.values)
    return merged


def touches(values: Mapping[str, Any], loc: Sequence[Any]) -> bool:
    """Whether a partial config sets the field at `loc` (or a parent of it, or inside it)."""
    node: Any = values
    for part in loc:
        if not isinstance(node, Mapping):
            return True  # the layer put a scalar where a section was expected
        if part not in node:
            return False
        node = node[part]
    return True
