"""Stage plans: a checked spec expanded into the trials the driver runs, stage by stage.

Every trial config is built from layers (profile, method, the stage's `trial` patch, grid
values, embedded-profile scaling) and validated as a `TrialConfig`; a failure is reported
against the layer that set the offending field, e.g. `clean.grid.lr[3]: must be > 0`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sweeper import registry
from sweeper.overrides import Layer, deep_merge, merge_layers, nested
from sweeper.spec import SweepSpec, read_spec_parts
from sweeper.spec_errors import Problem, spec_error
from sweeper.spec_rules import start_names
from sweeper.trial_configs import default_of, embedded_scaling, normalised, validated

# Placeholders the driver replaces by the paths of the synthetic set it generates.
SYNTHETIC_TRAIN = "@synthetic/train"
SYNTHETIC_CLEAN = "@synthetic/clean"
SYNTHETIC_EVAL = "@synthetic/eval"
SYNTHETIC_CLASSNAMES = "@synthetic/classnames"
# In loss.teacher_checkpoint: the trial's own start checkpoint (embedded deep clustering).
START_CHECKPOINT = "@start"


@dataclass(frozen=True)
class TrialPlan:
    trial_id: str
    stage: str  # pretrain | screen | clean
    entry: str  # trainers entry point: pretrain | screen | clean
    method: str  # cleaning method, or the objective of a pretrain trial
    objective: str | None  # pre-training objective of the start model (or of this pretrain)
    params: dict[str, Any]  # swept values by short name (the p_<name> columns)
    config: dict[str, Any]  # a full TrialConfig; model.checkpoint filled by the driver from `start`
    start: str | None  # pretrain job whose selected checkpoint this trial starts from


@dataclass(frozen=True)
class OptunaPlan:
    """A multi-objective Optuna search that replaces a grid (the base fields of its trials)."""

    n_trials: int
    # short name -> {"type": "float"|"int", "low", "high", "log"} or {"type": "categorical", "choices"}
    params: dict[str, dict[str, Any]]
    seed: int
    entry: str
    method: str
    objective: str | None
    start: str | None
    config: dict[str, Any]  # template: apply_params(config, sampled) is a trial's config
    paths: dict[str, str]  # short name -> dotted TrialConfig field
    metrics: dict[str, str]  # {"clean_acc": "max", "asr": "min"}, each over every epoch
    max_concurrent: int | None = None


@dataclass(frozen=True)
class StagePlan:
    name: str
    trials: tuple[TrialPlan, ...]  # empty for an Optuna stage (see `search`)
    resources: dict[str, float]
    select: dict[str, Any] | None
    search: OptunaPlan | None
    max_failures: int

    @property
    def n_trials(self) -> int:
        return self.search.n_trials if self.search is not None else len(self.trials)


@dataclass(frozen=True)
class SweepPlan:
    name: str
    paper: str | None
    profile: str
    spec_text: str
    stages: tuple[StagePlan, ...]
    synthetic: dict[str, Any] | None
    pretrain_cache_keys: dict[str, str]
    description: str = ""
    report: bool = False


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and fully check a search space: schema, cross-field rules and every trial config."""
    spec, problems = read_spec_parts(path, overrides)
    planner = _Planner(spec, Path(path))
    try:
        planner.stages()
    except (KeyError, IndexError, AssertionError, AttributeError, TypeError):
        if not problems:
            raise
        # A cross-field problem (say, an unknown start job) stops the planner; the problems
        # found so far are still reported with it.
    if problems or planner.problems:
        raise spec_error(str(path), [*problems, *planner.problems])
    return spec


def plan_sweep(spec: SweepSpec, *, spec_path: str | Path) -> SweepPlan:
    """Expand a spec into its stages; a SpecError lists every trial config that fails."""
    planner = _Planner(spec, Path(spec_path))
    stages = planner.stages()
    if planner.problems:
        raise spec_error(str(spec_path), planner.problems)
    synthetic = spec.embedded.synthetic.model_dump() if planner.embedded else None
    salt = json.dumps(synthetic, sort_keys=True) if synthetic else ""
    keys = {
        t.trial_id.removeprefix("pretrain-"): _sha256(json.dumps(t.config, sort_keys=True) + salt)
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
    )


