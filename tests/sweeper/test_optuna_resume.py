"""A resumed Optuna stage goes on with its search: it is told the finished trials first."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ray import tune

from results.store import read_trials
from sweeper.cli import main
from sweeper.ray_backend.optuna_warm import searcher
from tests.sweeper.test_launch import tiny_spec

SPACE = {"lr": tune.loguniform(1e-5, 1e-2)}


def _first(search: Any) -> dict[str, Any]:
    search.set_search_properties(None, None, {"trial": {}, "params": SPACE})
    return search.suggest("t0")["params"]


def test_a_fresh_searcher_repeats_the_first_point_and_a_warm_one_does_not() -> None:
    first = _first(searcher(SPACE, seed=0))
    # The hazard: a resume with a fresh searcher samples the finished trial's point again.
    assert _first(searcher(SPACE, seed=0)) == first
    finished = [({"lr": first["lr"]}, (50.0, 3.0)), ({"lr": 1e-3}, None)]
    warm = searcher(SPACE, seed=0, finished=finished)
    nxt = _first(warm)
    assert nxt["lr"] not in (first["lr"], 1e-3)
    assert _first(searcher(SPACE, seed=0, finished=finished)) == nxt  # still deterministic
    told = warm._ot_study.get_trials(deepcopy=False)
    assert [(t.state.name, t.values, t.params) for t in told[:2]] == [
        ("COMPLETE", [50.0, 3.0], {"params/lr": first["lr"]}),
        ("FAIL", None, {"params/lr": 1e-3}),
    ]


@pytest.mark.slow
def test_resume_of_an_optuna_stage_runs_new_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    search = {
        "optuna": {
            "n_trials": 2,
            "seed": 0,
            "params": {"lr": {"low": 1e-5, "high": 1e-2, "log": True}},
        }
    }
    spec = tiny_spec(tmp_path, clean={"grid": None, "search": search})
    assert main(["launch", str(spec), "--store", str(store), "--ignore-disk"]) == 0
    sweep = re.search(r"^sweep: (\S+)", capsys.readouterr().out, re.M).group(1)  # type: ignore[union-attr]
    # The store of a sweep stopped after 2 of its 3 Optuna trials: the plan asks for one more.
    plan = store / sweep / "plan.json"
    body = json.loads(plan.read_text())
    stage = next(s for s in body["stages"] if s.get("search"))
    stage["search"]["n_trials"] = 3
    plan.write_text(json.dumps(body))
    assert main(["resume", sweep, "--store", str(store)]) == 0
    lrs = [
        json.loads(t["params"])["lr"]
        for t in read_trials(store, [sweep]).to_pylist()
        if t["stage"] == "clean" and t["trial_id"].startswith("clean-optuna-")
    ]
    assert len(lrs) == 3 and len(set(lrs)) == 3, lrs
