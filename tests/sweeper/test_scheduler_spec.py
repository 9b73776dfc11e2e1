"""`scheduler:` on clean and screen stages: validation, the plan, `ls`, and the Tune scheduler
fed Tune's own `Trial` objects for grid and Optuna trials (no cluster needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from sweeper.cli import main
from sweeper.errors import SpecError
from sweeper.payloads import search_base
from sweeper.plan import load_spec, plan_file
from sweeper.plan_io import plan_from_dict
from sweeper.ray_backend.schedulers import ParetoASHAScheduler, make_scheduler, planned_epochs
from tests.sweeper.test_spec import BASE, write

SCREEN = """\
name: t
start: {checkpoint: model.pt, objective: mmcl}
screen:
  grid: {shrink: [0.5], perturb_sigma: [0.0, 1e-4]}
  scheduler: {pareto_asha: {}}
clean:
  method: shrink_perturb
  grid: {lr: [1e-5]}
  trial: {optim: {epochs: 20}}
  scheduler: {pareto_asha: {grace: 2, reduction: 3}}
"""


def test_the_scheduler_is_planned_per_stage_and_saved(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")
    _, plan = plan_file(write(tmp_path, SCREEN))
    by = {s.name: s for s in plan.stages}
    assert by["screen"].scheduler == {"pareto_asha": {"grace": 1, "reduction": 3.0}}
    assert by["clean"].scheduler == {"pareto_asha": {"grace": 2, "reduction": 3.0}}
    # plan.json round trip (what `resume` reads), and a plan saved before the field existed.
    raw = dataclasses.asdict(plan)
    assert plan_from_dict(raw).stages == plan.stages
    for s in raw["stages"]:
        del s["scheduler"]
    assert {s.scheduler for s in plan_from_dict(raw).stages} == {None}


def test_every_scheduler_problem_at_once_with_file_and_field(tmp_path: Path) -> None:
    text = BASE.replace(
        "  resources: {gpu: 0.25, cpu: 2}\n",
        "  resources: {gpu: 0.25, cpu: 2}\n  scheduler: {pareto_asha: {grace: 0, reduction: 1}}\n",
    )
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"{path}: clean.scheduler.pareto_asha.grace: must be >= 1 (got 0)" in message
    assert f"{path}: clean.scheduler.pareto_asha.reduction: must be > 1 (got 1)" in message
    for bad, want in (
        ("{asha: {grace: 1}}", "clean.scheduler.asha: unknown key (allowed: pareto_asha)"),
        ("{}", "clean.scheduler: name one scheduler (pareto_asha)"),
    ):
        other = write(tmp_path, text.replace("{pareto_asha: {grace: 0, reduction: 1}}", bad))
        with pytest.raises(SpecError, match=r"clean\.scheduler") as info:
            load_spec(other)
        assert want in str(info.value)


def test_ls_and_dry_run_name_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "schedulers"]) == 0
    assert capsys.readouterr().out.startswith("pareto_asha ")
    text = BASE.replace(
        "  resources: {gpu: 0.25, cpu: 2}\n",
        "  resources: {gpu: 0.25, cpu: 2}\n  scheduler: {pareto_asha: {grace: 2}}\n",
    )
    assert main(["launch", str(write(tmp_path, text)), "--dry-run"]) == 0
    assert "[pareto_asha grace 2, reduction 3]" in capsys.readouterr().out


def test_an_optuna_trials_last_epoch_is_its_sampled_one(tmp_path: Path) -> None:
    # epoch_scale 0.25: a sampled `epochs: 8` runs as 2, as the worker will run it.
    text = BASE.replace("name: t", "name: t\nstart: {use: [mmcl]}").replace(
        "  grid:\n    lr: [1e-5, 4e-5, 1e-5]\n",
        "  search:\n    optuna:\n      n_trials: 4\n      params:\n"
        "        epochs: {low: 4, high: 12}\n",
    )
    _, plan = plan_file(write(tmp_path, text))
    clean = next(s for s in plan.stages if s.name == "clean")
    assert clean.search is not None and clean.search.scaling is not None
    base = {
        **dataclasses.asdict(search_base(clean)),
        "search": True,
        "scaling": clean.search.scaling,
    }
    assert planned_epochs({"trial": base, "params": {"epochs": 8}}) == 2
    grid_trial = {"trial": {"config": {"optim": {"epochs": 5}}}}
    assert planned_epochs(grid_trial) == 5

    # Tune's Trial objects through the scheduler: at the first rung (epoch 1), the second
    # trial is dominated, so it stops, unless epoch 1 is its last (nothing left to save).
    sched = make_scheduler({"pareto_asha": {"grace": 1, "reduction": 3}})
    assert isinstance(sched, ParetoASHAScheduler)
    lead = Trial("t", config={"trial": base, "params": {"epochs": 12}}, stub=True)
    short = Trial("t", config={"trial": base, "params": {"epochs": 4}}, stub=True)
    long = Trial("t", config={"trial": base, "params": {"epochs": 12}}, stub=True)

    def epoch(trial: Trial, acc: float, asr: float) -> str:
        return sched.on_trial_result(
            None, trial, {"_kind": "epoch", "epoch": 1, "clean_acc": acc, "asr": asr}
        )

    assert epoch(lead, 70.0, 5.0) == TrialScheduler.CONTINUE
    assert epoch(short, 40.0, 50.0) == TrialScheduler.CONTINUE  # 4 runs as 1: its last
    assert epoch(long, 40.0, 50.0) == TrialScheduler.STOP
    assert sched.stop_reason(long) is not None and sched.stop_reason(short) is None
    # An outcome result is no epoch: never a decision.
    outcome = {"_kind": "outcome", "status": "completed"}
    assert sched.on_trial_result(None, lead, outcome) == TrialScheduler.CONTINUE


def test_a_resumed_stage_ranks_against_the_trials_that_finished_before() -> None:
    # What `resume` hands over: the store's rows of a finished trial (epoch 0 included).
    history = [
        {"trial_id": "clean-a", "epoch": 0, "clean_acc": 80.0, "asr": 95.0},
        {"trial_id": "clean-a", "epoch": 1, "clean_acc": 70.0, "asr": 5.0},
    ]
    sched = make_scheduler({"pareto_asha": {"grace": 1, "reduction": 3}}, history)
    assert sched is not None and sched.asha.recorded[1] == {"clean-a": ((70.0, 5.0),)}
    late = Trial("t", config={"trial": {"config": {"optim": {"epochs": 5}}}}, stub=True)
    result = {"_kind": "epoch", "epoch": 1, "clean_acc": 40.0, "asr": 50.0}
    # Alone at the rung it would go on; behind the finished trial it is stopped.
    assert sched.on_trial_result(None, late, result) == TrialScheduler.STOP
