"""Trial configs from layers: validated as a `TrialConfig` with each problem blamed on the
layer that set the field, swept values in their field's type, and the embedded profile's
scaling of the paper's numbers to the synthetic set."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from sweeper import registry
from sweeper.overrides import Layer, merge_layers, touches
from sweeper.spec import EmbeddedProfile
from sweeper.spec_errors import Problem, describe, format_loc
from trainers.config import TrialConfig


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


def default_of(name: str) -> Any:
    path = registry.PARAMS[name].path
    return _get(_DEFAULTS.model_dump(), path) if path else None


def _get(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = node[part]
    return node


def check_layers(
    layers: Sequence[Layer], params: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Validate the merged layers as a TrialConfig; blame each problem on the layer that set it."""
    try:
        return TrialConfig.model_validate(merge_layers(layers)).model_dump(mode="json"), []
    except ValidationError as err:
        note = ", ".join(f"{k}={v}" for k, v in params.items())
        problems = []
        for e in err.errors():
            loc = tuple(e["loc"])
            layer = next((x for x in reversed(layers) if touches(x.values, loc)), None)
            if layer is None:
                field = f"trial config {format_loc(loc)}"
            else:
                field = f"{layer.label}.{format_loc(loc)}" if layer.patch else layer.label
            message = describe(e, TrialConfig)
            if e["type"] == "value_error" and note:  # a rule across fields: which trial broke it
                message += f" (in the trial with {note})"
            problems.append((field, message))
        return None, problems


_DEFAULTS = TrialConfig.model_validate({})


def embedded_scaling(layers: Sequence[Layer], emb: EmbeddedProfile, *, stage: str) -> list[Layer]:
    """Layers that fit the paper's numbers to the synthetic set (see EmbeddedProfile)."""
    merged = merge_layers(layers)
    optim, data, loss = (merged.get(k, {}) for k in ("optim", "data", "loss"))
    n_pairs = emb.synthetic.n_train if stage == "pretrain" else emb.clean_pairs
    out = []
    try:
        epochs = int(optim.get("epochs", _DEFAULTS.optim.epochs))
        scaled = max(1, round(epochs * emb.epoch_scale)) if epochs > 0 else epochs
        if scaled != epochs:
            out.append(Layer("embedded.epoch_scale", {"optim": {"epochs": scaled}}))
        batch = int(data.get("batch_size", _DEFAULTS.data.batch_size))
        if batch > emb.max_batch_size:
            batch = emb.max_batch_size
            out.append(Layer("embedded.max_batch_size", {"data": {"batch_size": batch}}))
        pairs = min(n_pairs, int(data.get("max_samples") or n_pairs))
        cap = int(emb.max_warmup_fraction * math.ceil(pairs / batch) * scaled)
        if int(optim.get("warmup_steps", _DEFAULTS.optim.warmup_steps)) > cap:
            out.append(Layer("embedded.max_warmup_fraction", {"optim": {"warmup_steps": cap}}))
        clusters = int(loss.get("n_clusters", _DEFAULTS.loss.n_clusters))
        if float(loss.get("cluster_weight", 0)) > 0 and clusters > emb.n_clusters:
            out.append(Layer("embedded.n_clusters", {"loss": {"n_clusters": emb.n_clusters}}))
    except (TypeError, ValueError, AttributeError, ZeroDivisionError):
        pass  # a malformed value: the TrialConfig check reports it against its own field
    poison = merged.get("poison", {})
    if stage == "pretrain" and isinstance(poison, Mapping) and poison.get("kind", "none") != "none":
        amount = poison.get("amount", 0)
        if isinstance(amount, (int, float)) and amount >= 1:
            out.append(
                Layer("embedded.poison_fraction", {"poison": {"amount": emb.poison_fraction}})
            )
    return out