def apply_params(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` with swept values (short names with a config path) set."""
    out = dict(config)
    for name, value in params.items():
        path = registry.PARAMS[name].path
        if path is None:
            raise KeyError(f"{name} is expanded by the planner, not set by path")
        out = deep_merge(out, nested(path, value))
    return out


def spec_yaml(spec: SweepSpec, spec_path: str | Path) -> str:
    """The resolved spec as YAML: reloading it plans the same trials."""
    body = yaml.safe_dump(
        spec.model_dump(mode="json"), sort_keys=False, width=100, default_flow_style=None
    )
    return f"# resolved from {spec_path}\n{body}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _Planner:
    def __init__(self, spec: SweepSpec, spec_path: Path) -> None:
        self.spec = spec
        self.path = spec_path
        self.embedded = spec.profile == "embedded"
        self.problems: list[Problem | str] = []
        self.job_configs: dict[str, dict[str, Any]] = {}

    def stages(self) -> list[StagePlan]:
        spec = self.spec
        out = []
        if spec.pretrain is not None:
            out.append(
                self._stage(
                    "pretrain",
                    self._pretrain_trials(),
                    spec.pretrain.resources,
                    self._pretrain_select(),
                )
            )
        if spec.screen is not None:
            select = {"rule": "max_acc_below_asr", "max_asr": spec.screen.pick.max_asr}
            out.append(
                self._stage("screen", self._grid_trials("screen"), spec.screen.resources, select)
            )
        if spec.clean is not None:
            if spec.clean.search is None:
                out.append(
                    self._stage("clean", self._grid_trials("clean"), spec.clean.resources, None)
                )
            else:
                out.append(self._stage("clean", [], spec.clean.resources, None, self._optuna()))
        ids = Counter(t.trial_id for s in out for t in s.trials)
        self.problems += [
            ("(trial ids)", f"{i!r} is planned {n} times") for i, n in ids.items() if n > 1
        ]
        return out

    def _stage(
        self,
        name: str,
        trials: list[TrialPlan],
        resources: Any,
        select: dict[str, Any] | None,
        search: OptunaPlan | None = None,
    ) -> StagePlan:
        res = self.spec.embedded.resources if self.embedded else resources
        return StagePlan(
            name, tuple(trials), res.model_dump(), select, search, self.spec.max_failures
        )

    # ---- layers shared by the stages ---------------------------------------------------

    def _profile(self, stage: str) -> Layer:
        spec = self.spec
        if self.embedded:
            data: dict[str, Any] = {
                "train": SYNTHETIC_TRAIN if stage == "pretrain" else SYNTHETIC_CLEAN,
                "eval": SYNTHETIC_EVAL,
                "classnames": SYNTHETIC_CLASSNAMES,
            }
            if stage != "pretrain":
                data["max_samples"] = spec.embedded.clean_pairs
            model = spec.embedded.model
            poison = {"patch_size": spec.embedded.patch_size}
        else:
            train = spec.real.pretrain_data if stage == "pretrain" else spec.real.clean_data
            data = {"train": train, "eval": spec.real.eval_data, "classnames": spec.real.classnames}
            model = spec.real.model
            poison = {}
        # Every epoch is a candidate model; the embedded profile keeps only the last cleaning
        # checkpoint to keep disk small. A screen keeps its perturbed model for the pick.
        keep_all = stage == "pretrain" or (stage == "clean" and not self.embedded)
        save = "every" if keep_all else "last"
        return Layer(
            spec.profile,
            {"data": data, "model": {"name": model}, "poison": poison, "save": save},
        )

    def _profile_patch(self) -> Layer:
        if self.embedded:
            return Layer("embedded.trial", self.spec.embedded.trial, patch=True)
        return Layer("real.trial", self.spec.real.trial, patch=True)

    def _scaled(self, layers: list[Layer], stage: str) -> list[Layer]:
        if not self.embedded:
            return layers
        return layers + embedded_scaling(layers, self.spec.embedded, stage=stage)

    # ---- pretrain -----------------------------------------------------------------------

    def _needed_jobs(self) -> list[str]:
        assert self.spec.pretrain is not None
        jobs = self.spec.pretrain.jobs
        if self.spec.clean is None:
            return list(jobs)
        used = {n for n in start_names(self.spec) if n is not None}
        refs = {self._reference(n) for n in used} - {None}
        return [n for n in jobs if n in used or n in refs]

    def _reference(self, name: str) -> str | None:
        """The MMCL job an MMCL+SSL job's selection matches (PAPER_NOTES: model selection)."""
        assert self.spec.pretrain is not None
        job = self.spec.pretrain.jobs[name]
        if job.objective != "mmcl_ssl":
            return None
        mmcl = [n for n, j in self.spec.pretrain.jobs.items() if j.objective == "mmcl"]
        return job.match or (mmcl[0] if len(mmcl) == 1 else None)

    def _pretrain_select(self) -> dict[str, Any]:
        assert self.spec.pretrain is not None
        rules: dict[str, Any] = {}
        for name in self._needed_jobs():
            ref = self._reference(name)
            rule = {"rule": "closest_acc", "reference": ref} if ref else {"rule": "max_acc"}
            rules[name] = {"objective": self.spec.pretrain.jobs[name].objective, **rule}
        return {"rule": "paper", "jobs": rules}

    def _pretrain_trials(self) -> list[TrialPlan]:
        spec = self.spec
        assert spec.pretrain is not None
        trials = []
        for name in self._needed_jobs():
            job = spec.pretrain.jobs[name]
            at = f"pretrain.jobs.{name}"
            layers = [
                self._profile("pretrain"),
                Layer(f"{at}.objective", {"loss": dict(registry.OBJECTIVES[job.objective])}),
                Layer("pretrain.trial", spec.pretrain.trial, patch=True),
                Layer(f"{at}.trial", job.trial, patch=True),
            ]
            if job.from_checkpoint is not None:
                layers.append(self._from_checkpoint(at, job.from_checkpoint))
            layers = self._scaled([*layers, self._profile_patch()], "pretrain")
            config, _ = self._check(layers, {})
            if config is None:
                continue
            self.job_configs[name] = config
            trials.append(
                TrialPlan(
                    f"pretrain-{name}",
                    "pretrain",
                    "pretrain",
                    job.objective,
                    job.objective,
                    {},
                    config,
                    None,
                )
            )
        return trials

    def _from_checkpoint(self, at: str, ref: str) -> Layer:
        if self.embedded:
            return Layer("embedded.scratch_lr", {"optim": {"lr": self.spec.embedded.scratch_lr}})
        path = self.spec.real.checkpoints.get(ref) or str((self.path.parent / ref).resolve())
        return Layer(f"{at}.from_checkpoint", {"model": {"checkpoint": path}})

    # ---- screen and clean grids -----------------------------------------------------------

    def _grid_trials(self, stage: str) -> list[TrialPlan]:
        section = self.spec.screen if stage == "screen" else self.spec.clean
        assert section is not None and section.grid is not None
        repeats = getattr(section, "repeats", 1)
        trials = []
        for start in start_names(self.spec):
            seen: Counter[str] = Counter()
            for point in itertools.product(*(list(enumerate(v)) for v in section.grid.values())):
                named = [(name, i, v) for name, (i, v) in zip(section.grid, point, strict=True)]
                for _ in range(repeats):
                    key = repr([(n, normalised(n, v)) for n, _, v in named])
                    occurrence = seen[key]
                    seen[key] += 1
                    trial = self._grid_trial(stage, start, named, occurrence)
                    if trial is not None:
                        trials.append(trial)
        return trials

    def _grid_trial(
        self, stage: str, start: str | None, named: list[tuple[str, int, Any]], occurrence: int
    ) -> TrialPlan | None:
        method = self._method(stage, named)
        param_layers = self._param_layers(stage, start, named)
        if method is None or param_layers is None:
            return None
        layers = [*self._start_layers(stage, start, method, named), *param_layers]
        layers = self._teacher(stage, layers)
        if stage == "clean":
            layers = self._scaled(layers, "clean")
        if occurrence:
            # Repeated values run as repeated trials, each with its own seed.
            base = merge_layers(layers)
            layers.append(
                Layer(
                    f"{stage}.grid (occurrence {occurrence})",
                    {"seed": int(base.get("seed", 0)) + occurrence},
                )
            )
        config, params = self._check(layers, {n: v for n, _, v in named})
        if config is None:
            return None
        tid = trial_id(stage, start, params, occurrence)
        objective = self._objective(start)
        return TrialPlan(tid, stage, stage, method, objective, params, config, start)

    def _method(self, stage: str, named: list[tuple[str, int, Any]]) -> str | None:
        if stage == "screen":
            return "shrink_perturb"
        assert self.spec.clean is not None
        for name, i, value in named:
            if name == "method" and value not in registry.METHODS:
                self.problems.append(
                    (
                        f"clean.grid.method[{i}]",
                        f"unknown method {value!r} (known: {', '.join(registry.METHODS)})",
                    )
                )
                return None
            if name == "method":
                return str(value)
        return self.spec.clean.method_name

    def _start_layers(
        self, stage: str, start: str | None, method: str, named: list[tuple[str, int, Any]]
    ) -> list[Layer]:
        spec = self.spec
        layers = [self._profile(stage)]
        if start is None and spec.start is not None:
            layers.append(
                Layer("start.checkpoint", {"model": {"checkpoint": spec.start.checkpoint}})
            )
        if stage == "screen":
            assert spec.screen is not None
            # The screen only evaluates the perturbed start model.
            layers.append(Layer("screen", {"optim": {"epochs": 0}}))
            return [
                *layers,
                Layer("screen.trial", spec.screen.trial, patch=True),
                self._profile_patch(),
            ]
        assert spec.clean is not None
        where = next(
            (f"clean.grid.method[{i}]" for n, i, _ in named if n == "method"), "clean.method"
        )
        layers.append(Layer(where, {"loss": dict(registry.METHODS[method].loss)}))
        return [*layers, Layer("clean.trial", spec.clean.trial, patch=True), self._profile_patch()]

    def _param_layers(
        self, stage: str, start: str | None, named: list[tuple[str, int, Any]]
    ) -> list[Layer] | None:
        layers = []
        ok = True
        for name, i, value in named:
            at = f"{stage}.grid.{name}[{i}]"
            if not isinstance(value, (str, int, float, bool)):
                self.problems.append(
                    (at, f"must be a number or a string (got {type(value).__name__})")
                )
                ok = False
                continue
            param = registry.PARAMS[name]
            if param.choices and value not in param.choices:
                self.problems.append(
                    (at, f"must be one of {', '.join(map(str, param.choices))} (got {value!r})")
                )
                ok = False
            elif name == "base_loss":
                layers.append(Layer(at, {"loss": dict(registry.BASE_LOSSES[str(value)])}))
            elif name == "clean_poisons":
                layer = self._clean_poisons(at, start, value)
                ok = ok and layer is not None
                layers += [layer] if layer is not None else []
            elif param.path is not None:
                layers.append(Layer(at, nested(param.path, value)))
        return layers if ok else None

    def _clean_poisons(self, at: str, start: str | None, count: Any) -> Layer | None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.problems.append(
                (at, f"must be a whole number of poisoned pairs >= 0 (got {count!r})")
            )
            return None
        if start is None:
            assert self.spec.start is not None
            poison: dict[str, Any] = {"kind": self.spec.start.trigger}
        elif start not in self.job_configs:
            return None  # the pre-training config itself failed: reported already
        else:
            job = self.job_configs[start].get("poison", {})
            poison = {k: job.get(k) for k in ("kind", "target", "patch_size", "blend_alpha")}
            if poison["kind"] in (None, "none"):
                self.problems.append(
                    (at, f"start model {start!r} was pre-trained without a trigger")
                )
                return None
        if count == 0:
            poison = {"kind": "none"}
        return Layer(at, {"poison": {**poison, "amount": count}})

    def _teacher(self, stage: str, layers: list[Layer]) -> list[Layer]:
        loss = merge_layers(layers).get("loss", {})
        if stage != "clean" or loss.get("cluster_source") != "teacher":
            return layers
        prof = self.spec.embedded if self.embedded else self.spec.real
        fill = {"teacher_model": prof.teacher_model, "teacher_checkpoint": prof.teacher_checkpoint}
        fill = {k: v for k, v in fill.items() if not loss.get(k)}
        return [*layers, Layer(f"{self.spec.profile}.teacher_checkpoint", {"loss": fill})]

    def _objective(self, start: str | None) -> str | None:
        if start is None:
            return self.spec.start.objective if self.spec.start else None
        assert self.spec.pretrain is not None
        return self.spec.pretrain.jobs[start].objective

    def _check(
        self, layers: list[Layer], params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        config, problems, normalised = validated(layers, params)
        source = self.spec.pretrain.source if self.spec.pretrain else None
        for field, message in problems:
            if source and field.startswith("pretrain."):
                # Set in the pretrain file this spec names: the message points there.
                self.problems.append(f"{self.path.parent / source}: {field}: {message}")
            else:
                self.problems.append((field, message))
        return config, normalised

    # ---- Optuna ---------------------------------------------------------------------------

    def _optuna(self) -> OptunaPlan | None:
        clean = self.spec.clean
        assert clean is not None and clean.search is not None
        opt = clean.search.optuna
        start = start_names(self.spec)[0]
        base_layers = self._scaled(
            [*self._start_layers("clean", start, clean.method_name, [])], "clean"
        )
        params: dict[str, dict[str, Any]] = {}
        for name, p in opt.params.items():
            at = f"clean.search.optuna.params.{name}"
            values = (
                [(f"{at}.choices[{i}]", v) for i, v in enumerate(p.choices)]
                if p.choices is not None
                else [(f"{at}.low", p.low), (f"{at}.high", p.high)]
            )
            for where, value in values:
                path = registry.PARAMS[name].path
                assert path is not None
                self._check([*base_layers, Layer(where, nested(path, value))], {name: value})
            if p.choices is not None:
                params[name] = {"type": "categorical", "choices": list(p.choices)}
            else:
                default = default_of(name)
                whole = isinstance(default, int) and not isinstance(default, bool)
                assert p.low is not None and p.high is not None  # OptunaParam checked it
                low, high = (int(v) if whole else v for v in (p.low, p.high))
                params[name] = {
                    "type": "int" if whole else "float",
                    "low": low,
                    "high": high,
                    "log": p.log,
                }
        config, _ = self._check(self._teacher("clean", base_layers), {})
        if config is None:
            return None
        paths = {n: str(registry.PARAMS[n].path) for n in params}
        return OptunaPlan(
            n_trials=opt.n_trials,
            params=params,
            seed=opt.seed,
            entry="clean",
            method=clean.method_name,
            objective=self._objective(start),
            start=start,
            config=config,
            paths=paths,
            metrics={"clean_acc": "max", "asr": "min"},
            max_concurrent=opt.max_concurrent,
        )


def trial_id(stage: str, start: str | None, params: Mapping[str, Any], occurrence: int) -> str:
    """Readable and stable: the same spec planned again gives the same ids (resume)."""
    parts = [
        stage,
        start or "ckpt",
        *(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()),
    ]
    return re.sub(r"[^A-Za-z0-9._=-]", "_", "-".join([*parts, f"r{occurrence}"]))
