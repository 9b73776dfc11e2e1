"""Rules across the fields of a search space (the schema in `sweeper.spec` checks each alone)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweeper import registry
from sweeper.spec_distributed import distributed_problems
from sweeper.spec_errors import Problem, shown

if TYPE_CHECKING:
    from sweeper.spec import CleanSpec, PretrainSpec, SweepSpec


def check_spec(spec: SweepSpec) -> list[Problem]:
    """Rules across fields (the schema checks each field alone)."""
    problems: list[Problem] = []
    if spec.pretrain is None and spec.clean is None:
        problems.append(
            ("(top level)", "nothing to run: add a pretrain section or a clean section")
        )
    if spec.screen is not None and spec.clean is None:
        problems.append(("screen", "a screen picks the model a clean stage starts from; add clean"))
    if spec.clean is not None:
        problems += _check_clean(spec, spec.clean)
    problems += _check_start(spec)
    if spec.pretrain is not None:
        problems += _check_matches(spec.pretrain)
    if spec.profile == "real":
        problems += _check_real_paths(spec)
    problems += distributed_problems(spec)
    return problems + trial_cap(spec)


def trial_cap(spec: SweepSpec) -> list[Problem]:
    """The trials a spec plans, counted without expanding a grid, against `max_trials`."""
    starts = len(start_names(spec))
    counts: dict[str, int] = {}
    if spec.pretrain is not None:
        counts["pretrain"] = len(spec.pretrain.jobs)
    if spec.screen is not None:
        counts["screen"] = starts * math.prod(len(v) for v in spec.screen.grid.values())
    if spec.clean is not None and spec.clean.grid is not None:
        grid = math.prod(len(v) for v in spec.clean.grid.values())
        counts["clean"] = starts * spec.clean.repeats * grid
    elif spec.clean is not None and spec.clean.search is not None:
        counts["clean"] = spec.clean.search.optuna.n_trials
    total = sum(counts.values())
    if total <= spec.max_trials:
        return []
    stages = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    return [
        (
            "max_trials",
            f"the search space plans {total:,} trials ({stages}), more than max_trials "
            f"{spec.max_trials:,}; if that many are meant, raise the cap: `max_trials: {total}` "
            f"in the file or max_trials={total} on the command line",
        )
    ]


def _check_clean(spec: SweepSpec, clean: CleanSpec) -> list[Problem]:
    problems: list[Problem] = []
    if spec.start is None and spec.pretrain is None:
        problems.append(("start", "required by clean: a checkpoint file or a pretrain spec"))
    if (clean.grid is None) == (clean.search is None):
        problems.append(("clean.grid", "give exactly one of clean.grid and clean.search"))
    swept = set(clean.grid or {}) | set(clean.search.optuna.params if clean.search else {})
    if "method" in swept and clean.method is not None:
        problems.append(("clean.method", "the grid sweeps method; drop clean.method"))
    if spec.screen is not None and clean.method_name != "shrink_perturb":
        problems.append(("clean.method", "a screen stage feeds shrink_perturb; set it"))
    needs = registry.METHODS[clean.method_name].needs_perturbation
    if needs and spec.screen is None and "shrink" not in swept:
        problems.append(
            ("clean.method", "shrink_perturb needs a screen section or shrink in clean.grid")
        )
    if clean.search is not None:
        for name in clean.search.optuna.params:
            if registry.PARAMS[name].path is None:
                problems.append(
                    (
                        f"clean.search.optuna.params.{name}",
                        "Optuna searches config fields only; put it in a grid file",
                    )
                )
        if len(start_names(spec)) != 1:
            problems.append(
                (
                    "clean.search",
                    "an Optuna search runs from one start model; set start.use to one job",
                )
            )
    if "clean_poisons" in swept and spec.start and spec.start.checkpoint and not spec.start.trigger:
        problems.append(
            ("start.trigger", "clean.grid.clean_poisons needs the start model's trigger")
        )
    return problems


def _check_start(spec: SweepSpec) -> list[Problem]:
    start = spec.start
    if start is None:
        return []
    problems: list[Problem] = []
    if start.checkpoint is not None:
        if start.objective is None:
            problems.append(("start.objective", "required with start.checkpoint: mmcl or mmcl_ssl"))
        if spec.pretrain is not None or start.use is not None:
            problems.append(
                (
                    "start.checkpoint",
                    "a checkpoint start takes no pretrain jobs (drop pretrain/use)",
                )
            )
    elif spec.pretrain is None:
        problems.append(
            ("start", "give start.checkpoint (a file) or start.pretrain (a pretrain spec)")
        )
    jobs = spec.pretrain.jobs if spec.pretrain else {}
    for i, name in enumerate(start.use or []):
        if jobs and name not in jobs:
            problems.append(
                (f"start.use[{i}]", f"no pretrain job {shown(name)} (jobs: {', '.join(jobs)})")
            )
    if start.use is not None and not start.use:
        problems.append(("start.use", "must not be empty"))
    return problems


def _check_matches(pretrain: PretrainSpec) -> list[Problem]:
    problems: list[Problem] = []
    mmcl_jobs = [n for n, j in pretrain.jobs.items() if j.objective == "mmcl"]
    for name, job in pretrain.jobs.items():
        if job.match is None:
            if job.objective == "mmcl_ssl" and len(mmcl_jobs) > 1:
                problems.append(
                    (
                        f"pretrain.jobs.{name}.match",
                        f"required: which mmcl job ({', '.join(mmcl_jobs)}) its accuracy should match",
                    )
                )
            continue
        ref = pretrain.jobs.get(job.match)
        if job.objective != "mmcl_ssl" or ref is None or ref.objective != "mmcl":
            problems.append(
                (f"pretrain.jobs.{name}.match", "an mmcl_ssl job matches an mmcl job of this spec")
            )
    return problems


def _check_real_paths(spec: SweepSpec) -> list[Problem]:
    needed = {"eval_data": spec.real.eval_data}
    if spec.pretrain is not None:
        needed["pretrain_data"] = spec.real.pretrain_data
    if spec.clean is not None:
        needed["clean_data"] = spec.real.clean_data
    return [
        (f"real.{key}", f"empty; set it in the file or on the command line (real.{key}=/path)")
        for key, value in needed.items()
        if not value
    ]


def start_names(spec: SweepSpec) -> list[str | None]:
    """The start models the screen/clean stages fan out from (None: a checkpoint file)."""
    if spec.start is not None and spec.start.checkpoint is not None:
        return [None]
    if spec.start is not None and spec.start.use is not None:
        return list(spec.start.use)
    return list(spec.pretrain.jobs) if spec.pretrain else []
