"""Stage plans: a checked spec expanded into the trials the driver runs, stage by stage.

Every trial config is built from layers (profile, method, the stage's `trial` patch, grid
values, embedded-profile scaling) and validated as a `TrialConfig`; a failure is reported
against the layer that set the offending field, e.g. `clean.grid.lr[3]: must be > 0`.
`sweeper.planner` plans pre-training jobs, `sweeper.plan_grid` grids (each distinct value
and section validated once, so a grid of 200,000 values plans in seconds) and
`sweeper.plan_optuna` Optuna searches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from sweeper import registry
from sweeper.overrides import deep_merge, nested
from sweeper.plan_types import (
    START_CHECKPOINT,
    SYNTHETIC_CLASSNAMES,
    SYNTHETIC_CLEAN,
    SYNTHETIC_EVAL,
    SYNTHETIC_TRAIN,
    OptunaPlan,
    StagePlan,
    SweepPlan,
    TrialPlan,
    trial_id,
)
from sweeper.planner import Planner
from sweeper.spec import SweepSpec, read_spec_parts
from sweeper.spec_errors import spec_error
from sweeper.spec_rules import trial_cap
from sweeper.trial_configs import apply_changes, scaling_changes

__all__ = [
    "START_CHECKPOINT",
    "SYNTHETIC_CLASSNAMES",
    "SYNTHETIC_CLEAN",
    "SYNTHETIC_EVAL",
    "SYNTHETIC_TRAIN",
    "OptunaPlan",
    "StagePlan",
    "SweepPlan",
    "TrialPlan",
    "apply_params",
    "check_file",
    "load_spec",
    "plan_file",
    "plan_sweep",
    "spec_yaml",
    "trial_id",
]

# libyaml's emitter when PyYAML has it: the resolved spec of a large grid dumps in a blink.
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and fully check a search space: schema, cross-field rules and every trial config."""
    return check_file(path, overrides)[0]


def check_file(
    path: str | Path, overrides: Sequence[str] = ()
) -> tuple[SweepSpec, list[StagePlan]]:
    """Read and fully check a search space; its planned stages (what `validate` reports)."""
    spec, _, stages = _checked(path, overrides)
    return spec, stages


def plan_file(
    path: str | Path, overrides: Sequence[str] = (), loggers: Sequence[str] = ()
) -> tuple[SweepSpec, SweepPlan]:
    """Read, check and plan a search space at once (what `load_spec` + `plan_sweep` do, with
    one planning pass instead of two); a SpecError lists every problem. `loggers` are added
    to the file's `loggers:`."""
    spec, planner, stages = _checked(path, overrides, loggers)
    return spec, _sweep_plan(spec, planner, stages, path)


def _checked(
    path: str | Path, overrides: Sequence[str], loggers: Sequence[str] = ()
) -> tuple[SweepSpec, Planner, list[StagePlan]]:
    spec, problems = read_spec_parts(path, overrides, loggers)
    if any(field == "max_trials" for field, _ in problems):
        raise spec_error(str(path), problems)  # planning it would be the problem
    planner = Planner(spec, Path(path))
    try:
        stages = planner.stages()
    except (KeyError, IndexError, AssertionError, AttributeError, TypeError):
        if not problems:
            raise
        # A cross-field problem (say, an unknown start job) stops the planner; the problems
        # found so far are still reported with it.
        stages = []
    if problems or planner.problems:
        raise spec_error(str(path), [*problems, *planner.problems])
    return spec, planner, stages


def plan_sweep(spec: SweepSpec, *, spec_path: str | Path) -> SweepPlan:
    """Expand a spec into its stages; a SpecError lists every trial config that fails."""
    cap = trial_cap(spec)
    if cap:
        raise spec_error(str(spec_path), cap)
    planner = Planner(spec, Path(spec_path))
    stages = planner.stages()
    if planner.problems:
        raise spec_error(str(spec_path), planner.problems)
    return _sweep_plan(spec, planner, stages, spec_path)


def _sweep_plan(
    spec: SweepSpec, planner: Planner, stages: list[StagePlan], spec_path: str | Path
) -> SweepPlan:
    if spec.seed:
        stages = [_seeded(s, spec.seed) for s in stages]
    synthetic = spec.embedded.synthetic.synthetic_args() if planner.embedded else None
    salt = json.dumps(synthetic, sort_keys=True) if synthetic else ""
    keys = {
        # A data-parallel job trains with a global batch of workers x batch_size: another
        # model than one process's. One process keeps the key it had before the option.
        t.trial_id.removeprefix("pretrain-"): _sha256(
            json.dumps(t.config, sort_keys=True) + salt + _workers_salt(s.workers)
        )
        for s in stages
        if s.name == "pretrain"
        for t in s.trials
    }
    return SweepPlan(
        name=spec.name,
        paper=spec.paper,
        profile=spec.profile,
        spec_text=spec_yaml(spec, spec_path),
        stages=tuple(stages),
        synthetic=synthetic,
        pretrain_cache_keys=keys,
        description=spec.description,
        report=spec.report,
        rescaled=planner.rescales.as_dict(),
        success_asr=spec.success_asr,
        loggers=tuple(spec.loggers),
    )


def _seeded(stage: StagePlan, seed: int) -> StagePlan:
    """The stage of the study's repeat `seed`: every trial's seed (and the search's) + seed.

    The pre-training configs change with it, and so their cache keys: each repeat pre-trains
    its own start models. The trial ids stay: repeats are told apart by their sweep."""

    def shift(config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "seed": int(config.get("seed", 0)) + seed}

    trials = tuple(replace(t, config=shift(t.config)) for t in stage.trials)
    search = stage.search
    if search is not None:
        search = replace(search, seed=search.seed + seed, config=shift(search.config))
    return replace(stage, trials=trials, search=search)


def apply_params(
    config: Mapping[str, Any],
    params: Mapping[str, Any],
    scaling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of `config` with swept values (short names with a config path) set.

    With an Optuna plan's `scaling` (`OptunaPlan.scaling`), the embedded profile's scaling is
    applied to the result as the planner applies it to grid values: a sampled `epochs: 8`
    runs as 2 under epoch_scale 0.25, as `clean.grid.epochs: [8]` would.
    """
    out = dict(config)
    if scaling:
        out = deep_merge(out, scaling["written"])  # the template's scaled fields as written
    for name, value in params.items():
        path = registry.PARAMS[name].path
        if path is None:
            raise KeyError(f"{name} is expanded by the planner, not set by path")
        out = deep_merge(out, nested(path, value))
    if scaling:
        apply_changes(out, scaling_changes(out, scaling["rule"]))
    return out


def spec_yaml(spec: SweepSpec, spec_path: str | Path) -> str:
    """The resolved spec as YAML: reloading it plans the same trials."""
    body = yaml.dump(
        spec.model_dump(mode="json"),
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        default_flow_style=None,
    )
    return f"# resolved from {spec_path}\n{body}"


def _workers_salt(workers: int) -> str:
    return f"|workers={workers}" if workers > 1 else ""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
