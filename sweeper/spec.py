"""The search-space spec: a YAML file parsed into typed, frozen models.

`read_spec` reports every problem of a stage of checking at once, each line naming the file
and the dotted field: YAML syntax first, then the schema (unknown keys, types, ranges,
resources, missing checkpoint), then the cross-field rules (`sweeper.spec_rules`). The
trial configs a grid expands to are checked by `sweeper.plan.load_spec`, which is what the
CLI calls. Messages are worded by `sweeper.spec_errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import MinLen
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sweeper import registry
from sweeper.errors import SpecError
from sweeper.overrides import apply_overrides, deep_merge, read_yaml_mapping
from sweeper.spec_distributed import DistributedSpec
from sweeper.spec_errors import Problem, format_loc, shown, spec_error, validation_problems
from sweeper.spec_numbers import number_problems
from sweeper.spec_profiles import EmbeddedProfile as EmbeddedProfile
from sweeper.spec_profiles import RealProfile, Resources, TrialPatch, _Frozen
from sweeper.spec_profiles import SyntheticSpec as SyntheticSpec
from sweeper.spec_rules import check_spec
from trainers.config import PoisonKind

Objective = Literal["mmcl", "mmcl_ssl"]
DEFAULT_MAX_TRIALS = 100_000
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _known_param(name: str) -> str:
    if name not in registry.PARAMS:
        raise ValueError(
            f"unknown parameter {shown(name)} (known: {', '.join(registry.listed_params())}; "
            "see `sweeper ls params`)"
        )
    return name


def _screen_param(name: str) -> str:
    if name not in registry.SCREEN_PARAMS:
        raise ValueError(
            f"a screen sweeps only {', '.join(sorted(registry.SCREEN_PARAMS))}, not {shown(name)}"
        )
    return name


def _known_method(name: str) -> str:
    if name not in registry.METHODS:
        raise ValueError(f"unknown method {shown(name)} (known: {', '.join(registry.METHODS)})")
    return name


ParamName = Annotated[str, AfterValidator(_known_param)]
# Checked when the spec is read, not when the first trial reports: a sweep must not run for
# hours and then stop (or log nothing) for want of a package on the driver.
LoggerName = Annotated[str, AfterValidator(registry.usable_logger)]
Values = Annotated[list[Any], MinLen(1)]
Grid = Annotated[dict[ParamName, Values], MinLen(1)]
ScreenGrid = Annotated[dict[Annotated[str, AfterValidator(_screen_param)], Values], MinLen(1)]


class PretrainJob(_Frozen):
    objective: Objective
    # A name in real.checkpoints, or a file: finetune from it rather than from scratch.
    from_checkpoint: str | None = None
    # The MMCL job whose accuracy an MMCL+SSL job's selection matches (default: the only one).
    match: str | None = None
    trial: TrialPatch = {}


# Which checkpoints a stage keeps (`sweeper.retention`): None takes the stage's default.
Keep = Literal["frontier", "selected", "last", "all"] | None


class PretrainSpec(_Frozen):
    jobs: Annotated[dict[Annotated[str, Field(pattern=_NAME_PATTERN)], PretrainJob], MinLen(1)]
    trial: TrialPatch = {}
    resources: Resources = Resources()  # per worker with `distributed`
    distributed: DistributedSpec | None = None
    keep: Keep = None
    # The file this section was read from (set by `read_spec`; for messages and records).
    source: str | None = None


class StartSpec(_Frozen):
    pretrain: str | None = None
    checkpoint: str | None = None
    objective: Objective | None = None
    # The trigger of a checkpoint start (cleaning-set poisons use it; pretrain jobs know it).
    trigger: PoisonKind | None = None
    use: list[str] | None = None


class Pick(_Frozen):
    max_asr: float = Field(default=15.0, ge=0, le=100)


class ParetoAshaSpec(_Frozen):
    """`sweeper.pareto_asha`: rungs at grace * reduction**k epochs, each keeping the best
    1/reduction of the trials that reach it."""

    grace: int = Field(default=1, ge=1)
    reduction: float = Field(default=3.0, gt=1)


class SchedulerSpec(_Frozen):
    """A stage's early-stopping scheduler: one of the names `sweeper ls schedulers` lists."""

    pareto_asha: ParetoAshaSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> SchedulerSpec:
        if sum(v is not None for v in (self.pareto_asha,)) != 1:
            raise ValueError(
                f"name one scheduler ({', '.join(registry.SCHEDULERS)}), e.g. "
                "`scheduler: {pareto_asha: {grace: 2, reduction: 3}}`"
            )
        return self


