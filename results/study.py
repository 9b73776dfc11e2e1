"""The Optuna searches a sweep planned, read from its `plan.json`: what a report says about a
study (its budget, seed and the space it samples) besides the trials it ran.

Trials of a search are told apart from a grid's by their id, `<stage>-optuna-<tune id>` (what
`sweeper resume` counts too); `plan.json` only adds the study's settings, so a store copied
without it still gets its Optuna plots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

PLAN_FILE = "plan.json"
SEARCH_MARK = "-optuna-"

StudyKey = tuple[str, str]  # (sweep_id, stage)


class StudySpec(NamedTuple):
    """One stage's planned Optuna search."""

    n_trials: int | None
    seed: int | None
    # name -> domain: {"type": "float"|"int", "low", "high", "log"} or {"choices": [...]}
    params: dict[str, dict[str, Any]]


class PlannedStudies(NamedTuple):
    studies: dict[StudyKey, StudySpec]
    problems: tuple[str, ...]  # plan files that could not be read, and why


def is_search_trial(trial_id: str, stage: str) -> bool:
    """Whether `trial_id` is a trial of `stage`'s Optuna search."""
    return trial_id.startswith(f"{stage}{SEARCH_MARK}")


def _spec(search: dict[str, Any]) -> StudySpec:
    def whole(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    params = search.get("params")
    return StudySpec(
        n_trials=whole(search.get("n_trials")),
        seed=whole(search.get("seed")),
        params={str(k): dict(v) for k, v in (params or {}).items() if isinstance(v, dict)},
    )


def planned_studies(sweep_dirs: Sequence[Path]) -> PlannedStudies:
    """The Optuna searches in the sweeps' plan files. A sweep without a plan file plans none
    here; one whose plan file cannot be read is named in `problems` (the report still shows
    the search's trials, without its settings)."""
    studies: dict[StudyKey, StudySpec] = {}
    problems = []
    for d in sweep_dirs:
        path = d / PLAN_FILE
        if not path.exists():
            continue
        try:
            plan = json.loads(path.read_text(encoding="utf-8"))
            stages = plan["stages"]
            for stage in stages:
                if stage.get("search"):
                    studies[(d.name, str(stage["name"]))] = _spec(stage["search"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            why = err.strerror if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
            problems.append(f"{path}: {why}")
    return PlannedStudies(studies, tuple(problems))
