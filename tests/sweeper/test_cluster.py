"""Fractional-GPU packing, cluster limits, resume after a killed driver, Optuna trials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from results.store import read_epochs, read_trials
from sweeper.cli import main
from tests.sweeper.test_launch import sweep_of, tiny_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_gpu_nodes():
    """Two nodes with one logical GPU each; Ray's resources are logical, so no GPU is needed."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 4, "num_gpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=4, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster
    import ray

    ray.shutdown()
    cluster.shutdown()


def test_eight_quarter_gpu_trials_run_at_once_on_two_nodes(
    two_gpu_nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    spec = tiny_spec(
        tmp_path,
        clean={
            "grid": {"lr": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4]},
            "trial": {"optim": {"epochs": 3, "warmup_steps": 2}, "data": {"batch_size": 32}},
        },
        # The embedded profile asks every stage for `embedded.resources`.
        resources={"gpu": 0.25, "cpu": 0.5},
    )
    rc = main(["launch", str(spec), "--store", str(store), "--address", two_gpu_nodes.address])
    assert rc == 0
    sweep = sweep_of(capsys.readouterr().out)
    rows = [r for r in read_trials(store, [sweep]).to_pylist() if r["stage"] == "clean"]
    assert len(rows) == 8 and {r["status"] for r in rows} == {"completed"}
    assert {r["resources"] for r in rows} == {'{"cpu": 0.5, "gpu": 0.25}'}
    starts = sorted(r["started_at"] for r in rows)
    ends = sorted(r["ended_at"] for r in rows)
    # All eight were running together: the last one started before the first one ended.
    assert starts[-1] < ends[0], (starts, ends)
    hosts = {r["host"] for r in read_epochs(store, [sweep]).to_pylist() if r["stage"] == "clean"}
    assert len(hosts) == 2, hosts  # host column carries the Ray node: both nodes were used


def test_a_request_no_node_can_host_fails_before_launch(
    two_gpu_nodes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    spec = tiny_spec(tmp_path, resources={"gpu": 2, "cpu": 1})
    rc = main(["launch", str(spec), "--store", str(store), "--address", two_gpu_nodes.address])
    err = capsys.readouterr().err
    assert rc == 2
    # Every stage that cannot fit is named at once, with the field to lower.
    assert "2 stage(s) ask for more than any node" in err and "embedded.resources" in err, err
    assert "'pretrain'" in err and "'clean'" in err
    assert not store.exists()  # nothing written
    # --dry-run contacts no cluster: it says the check is launch's.
    argv = ["launch", str(spec), "--dry-run", "--address", two_gpu_nodes.address]
    assert main(argv) == 0
    assert "resources not checked: --dry-run does not contact" in capsys.readouterr().err


def _wait_for(pred, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_killed_driver_then_resume_leaves_one_row_per_epoch(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spec = tiny_spec(tmp_path, clean={"grid": {"lr": [1e-4, 3e-4, 1e-3, 3e-3]}})
    log = open(tmp_path / "launch.log", "w")  # noqa: SIM115 (the child writes it until killed)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeper", "launch", str(spec), "--store", str(store)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so the kill takes the local Ray cluster down with it
    )

    def clean_started() -> bool:
        try:
            return any(r["stage"] == "clean" for r in read_epochs(store).to_pylist())
        except Exception:
            return False

    try:
        _wait_for(clean_started, 240)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    sweep = next(p.name for p in store.iterdir() if not p.name.startswith("."))
    before = {r["trial_id"]: r["status"] for r in read_trials(store, [sweep]).to_pylist()}
    assert any(s != "completed" for t, s in before.items() if t.startswith("clean-")), before

    assert main(["resume", sweep, "--store", str(store)]) == 0
    trials = read_trials(store, [sweep]).to_pylist()
    assert {r["status"] for r in trials} == {"completed"}
    rows = read_epochs(store, [sweep]).to_pylist()
    keys = [(r["trial_id"], r["epoch"]) for r in rows]
    assert len(keys) == len(set(keys))
    per_trial: dict[str, list[int]] = {}
    for t, e in keys:
        per_trial.setdefault(t, []).append(e)
    assert len(per_trial) == 5 and all(sorted(v) == [0, 1, 2] for v in per_trial.values())
    # The pre-training that finished before the kill was not started again: its trial has
    # exactly one "running" row among every row ever written.
    raw = pq.read_table(store / sweep / "trials").to_pylist()
    assert sum(r["trial_id"] == "pretrain-mmcl" and r["status"] == "running" for r in raw) == 1


def test_optuna_trials_land_in_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    spec = tiny_spec(
        tmp_path,
        clean={
            "grid": None,
            "search": {
                "optuna": {
                    "n_trials": 3,
                    "seed": 0,
                    "params": {"lr": {"low": 1e-5, "high": 1e-3, "log": True}},
                }
            },
        },
    )
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    sweep = sweep_of(capsys.readouterr().out)
    rows = [r for r in read_epochs(store, [sweep]).to_pylist() if r["stage"] == "clean"]
    trials = {r["trial_id"] for r in rows}
    assert len(trials) == 3
    lrs = {r["p_lr"] for r in rows}
    assert len(lrs) == 3 and all(1e-5 <= v <= 1e-3 for v in lrs)
    assert sorted(r["epoch"] for r in rows) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
