"""The planner: the layers a stage's trial configs are merged from, their checks, and the
pre-training jobs (grids are expanded by `sweeper.plan_grid`, Optuna searches by
`sweeper.plan_optuna`). Every problem is collected in `problems`, none raised."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sweeper import registry
from sweeper.eval_classes import target_problem
from sweeper.overrides import Layer, merge_layers, touches
from sweeper.plan_types import (
    SYNTHETIC_CLASSNAMES,
    SYNTHETIC_CLEAN,
    SYNTHETIC_EVAL,
    SYNTHETIC_TRAIN,
    OptunaPlan,
    StagePlan,
    TrialPlan,
)
from sweeper.rescaled import Rescales
from sweeper.retention import default_keep, save_mode
from sweeper.spec import SweepSpec
from sweeper.spec_distributed import workers_of
from sweeper.spec_errors import Problem
from sweeper.spec_rules import start_names
from sweeper.trial_configs import (
    apply_changes,
    blame,
    embedded_rule,
    field_value,
    scaling_changes,
    validated,
)


def stage_keep(spec: SweepSpec, stage: str) -> str:
    """The stage's retention policy: its `keep:` or the stage's default."""
    section = getattr(spec, stage, None)
    return getattr(section, "keep", None) or default_keep(stage)


class Planner:
    """Plans the stages of one checked spec."""

    def __init__(self, spec: SweepSpec, spec_path: Path) -> None:
        self.spec = spec
        self.path = spec_path
        self.embedded = spec.profile == "embedded"
        self.problems: list[Problem | str] = []
        self.job_configs: dict[str, dict[str, Any]] = {}
        # The label each pretrain job's checkpoint records as its target, and where it is set.
        self.job_targets: dict[str, tuple[str, str]] = {}
        self.rescales = Rescales(spec.embedded)
        self._targets_checked: set[tuple[Any, ...]] = set()
        self.rules = {
            stage: embedded_rule(spec.embedded, stage=stage) for stage in ("pretrain", "clean")
        }

    def stages(self) -> list[StagePlan]:
        from sweeper.plan_grid import grid_trials  # they import this module's types
        from sweeper.plan_optuna import plan_optuna

        spec = self.spec
        out = []
        if spec.pretrain is not None:
            trials = self._pretrain_trials()
            out.append(self._stage("pretrain", trials, spec.pretrain.resources, self._select()))
        if spec.screen is not None:
            select = {"rule": "max_acc_below_asr", "max_asr": spec.screen.pick.max_asr}
            trials = grid_trials(self, "screen")
            out.append(self._stage("screen", trials, spec.screen.resources, select))
        if spec.clean is not None:
            if spec.clean.search is None:
                trials = grid_trials(self, "clean")
                out.append(self._stage("clean", trials, spec.clean.resources, None))
            else:
                search = plan_optuna(self)
                out.append(self._stage("clean", [], spec.clean.resources, None, search))
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
        res = resources
        if self.embedded:
            res = self.spec.embedded.resources
            for key, value in resources.model_dump().items():
                if value != getattr(res, key):
                    rule = f"embedded.resources.{key}"
                    self.rescales.add(f"{name}.resources.{key}", value, getattr(res, key), rule)
        baselines: tuple[str, ...] = ()
        if name == "clean" and self.spec.clean is not None:
            baselines = tuple(self.spec.clean.baselines)
        per_trial = None
        if name == "screen" and self.spec.screen is not None:
            chosen = self.spec.screen.points_per_trial
            per_trial = None if chosen == "auto" else int(chosen)
        section = {
            "pretrain": self.spec.pretrain,
            "screen": self.spec.screen,
            "clean": self.spec.clean,
        }.get(name)
        sched = getattr(section, "scheduler", None)
        return StagePlan(
            name,
            tuple(trials),
            res.model_dump(),
            select,
            search,
            self.spec.max_failures,
            baselines,
            per_trial,
            scheduler=sched.model_dump(exclude_none=True) if sched is not None else None,
            keep=stage_keep(self.spec, name),
            workers=workers_of(section),
        )

    def report(self, field: str, message: str) -> None:
        """One problem; a field of the pretrain file this spec names points into that file."""
        source = self.spec.pretrain.source if self.spec.pretrain else None
        if source and field.startswith("pretrain."):
            self.problems.append(f"{self.path.parent / source}: {field}: {message}")
        else:
            self.problems.append((field, message))

    # ---- layers shared by the stages ---------------------------------------------------

    def profile(self, stage: str) -> Layer:
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
        save = save_mode(stage, stage_keep(self.spec, stage))
        return Layer(
            spec.profile,
            {"data": data, "model": {"name": model}, "poison": poison, "save": save},
        )

    def profile_patch(self) -> Layer:
        if self.embedded:
            return Layer("embedded.trial", self.spec.embedded.trial, patch=True)
        return Layer("real.trial", self.spec.real.trial, patch=True)

    def start_layers(self, stage: str, start: str | None, method: str, where: str) -> list[Layer]:
        """The layers every trial of a screen/clean stage from `start` with `method` shares;
        `where` is the spec field that chose the method (clean.method or a grid value)."""
        spec = self.spec
        layers = [self.profile(stage)]
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
                self.profile_patch(),
            ]
        assert spec.clean is not None
        layers.append(Layer(where, {"loss": dict(registry.METHODS[method].loss)}))
        return [*layers, Layer("clean.trial", spec.clean.trial, patch=True), self.profile_patch()]

    def teacher_fill(self, stage: str, loss: Any) -> dict[str, Any] | None:
        """The teacher fields a deep-clustering trial with a teacher gets from its profile."""
        if stage != "clean" or not isinstance(loss, Mapping):
            return None
        if loss.get("cluster_source") != "teacher":
            return None
        prof = self.spec.embedded if self.embedded else self.spec.real
        fill = {"teacher_model": prof.teacher_model, "teacher_checkpoint": prof.teacher_checkpoint}
        return {k: v for k, v in fill.items() if not loss.get(k)}

    def teacher_layer(self, fill: dict[str, Any]) -> Layer:
        return Layer(f"{self.spec.profile}.teacher_checkpoint", {"loss": fill})

    def objective(self, start: str | None) -> str | None:
        if start is None:
            return self.spec.start.objective if self.spec.start else None
        assert self.spec.pretrain is not None
        return self.spec.pretrain.jobs[start].objective

    def check(
        self, layers: list[Layer], params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        config, problems, normalised = validated(layers, params)
        for field, message in problems:
            self.report(field, message)
        return config, normalised

    def scale(
        self, config: dict[str, Any], layers: Sequence[Layer], stage: str, sources: Any
    ) -> None:
        """Apply the embedded scaling to a validated config (its own section dicts) and record
        what it changed against the spec field that set each value (`sources.get(path)`
        first, else the layers')."""
        changes = scaling_changes(config, self.rules[stage])
        for label, path, value in changes:
            section, _, field = path.partition(".")
            source = sources.get(path) or blame(layers, (section, field))
            self.rescales.add(source, config[section][field], value, label)
        apply_changes(config, changes)

    def check_target(
        self, stage: str, start: str | None, config: Mapping[str, Any], layers: Sequence[Layer]
    ) -> None:
        """Refuse a target label that is not a class of the trial's eval set (once per case)."""
        if config["eval"]["target"] or stage == "pretrain":
            target, field = self.own_target(stage, config, layers)
        elif start is not None and start in self.job_targets:
            target, field = self.job_targets[start]
        else:
            return  # the start checkpoint's own recorded target: not known before it loads
        data = config["data"]
        key = (target, field, data["eval"], data["classnames"])
        if key in self._targets_checked:
            return
        self._targets_checked.add(key)
        n_synthetic = self.spec.embedded.synthetic.n_classes
        problem = target_problem(target, data["eval"], data["classnames"], n_synthetic)
        if problem is not None:
            self.report(field, problem)

    def own_target(
        self, stage: str, config: Mapping[str, Any], layers: Sequence[Layer]
    ) -> tuple[str, str]:
        """The target label a trial scores ASR against (unless its start model records one),
        and the spec field that sets it."""
        at = ("eval", "target") if config["eval"]["target"] else ("poison", "target")
        field = blame(layers, at)
        if field.startswith("trial config"):  # the default: say where to set another
            field = f"{stage}.trial.{'.'.join(at)}"
        return config[at[0]]["target"], field

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

    def _select(self) -> dict[str, Any]:
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
            layers = self._pretrain_layers(name)
            config, _ = self.check(layers, {})
            if config is None:
                continue
            if self.embedded:
                self.scale(config, layers, "pretrain", {})
                self._record_scratch_lr(layers)
            self.job_targets[name] = self.own_target("pretrain", config, layers)
            self.check_target("pretrain", None, config, layers)
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

    def _pretrain_layers(self, name: str) -> list[Layer]:
        assert self.spec.pretrain is not None
        job = self.spec.pretrain.jobs[name]
        at = f"pretrain.jobs.{name}"
        layers = [
            self.profile("pretrain"),
            Layer(f"{at}.objective", {"loss": dict(registry.OBJECTIVES[job.objective])}),
            Layer("pretrain.trial", self.spec.pretrain.trial, patch=True),
            Layer(f"{at}.trial", job.trial, patch=True),
        ]
        if job.from_checkpoint is not None:
            layers.append(self._from_checkpoint(at, job.from_checkpoint))
        return [*layers, self.profile_patch()]

    def _from_checkpoint(self, at: str, ref: str) -> Layer:
        if self.embedded:
            return Layer("embedded.scratch_lr", {"optim": {"lr": self.spec.embedded.scratch_lr}})
        path = self.spec.real.checkpoints.get(ref) or str((self.path.parent / ref).resolve())
        return Layer(f"{at}.from_checkpoint", {"model": {"checkpoint": path}})

    def _record_scratch_lr(self, layers: list[Layer]) -> None:
        """A learning rate the user set that the embedded scratch_lr replaces."""
        i = next((i for i, x in enumerate(layers) if x.label == "embedded.scratch_lr"), None)
        if i is None or any(touches(x.values, ("optim", "lr")) for x in layers[i + 1 :]):
            return
        source = blame(layers[:i], ("optim", "lr"))
        if source.startswith("trial config"):
            return
        written, problem = field_value("optim.lr", merge_layers(layers[:i])["optim"]["lr"])
        lr = self.spec.embedded.scratch_lr
        if problem is None and written != lr:
            self.rescales.add(source, written, lr, "embedded.scratch_lr")