class ScreenSpec(_Frozen):
    grid: ScreenGrid
    pick: Pick = Pick()
    trial: TrialPatch = {}
    resources: Resources = Resources()
    # Points one Ray trial evaluates in turn from one loaded start model ("auto": about four
    # chunks per trial slot, at most 32 points; 1: a trial per point). sweeper.screen_chunks.
    points_per_trial: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    scheduler: SchedulerSpec | None = None
    keep: Keep = None


class OptunaParam(_Frozen):
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> OptunaParam:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give a non-empty `choices` list or `low` and `high`, not both")
        elif self.low is None or self.high is None:
            raise ValueError("needs `low` and `high` (or `choices`)")
        elif not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, not {self.low}")
        return self


class OptunaSpec(_Frozen):
    n_trials: int = Field(gt=0)
    params: Annotated[dict[ParamName, OptunaParam], MinLen(1)]
    seed: int = 0
    max_concurrent: int | None = Field(default=None, gt=0)


class SearchSpec(_Frozen):
    optuna: OptunaSpec


class CleanSpec(_Frozen):
    # Default cleanclip; leave it out when the grid sweeps `method`.
    method: Annotated[str, AfterValidator(_known_method)] | None = None
    grid: Grid | None = None
    search: SearchSpec | None = None
    trial: TrialPatch = {}
    # Run every grid point this many times (seeds base + occurrence).
    repeats: int = Field(default=1, ge=1)
    # Baselines beside the trials, one per start model. bn_only: BatchNorm re-estimated on
    # the cleaning set with no weight update (a drop in ASR it shows too is not cleaning).
    baselines: list[Literal["bn_only"]] = ["bn_only"]
    resources: Resources = Resources()  # per worker with `distributed`
    # Each trial one data-parallel job (not its baselines: they do not train).
    distributed: DistributedSpec | None = None
    # Early stopping over epochs; with a grid or an Optuna search.
    scheduler: SchedulerSpec | None = None
    keep: Keep = None

    @property
    def method_name(self) -> str:
        return self.method or "cleanclip"


class SweepSpec(_Frozen):
    name: str = Field(pattern=_NAME_PATTERN)
    paper: str | None = None
    description: str = ""
    profile: Literal["embedded", "real"] = "embedded"
    real: RealProfile = RealProfile()
    embedded: EmbeddedProfile = EmbeddedProfile()
    start: StartSpec | None = None
    pretrain: PretrainSpec | None = None
    screen: ScreenSpec | None = None
    clean: CleanSpec | None = None
    max_failures: int = Field(default=1, ge=0)
    # Added to every trial's seed and an Optuna search's: one repeat of the study
    # (`sweeper launch FILE --seeds 3` runs seed 0, 1, 2 and reports them together).
    seed: int = Field(default=0, ge=0)
    # Planning more trials than this is refused before any is expanded: a typo in a grid
    # (an extra value list, a repeats of 1000) should not start a week of trials.
    max_trials: int = Field(default=DEFAULT_MAX_TRIALS, gt=0)
    # Write report.html when the sweep ends (the demo's "report" step).
    report: bool = False
    # The success rule's threshold (PAPER_NOTES: a candidate with ASR <= 5% succeeds): the
    # progress line's best, each Optuna trial's objective and the report use it.
    success_asr: float = Field(default=5.0, ge=0, le=100)
    # Experiment trackers every epoch is logged to besides the store (`sweeper ls loggers`).
    loggers: list[LoggerName] = []

    @field_validator("loggers")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def read_spec(
    path: str | Path, overrides: Sequence[str] = (), loggers: Sequence[str] = ()
) -> SweepSpec:
    """Parse and check one search-space file (trial configs are checked by the planner);
    `loggers` (launch's `--logger`) are added to the file's."""
    spec, problems = read_spec_parts(path, overrides, loggers)
    if problems:
        raise spec_error(str(path), problems)
    return spec


