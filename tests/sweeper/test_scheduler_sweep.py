"""pareto_asha through a real sweep: the CLI, a local Ray cluster, the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from results.store import read_epochs, read_trials
from sweeper.cli import main
from tests.sweeper.test_launch import sweep_of, tiny_spec

pytestmark = pytest.mark.slow


def test_a_stopped_trial_keeps_its_epochs_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two trials at learning rates too small to move a float32 weight: every epoch of both
    # is the start model again, so the two candidate sets are equal. At the first rung
    # (epoch 1) the second to arrive ties the first, loses the tie to it and, with two at
    # the rung keeping ceil(2 / 3) = 1, is stopped; the first trains on to its last epoch.
    store = tmp_path / "store"
    spec = tiny_spec(
        tmp_path,
        clean={
            "grid": {"lr": [1e-12, 1.1e-12]},
            "trial": {"optim": {"epochs": 3, "warmup_steps": 2}, "data": {"batch_size": 32}},
            "scheduler": {"pareto_asha": {"grace": 1, "reduction": 3}},
        },
    )
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    sweep = sweep_of(out)
    assert "1 stopped early" in out

    trials = {
        r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist() if r["stage"] == "clean"
    }
    by_status = {r["status"]: t for t, r in trials.items()}
    assert sorted(r["status"] for r in trials.values()) == ["completed", "stopped"]
    stopped = trials[by_status["stopped"]]
    assert stopped["error"] == (
        "stopped by pareto_asha at epoch 1: its candidate set ranks 2 of 2 trials at this "
        "rung (the rung's frontier); the rung keeps the best 1"
    )
    assert stopped["ended_at"] is not None

    epochs: dict[str, list[int]] = {}
    for r in read_epochs(store, [sweep]).to_pylist():
        if r["stage"] == "clean":
            epochs.setdefault(r["trial_id"], []).append(r["epoch"])
    # Every epoch the stopped trial ran is in the store, a candidate like any other.
    assert sorted(epochs[by_status["stopped"]]) == [0, 1]
    assert sorted(epochs[by_status["completed"]]) == [0, 1, 2, 3]

    # A stopped trial is finished: resume has nothing to run, status counts it.
    assert main(["resume", sweep, "--store", str(store)]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert main(["status", sweep, "--store", str(store)]) == 0
    assert "1 completed, 1 stopped" in capsys.readouterr().out
