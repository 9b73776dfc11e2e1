"""What a plan is made of: stages of trials (or an Optuna search), as saved in `plan.json`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    # A full TrialConfig; model.checkpoint filled by the driver from `start`. Read-only: the
    # trials of a grid share the sections they have in common (copy before changing one).
    config: dict[str, Any]
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
    config: dict[str, Any]  # template: apply_params(config, sampled, scaling) is a trial's config
    paths: dict[str, str]  # short name -> dotted TrialConfig field
    metrics: dict[str, str]  # {"clean_acc": "max", "asr": "min"}, each over every epoch
    max_concurrent: int | None = None
    # The embedded profile's scaling, applied to sampled values as the planner applies it to
    # grid values: its rule and the template's fields as written (see `apply_params`).
    scaling: dict[str, Any] | None = None


@dataclass(frozen=True)
class StagePlan:
    name: str
    trials: tuple[TrialPlan, ...]  # empty for an Optuna stage (see `search`)
    resources: dict[str, float]
    select: dict[str, Any] | None
    search: OptunaPlan | None
    max_failures: int
    # Baseline points run beside a clean stage's trials, one per start (`bn_only`).
    baselines: tuple[str, ...] = ()
    # A screen's points per Ray trial: None for "auto" (sweeper.screen_chunks).
    points_per_trial: int | None = None
    # The stage's early-stopping scheduler, e.g. {"pareto_asha": {"grace": 2, "reduction": 3}}
    # (None: every trial trains all its epochs). Plans saved before it existed load as None.
    scheduler: dict[str, Any] | None = None
    # The stage's checkpoint retention (`sweeper.retention`); plans saved before it kept all.
    keep: str = "all"
    # Processes of each trial's data-parallel job (`distributed.workers`); plans saved
    # before it existed ran one.
    workers: int = 1

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
    # Spec fields whose value the embedded profile changes, e.g.
    # {"clean.trial.optim.epochs": {"written": 3, "runs_as": [1], "rule": "..."}}
    # (see `sweeper.rescaled`).
    rescaled: dict[str, dict[str, Any]] = field(default_factory=dict)
    success_asr: float = 5.0  # the spec's success threshold (ASR %, at or under)
    loggers: tuple[str, ...] = ()  # experiment trackers (`sweeper ls loggers`)


def trial_id(stage: str, start: str | None, params: Mapping[str, Any], occurrence: int) -> str:
    """Readable and stable: the same spec planned again gives the same ids (resume)."""
    parts = [
        stage,
        start or "ckpt",
        *(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()),
    ]
    return _UNSAFE.sub("_", "-".join([*parts, f"r{occurrence}"]))


_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")
