"""Trial configs from layers: validated as a `TrialConfig` with each problem blamed on the
layer that set the field, swept values in their field's type, and the embedded profile's
scaling of the paper's numbers to the synthetic set.

Two ways to validate: `check_layers` checks one trial's merged layers (and blames each
problem on its layer); `SectionCheck` validates a config one section at a time and remembers
each section it has seen, so a grid of many trials validates each distinct section once
(`TrialConfig` has no rule across its sections, so the two agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from sweeper import registry
from sweeper.overrides import Layer, merge_layers, touches
from sweeper.spec import EmbeddedProfile
from sweeper.spec_errors import Problem, candidates, describe, format_loc, is_model
from sweeper.spec_numbers import leaf_problem, number_problems
from trainers.config import TrialConfig

# The sections of a TrialConfig (data, model, ...) and its top-level fields (seed, ...).
SECTIONS: dict[str, type[BaseModel]] = {
    name: f.annotation  # type: ignore[misc]  # is_model() checked it
    for name, f in TrialConfig.model_fields.items()
    if is_model(f.annotation)
}
TOP_LEVEL = tuple(name for name in TrialConfig.model_fields if name not in SECTIONS)
_DEFAULTS = TrialConfig.model_validate({}).model_dump(mode="json")


def validated(
    layers: list[Layer], params: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[Problem], dict[str, Any]]:
    config, problems = check_layers(layers, params)
    if config is None:
        return None, problems, {}
    return config, problems, {name: normalised(name, value) for name, value in params.items()}


def normalised(name: str, value: Any) -> Any:
    """A swept value as the config field's type (1 -> 1.0 for lr), so each p_<name> column has
    one type. The value as written, not as scaled for the embedded profile (p_epochs: 50)."""
    default = default_of(name)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@cache
def default_of(name: str) -> Any:
    path = registry.PARAMS[name].path
    return _get(_DEFAULTS, path) if path else None


def _get(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = node[part]
    return node


def blame(layers: Sequence[Layer], loc: Sequence[Any]) -> str:
    """The spec field that set the config field at `loc`: the last layer that touches it."""
    layer = next((x for x in reversed(layers) if touches(x.values, loc)), None)
    if layer is None:
        return f"trial config {format_loc(loc)}"
    return f"{layer.label}.{format_loc(loc)}" if layer.patch else layer.label


def check_layers(
    layers: Sequence[Layer], params: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Validate the merged layers as a TrialConfig; blame each problem on the layer that set it."""
    merged = merge_layers(layers)
    numbers = number_problems(TrialConfig, merged)
    problems = [(blame(layers, loc), message) for loc, message in numbers]
    bad = {tuple(loc) for loc, _ in numbers}
    try:
        config = TrialConfig.model_validate(merged).model_dump(mode="json")
    except ValidationError as err:
        note = ", ".join(f"{k}={v}" for k, v in params.items())
        for e in err.errors():
            loc = tuple(e["loc"])
            if loc in bad:
                continue  # already refused as a boolean or non-finite number
            message = describe(e, TrialConfig)
            if e["type"] == "value_error" and note:  # a rule across fields: which trial broke it
                message += f" (in the trial with {note})"
            problems.append((blame(layers, loc), message))
        return None, problems
    return (None, problems) if problems else (config, [])


# ---- one value, one section ---------------------------------------------------------------


@cache
def _field(path: str) -> FieldInfo:
    model: Any = TrialConfig
    *parents, last = path.split(".")
    for part in parents:
        model = model.model_fields[part].annotation
    return model.model_fields[last]


@cache
def _kinds(path: str) -> list[Any]:
    return candidates(_field(path).annotation)


def _annotation(path: str) -> Any:
    """The field's type with its constraints (`Annotated[float, Gt(0)]`)."""
    info = _field(path)
    if not info.metadata:
        return info.annotation
    return Annotated[(info.annotation, *info.metadata)]  # type: ignore[valid-type]


@cache
def _adapter(path: str) -> TypeAdapter[Any]:
    return TypeAdapter(_annotation(path))


def field_value(path: str, raw: Any) -> tuple[Any, str | None]:
    """`raw` checked against the TrialConfig field at `path`: (its JSON value, None) or
    (None, the problem), worded as a whole-config check would word it."""
    problem = leaf_problem(_kinds(path), raw)
    if problem is not None:
        return None, problem
    adapter = _adapter(path)
    try:
        value = adapter.validate_python(raw)
    except ValidationError as err:
        return None, "; ".join(describe(e, TrialConfig) for e in err.errors())
    return adapter.dump_python(value, mode="json"), None


def field_values(path: str, raws: Sequence[Any]) -> tuple[list[Any], dict[int, str]]:
    """`field_value` of many values at once (one pydantic call for all the good ones): their
    JSON values (None where bad) and the problem of each bad one by index."""
    kinds = _kinds(path)
    problems: dict[int, str] = {}
    for i, raw in enumerate(raws):
        problem = leaf_problem(kinds, raw)
        if problem is not None:
            problems[i] = problem
    good = [i for i in range(len(raws)) if i not in problems] if problems else range(len(raws))
    many = _list_adapter(path)
    try:
        values = many.dump_python(many.validate_python([raws[i] for i in good]), mode="json")
    except ValidationError:
        values = []
        for i in good:
            value, problem = field_value(path, raws[i])
            values.append(value)
            if problem is not None:
                problems[i] = problem
    out: list[Any] = [None] * len(raws)
    for i, value in zip(good, values, strict=True):
        out[i] = value
    return out, problems