def read_spec_parts(
    path: str | Path, overrides: Sequence[str] = (), loggers: Sequence[str] = ()
) -> tuple[SweepSpec, list[Problem]]:
    """The schema-valid spec (a SpecError otherwise) and its cross-field problems, unraised,
    so that the planner can add the trial-config problems to the same report."""
    return _read(Path(path), tuple(overrides), frozenset(), tuple(loggers))


def _read(
    path: Path,
    overrides: tuple[str, ...],
    seen: frozenset[Path],
    loggers: tuple[str, ...] = (),
) -> tuple[SweepSpec, list[Problem]]:
    where = str(path)
    raw = read_yaml_mapping(path)
    raw = _resolve_pretrain_file(raw, path, seen | {path.resolve()})
    if overrides:
        try:
            raw = apply_overrides(raw, overrides)
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None
    if loggers:
        # Added to the file's list (a non-list there is left for the schema to report).
        given = raw.get("loggers") or []
        raw = {**raw, "loggers": [*given, *loggers] if isinstance(given, list) else given}
    problems = _missing_checkpoint(raw, path)
    # Booleans and non-finite numbers first: pydantic would take `true` as 1 and 1e400 as inf.
    numbers = [(format_loc(loc), message) for loc, message in number_problems(SweepSpec, raw)]
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as err:
        bad = {field for field, _ in numbers}
        found = [p for p in validation_problems(err, SweepSpec) if p[0] not in bad]
        raise spec_error(where, [*numbers, *found, *problems]) from None
    if numbers:
        raise spec_error(where, [*numbers, *problems])
    if spec.start is not None and spec.start.checkpoint is not None:
        absolute = str((path.parent / spec.start.checkpoint).resolve())
        spec = spec.model_copy(
            update={"start": spec.start.model_copy(update={"checkpoint": absolute})}
        )
    return spec, problems + check_spec(spec)


def _resolve_pretrain_file(
    raw: dict[str, Any], path: Path, seen: frozenset[Path]
) -> dict[str, Any]:
    """Inline the pretrain-only file named by `start.pretrain`.

    Its `real` and `embedded` sections are the defaults of this file's, so a cleaning file
    inherits the pre-training data path and both files plan identical pretrain configs (one
    cache entry).
    """
    start = raw.get("start")
    if not isinstance(start, dict) or not isinstance(start.get("pretrain"), str):
        return raw
    ref = start["pretrain"]
    where = str(path)
    if "pretrain" in raw:
        raise spec_error(
            where, [("start.pretrain", "this file also has a pretrain section; keep one")]
        )
    ref_path = path.parent / ref
    if not ref_path.is_file():
        raise spec_error(
            where,
            [("start.pretrain", f"no such file {ref_path} (paths are relative to this file)")],
        )
    if ref_path.resolve() in seen:
        raise spec_error(where, [("start.pretrain", f"{ref_path} refers back to this file")])
    ref_spec, problems = _read(ref_path, (), seen)
    if problems:
        raise spec_error(str(ref_path), problems)
    if ref_spec.clean or ref_spec.screen or ref_spec.start:
        raise spec_error(
            where, [("start.pretrain", f"{ref_path} is not a pretrain-only search space")]
        )
    ref_raw = read_yaml_mapping(ref_path)
    out = dict(raw)
    out["start"] = {k: v for k, v in start.items() if k != "pretrain"}
    out["pretrain"] = {**ref_raw["pretrain"], "source": ref}
    for section in ("real", "embedded"):
        own = raw.get(section, {})
        if (
            section in ref_raw
            and isinstance(own, Mapping)
            and isinstance(ref_raw[section], Mapping)
        ):
            out[section] = deep_merge(ref_raw[section], own)
    return out


def _missing_checkpoint(raw: Mapping[str, Any], path: Path) -> list[Problem]:
    start = raw.get("start")
    ckpt = start.get("checkpoint") if isinstance(start, Mapping) else None
    if isinstance(ckpt, str) and not (path.parent / ckpt).is_file():
        return [
            ("start.checkpoint", f"no such file {shown(ckpt)} (paths are relative to this file)")
        ]
    return []
