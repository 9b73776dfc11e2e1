"""`pretrain.distributed: {workers: 2}` in a real sweep: the pre-training job runs as a Ray
Train job of 2 gloo workers inside its Tune trial, its epochs reach the store once each,
its model goes through selection into cleaning, and a job that loses a worker mid-way is
retried from its last epoch. Through the real CLI on private local Ray clusters (one of two
nodes, whose job must place its workers on both)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from results.store import read_epochs, read_trials
from sweeper.cli import main
from tests.faults.test_fault_injection import (
    Meanwhile,
    assert_one_row_per_key,
    new_sweep,
    raw_rows,
    ray_workers,
    resume_states,
    stored_epochs,
    sweeps_in,
)
from tests.sweeper.test_launch import sweep_of, tiny_spec

pytestmark = pytest.mark.slow
BATCH = 32  # per worker
MIDWAY = 10  # pre-training epochs of the job a fault strikes after its epoch 1


@pytest.fixture
def ray_cluster() -> Iterator[None]:
    """A private local cluster of 2 CPUs: the job's 2 workers take all of them (its Tune
    trial asks for none). `address="local"` never joins another process's cluster."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture
def two_nodes() -> Iterator[None]:
    """Two nodes of 1 CPU each: a job of 2 workers of {cpu: 1} runs only across both."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    yield
    ray.shutdown()
    cluster.shutdown()


def distributed_spec(tmp: Path, *, epochs: int = 2, max_failures: int = 0) -> Path:
    path = tiny_spec(tmp, name="dist")
    spec = yaml.safe_load(path.read_text())
    spec["pretrain"]["distributed"] = {"workers": 2}
    spec["pretrain"]["trial"]["data"]["batch_size"] = BATCH
    spec["pretrain"]["trial"]["optim"]["epochs"] = epochs
    spec["max_failures"] = max_failures
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def train_workers() -> list[int]:
    """Pids of this process's Ray Train workers (another cluster's are not under it)."""
    return ray_workers("ray::RayTrainWorker")


def per_trial_epochs(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    return assert_one_row_per_key(rows)


def test_a_two_worker_pretraining_runs_through_the_sweep_across_two_nodes(
    two_nodes: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each node has 1 CPU and each worker asks for 1: the job ran only if its workers were
    # placed on different nodes (the driver's Tune trial asks for no CPU).
    store = tmp_path / "store"
    assert main(["launch", str(distributed_spec(tmp_path)), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    sweep = sweep_of(out)

    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}, trials
    pre = trials["pretrain-mmcl"]
    # The row says how the job ran: 2 workers of {cpu: 1}, 32 pairs a worker, 64 a step.
    assert json.loads(pre["resources"]) == {
        "cpu": 1.0,
        "gpu": 0.0,
        "workers": 2,
        "batch_per_worker": BATCH,
        "batch_global": 2 * BATCH,
    }
    # The cleaning trials are one process each, as before.
    assert all(
        "workers" not in json.loads(r["resources"])
        for t, r in trials.items()
        if t != "pretrain-mmcl"
    )
    # It ran as a Ray Train job: the TorchTrainer's run folder of this trial.
    assert list((store / sweep / "ray" / "train").glob("pretrain-mmcl-*"))

    epochs = per_trial_epochs(read_epochs(store, [sweep]).to_pylist())
    assert epochs["pretrain-mmcl"] == [0, 1, 2]
    raw = Counter((r["trial_id"], r["epoch"]) for r in raw_rows(store / sweep, "epochs"))
    assert set(raw.values()) == {1}, raw  # rank 1's reports never reached the store
    rows = [r for r in read_epochs(store, [sweep]).to_pylist() if r["stage"] == "pretrain"]
    assert all(r["n_eval"] and r["n_eval"] > 0 for r in rows)  # rank 0's measurements
    # Selection took the job's model into cleaning.
    assert pre["selected_epoch"] in (1, 2)
    clean = [t for t in epochs if t.startswith("clean-")]
    assert len(clean) == 2 and all(epochs[t] == [0, 1, 2] for t in clean)
    start = trials[clean[0]]["start_checkpoint"]
    assert start and (store / start).is_file()
    assert f"epoch-{pre['selected_epoch']:03d}" in start


def test_a_job_that_loses_a_worker_resumes_after_its_last_epoch(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    # One retry. Under load, one full-suite run saw the retry's Train workers lose their
    # placement group as the job started (a ControllerError); the trial now starts the job
    # again itself (sweeper.ray_backend.distributed.lost_at_start), not spending this retry.
    spec = distributed_spec(tmp_path, epochs=MIDWAY, max_failures=1)
    before = sweeps_in(store)

    def midway() -> bool:
        rows = stored_epochs(store, new_sweep(store, before))
        done = any(r["stage"] == "pretrain" and r["epoch"] >= 1 for r in rows)
        return done and resume_states(store, before) >= 1 and len(train_workers()) == 2

    def kill_one_worker() -> int:
        victim = train_workers()[-1]
        os.kill(victim, signal.SIGKILL)
        return victim

    killer = Meanwhile(midway, kill_one_worker, "the job to store its epoch 1")
    killer.start()
    rc = main(["launch", str(spec), "--store", str(store)])
    killer.check()
    out = capsys.readouterr().out
    errors = [(r["status"], r["error"]) for r in raw_rows(store / sweep_of(out), "trials")]
    assert rc == 0, f"{out}\n{errors}"
    sweep = sweep_of(out)

    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}, trials
    retried = [
        r
        for r in raw_rows(store / sweep, "trials")
        if (r["error"] or "").startswith("retrying after:")
    ]
    assert retried and {r["trial_id"] for r in retried} == {"pretrain-mmcl"}, retried
    resumed = re.search(r"\[pretrain\] pretrain-mmcl resumed after epoch (\d+)", out)
    assert resumed and 1 <= int(resumed.group(1)) < MIDWAY, out
    epochs = per_trial_epochs(read_epochs(store, [sweep]).to_pylist())
    assert epochs["pretrain-mmcl"] == list(range(MIDWAY + 1))
    # The retry replayed the epochs before its resume point: still one row each.
    raw = Counter((r["trial_id"], r["epoch"]) for r in raw_rows(store / sweep, "epochs"))
    assert set(raw.values()) == {1}, raw


def test_cleaning_trials_may_be_two_worker_jobs_too(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`clean.distributed`: each CleanCLIP trial (MMCL + in-modal SSL, whose features are
    gathered across ranks) runs as a 2-worker job; one process pre-trains as before."""
    path = tiny_spec(tmp_path, name="distclean")
    spec = yaml.safe_load(path.read_text())
    spec["clean"]["distributed"] = {"workers": 2}
    spec["clean"]["grid"] = {"lr": [1e-3]}  # one job: each takes both CPUs, so they queue
    spec["clean"]["trial"]["data"]["batch_size"] = 16
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    store = tmp_path / "store"
    assert main(["launch", str(path), "--store", str(store)]) == 0
    sweep = sweep_of(capsys.readouterr().out)

    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}, trials
    clean = sorted(t for t in trials if t.startswith("clean-"))
    assert len(clean) == 1
    for t in clean:
        res = json.loads(trials[t]["resources"])
        assert (res["workers"], res["batch_per_worker"], res["batch_global"]) == (2, 16, 32)
        assert list((store / sweep / "ray" / "train").glob(f"{t}-*")), t
    assert "workers" not in json.loads(trials["pretrain-mmcl"]["resources"])
    rows = read_epochs(store, [sweep]).to_pylist()
    epochs = per_trial_epochs(rows)
    assert all(epochs[t] == [0, 1, 2] for t in clean), epochs
    raw = Counter((r["trial_id"], r["epoch"]) for r in raw_rows(store / sweep, "epochs"))
    assert set(raw.values()) == {1}, raw
    cleaned = [r for r in rows if r["trial_id"] in clean and r["epoch"] > 0]
    # Rank 0 measured every epoch, and both losses of CleanCLIP were computed.
    assert all(r["n_eval"] and r["loss_mmcl"] and r["loss_ssl"] for r in cleaned), cleaned