@cache
def _list_adapter(path: str) -> TypeAdapter[Any]:
    return TypeAdapter(list[_annotation(path)])  # type: ignore[misc, arg-type]


def _key(raw: Any) -> Any:
    """A hashable key for a section's raw values (None when they hold a list or mapping)."""
    if not isinstance(raw, Mapping):
        return None
    try:
        key = tuple((k, type(v), v) for k, v in raw.items())
        hash(key)
    except TypeError:
        return None
    return key


class SectionCheck:
    """Validates configs section by section, each distinct section once.

    `section(name, raw)` is the JSON dump of that section (one dict per distinct section:
    read it, do not change it), or None when it fails; `config(raw)` the whole config (fresh
    dicts). `check_layers` says why a config fails, blamed on its layers.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, Any], dict[str, Any] | None] = {}

    def section(self, name: str, raw: Any) -> dict[str, Any] | None:
        key = _key(raw)
        if key is not None and (name, key) in self._seen:
            return self._seen[name, key]
        try:
            if name == "":  # the top-level fields, with any unknown top-level keys
                dumped = TrialConfig.model_validate(raw).model_dump(mode="json")
                out: dict[str, Any] | None = {k: dumped[k] for k in TOP_LEVEL}
            else:
                out = SECTIONS[name].model_validate(raw).model_dump(mode="json")
        except ValidationError:
            out = None
        if key is not None:
            self._seen[name, key] = out
        return out

    def config(self, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        top = self.section("", {k: v for k, v in raw.items() if k not in SECTIONS})
        if top is None:
            return None
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = self.section(name, raw.get(name, {}))
            if section is None:
                return None
            out[name] = dict(section)
        out.update(top)
        return out


# ---- the embedded profile's scaling -----------------------------------------------------------


def embedded_rule(emb: EmbeddedProfile, *, stage: str) -> dict[str, Any]:
    """What `scaling_changes` needs of the embedded profile, as JSON (an Optuna plan keeps it)."""
    return {
        "stage": stage,
        "epoch_scale": emb.epoch_scale,
        "max_batch_size": emb.max_batch_size,
        "max_warmup_fraction": emb.max_warmup_fraction,
        "n_clusters": emb.n_clusters,
        "poison_fraction": emb.poison_fraction,
        "pairs": emb.synthetic.n_train if stage == "pretrain" else emb.clean_pairs,
    }


# The config fields `scaling_changes` reads.
SCALING_INPUTS = (
    "optim.epochs",
    "optim.warmup_steps",
    "data.batch_size",
    "data.max_samples",
    "loss.cluster_weight",
    "loss.n_clusters",
    "poison.kind",
    "poison.amount",
)


def scaling_changes(
    config: Mapping[str, Any], rule: Mapping[str, Any]
) -> list[tuple[str, str, Any]]:
    """(spec field of the rule, dotted config field, value) that fit a validated config's
    paper numbers to the synthetic set (see EmbeddedProfile)."""
    optim, data, loss, poison = (config[k] for k in ("optim", "data", "loss", "poison"))
    out = []
    epochs = optim["epochs"]
    scaled = max(1, round(epochs * rule["epoch_scale"])) if epochs > 0 else epochs
    if scaled != epochs:
        out.append(("embedded.epoch_scale", "optim.epochs", scaled))
    batch = data["batch_size"]
    if batch > rule["max_batch_size"]:
        batch = rule["max_batch_size"]
        out.append(("embedded.max_batch_size", "data.batch_size", batch))
    pairs = min(rule["pairs"], data["max_samples"] or rule["pairs"])
    cap = int(rule["max_warmup_fraction"] * math.ceil(pairs / batch) * scaled)
    if optim["warmup_steps"] > cap:
        out.append(("embedded.max_warmup_fraction", "optim.warmup_steps", cap))
    if loss["cluster_weight"] > 0 and loss["n_clusters"] > rule["n_clusters"]:
        out.append(("embedded.n_clusters", "loss.n_clusters", rule["n_clusters"]))
    if rule["stage"] == "pretrain" and poison["kind"] != "none" and poison["amount"] >= 1:
        out.append(("embedded.poison_fraction", "poison.amount", rule["poison_fraction"]))
    return out


def apply_changes(config: dict[str, Any], changes: Sequence[tuple[str, str, Any]]) -> None:
    """Set each change's value in `config`, copying each section it changes first (planned
    configs share the sections they do not change)."""
    copied: set[str] = set()
    for _, path, value in changes:
        section, _, field = path.partition(".")
        if section not in copied:
            config[section] = dict(config[section])
            copied.add(section)
        config[section][field] = value
