"""An Optuna search in place of a clean grid: the template config of its trials, the space it
samples, and the embedded scaling that sampled values get in the worker (`apply_params`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeper import registry
from sweeper.overrides import Layer, merge_layers, nested
from sweeper.plan_types import OptunaPlan
from sweeper.spec_rules import start_names
from sweeper.trial_configs import (
    SectionCheck,
    apply_changes,
    default_of,
    embedded_rule,
    field_value,
    scaling_changes,
)

if TYPE_CHECKING:
    from sweeper.planner import Planner
    from sweeper.spec import OptunaParam

# The config fields the embedded scaling may change: a sampled trial starts from them as
# written, so that scaling a sampled value never scales a template value twice.
SCALED_FIELDS = ("optim.epochs", "optim.warmup_steps", "data.batch_size", "loss.n_clusters")
_MAX_SLOW_CHECKS = 20


def plan_optuna(planner: Planner) -> OptunaPlan | None:
    """The clean stage's Optuna search; every problem reported to the planner."""
    clean = planner.spec.clean
    assert clean is not None and clean.search is not None
    opt = clean.search.optuna
    start = start_names(planner.spec)[0]
    layers = planner.start_layers("clean", start, clean.method_name, "clean.method")
    fill = planner.teacher_fill("clean", merge_layers(layers).get("loss", {}))
    if fill is not None:
        layers.append(planner.teacher_layer(fill))
    config, _ = planner.check(layers, {})
    space = {name: _domain(name, p) for name, p in opt.params.items()}
    _check_values(planner, layers, config, opt.params)
    if config is None:
        return None
    scaling = None
    if planner.embedded:
        written = {path: _get(config, path) for path in SCALED_FIELDS}
        scaling = {
            "rule": embedded_rule(planner.spec.embedded, stage="clean"),
            "written": _nest(written),
        }
        _record_sampled(planner, config, scaling, opt.params)
        planner.scale(config, layers, "clean", {})
    planner.check_target("clean", start, config, layers)
    return OptunaPlan(
        n_trials=opt.n_trials,
        params=space,
        seed=opt.seed,
        entry="clean",
        method=clean.method_name,
        objective=planner.objective(start),
        start=start,
        config=config,
        paths={n: str(registry.PARAMS[n].path) for n in space},
        metrics={"clean_acc": "max", "asr": "min"},
        max_concurrent=opt.max_concurrent,
        scaling=scaling,
    )


def _domain(name: str, p: OptunaParam) -> dict[str, Any]:
    if p.choices is not None:
        return {"type": "categorical", "choices": list(p.choices)}
    default = default_of(name)
    whole = isinstance(default, int) and not isinstance(default, bool)
    assert p.low is not None and p.high is not None  # OptunaParam checked it
    low, high = (int(v) if whole else v for v in (p.low, p.high))
    return {"type": "int" if whole else "float", "low": low, "high": high, "log": p.log}


def _values(name: str, p: OptunaParam) -> list[tuple[str, Any]]:
    at = f"clean.search.optuna.params.{name}"
    if p.choices is not None:
        return [(f"{at}.choices[{i}]", v) for i, v in enumerate(p.choices)]
    return [(f"{at}.low", p.low), (f"{at}.high", p.high)]


def _check_values(
    planner: Planner,
    layers: list[Layer],
    config: dict[str, Any] | None,
    params: dict[str, OptunaParam],
) -> None:
    """Each bound or choice once against its field, then against its section's rules
    (a choice of ssl_weight 0 may leave every loss weight 0)."""
    check = SectionCheck()
    slow = 0
    for name, p in params.items():
        path = registry.PARAMS[name].path
        assert path is not None  # spec_rules refuses an Optuna search of a planner parameter
        section, _, field = path.partition(".")
        for where, raw in _values(name, p):
            value, problem = field_value(path, raw)
            if problem is not None:
                planner.report(where, problem)
                continue
            if config is None:
                continue  # the template's own problems are reported
            ok = (
                check.section(section, {**config[section], field: value})
                if field
                else check.section("", {**_top(config), section: value})
            )
            if ok is None and slow < _MAX_SLOW_CHECKS:
                slow += 1
                planner.check([*layers, Layer(where, nested(path, raw))], {name: raw})


def _record_sampled(
    planner: Planner,
    config: dict[str, Any],
    scaling: dict[str, Any],
    params: dict[str, OptunaParam],
) -> None:
    """A bound or choice of a scaled field runs as its scaled value: say so in `launch`."""
    for name, p in params.items():
        path = registry.PARAMS[name].path
        if path not in SCALED_FIELDS:
            continue
        for where, raw in _values(name, p):
            value, problem = field_value(path, raw)
            if problem is not None:
                continue
            trial = _with(config, scaling["written"])
            section, _, field = path.partition(".")
            trial[section][field] = value
            changes = scaling_changes(trial, scaling["rule"])
            apply_changes(trial, changes)
            label = next((c[0] for c in changes if c[1] == path), None)
            if label is not None:
                planner.rescales.add(where, value, trial[section][field], label)


def _with(config: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, fields in written.items():
        out[section].update(fields)
    return out


def _get(config: dict[str, Any], path: str) -> Any:
    section, _, field = path.partition(".")
    return config[section][field]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for path, value in flat.items():
        section, _, field = path.partition(".")
        out.setdefault(section, {})[field] = value
    return out


def _top(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not isinstance(v, dict)}
