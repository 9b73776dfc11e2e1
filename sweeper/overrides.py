"""YAML reading, `dotted.key=value` overrides, and the partial-config layers they feed.

A file and an override go through one loader so a value reads the same in a file and on the command line.
PyYAML follows YAML 1.1, where `1e-5` (no dot) is a *string*; learning rates are written
that way throughout the paper's grids, so the loader also resolves YAML 1.2 floats.
Duplicate keys are an error rather than PyYAML's silent last-one-wins: a grid that names
`lr` twice would otherwise lose half of its values without a word.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sweeper.errors import SpecError

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)
        |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats and duplicate-key errors."""


_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {key!r} (the second one would silently replace the first)",
                key_node.start_mark,
            )
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text; a syntax error names the file, line and column."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = err.problem or err.context or "invalid YAML"
        raise SpecError(f"{where}{at}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{where}: YAML syntax error: {err}") from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{where}: no such search-space file") from None
    except OSError as err:
        raise SpecError(f"{where}: cannot read: {err.strerror}") from None
    data = parse_yaml(text, where)
    if data is None:
        raise SpecError(f"{where}: the file is empty; a search space needs at least `name`")
    if not isinstance(data, dict):
        raise SpecError(f"{where}: the top level must be a mapping of keys, not a {_kind(data)}")
    return data


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


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "string" if isinstance(value, str) else type(value).__name__


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
