"""Reading YAML: one loader for files and `key=value` overrides, with a size limit.

A file and an override go through one loader so a value reads the same in a file and on the
command line. PyYAML follows YAML 1.1, where `1e-5` (no dot) is a *string*; learning rates
are written that way throughout the paper's grids, so the loader also resolves YAML 1.2
floats. Duplicate keys are an error rather than PyYAML's silent last-one-wins: a grid that
names `lr` twice would otherwise lose half of its values without a word.

A document's size is counted on the composed node graph before anything is constructed,
every alias counted each time it is used: nine nested anchors ("billion laughs") compose to
a few dozen nodes but expand to 10^9, and are refused in microseconds instead of filling
memory while a grid is expanded or a message formats the value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sweeper.errors import SpecError

# A search space is a few hundred nodes; a grid of 200,000 values about as many nodes. Ten
# times that leaves room for any real grid while refusing an alias bomb at once.
MAX_YAML_NODES = 2_000_000

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)
        |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)

# libyaml's parser when PyYAML was built with it (about 7x faster on a large grid); the
# resolver and constructor, and so every value, are the same Python code either way.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TooBig(yaml.YAMLError):
    pass


class SpecLoader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader with YAML 1.2 floats, duplicate-key errors and a limit on expanded size."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        expanded_size(node)
        return self.construct_document(node)


SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _construct_mapping(loader: SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {repr(key)[:60]} (the second one would silently replace the first)",
                key_node.start_mark,
            )
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def expanded_size(root: yaml.Node, limit: int = MAX_YAML_NODES) -> int:
    """Nodes of the document with every alias expanded; `_TooBig` past `limit`.

    Each distinct collection is visited once (its expanded size is remembered), so the count
    costs time linear in the composed document however far its aliases would expand.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            size = 1 + sum(1 if type(c) is yaml.ScalarNode else sizes[id(c)] for c in children)
            if size > limit:
                raise _TooBig(f"more than {limit:,} nodes once its aliases are expanded")
            sizes[key] = size
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if type(child) is yaml.ScalarNode or id(child) in sizes:
                continue
            if id(child) in open_nodes:
                raise _TooBig("an alias refers to a node that contains it (a recursive document)")
            stack.append((child, False))
    return sizes.get(id(root), 1)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text; a syntax error names the file, line and column."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooBig as err:
        raise SpecError(
            f"{where}: the YAML document is too large: {err}; "
            "a search space needs far fewer (is an alias *name used inside its own anchor "
            "or repeated many levels deep?)"
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = err.problem or err.context or "invalid YAML"
        raise SpecError(f"{where}{at}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{where}: YAML syntax error: {err}") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise SpecError(f"{where}: a value YAML cannot read: {str(err)[:120]}") from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{where}: no such search-space file") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise SpecError(f"{where}: cannot read: {reason}") from None
    data = parse_yaml(text, where)
    if data is None:
        raise SpecError(f"{where}: the file is empty; a search space needs at least `name`")
    if not isinstance(data, dict):
        raise SpecError(f"{where}: the top level must be a mapping of keys, not a {kind(data)}")
    return data


def kind(value: Any) -> str:
    """A value's kind in a user's words: list, mapping, string, int, ..."""
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "string" if isinstance(value, str) else type(value).__name__
