"""`plan.json`: the planned sweep saved beside its results, so `resume` runs the same trials."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from sweeper.errors import SweepNotFound
from sweeper.plan import OptunaPlan, StagePlan, SweepPlan, TrialPlan


def save_plan(path: Path, plan: SweepPlan) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(dataclasses.asdict(plan), indent=1, default=str))
    os.replace(tmp, path)


def load_plan(path: Path) -> SweepPlan:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SweepNotFound(f"cannot read the sweep's plan {path}: {err}") from None
    return plan_from_dict(raw)


def plan_from_dict(raw: dict[str, Any]) -> SweepPlan:
    stages = []
    for s in raw["stages"]:
        trials = tuple(TrialPlan(**t) for t in s["trials"])
        search = OptunaPlan(**s["search"]) if s.get("search") else None
        baselines = tuple(s.get("baselines", ()))
        stages.append(
            StagePlan(**{**s, "trials": trials, "search": search, "baselines": baselines})
        )
    loggers = tuple(raw.get("loggers", ()))
    return SweepPlan(**{**raw, "stages": tuple(stages), "loggers": loggers})
