"""A Train job whose worker dies as the job starts is started again inside its trial.

The death is real: the job's config carries an object whose unpickling ends a worker's
process, and a Train worker unpickles its training function (config included) in
`run_train_fn`, the launch step that Train 2.60 leaves outside its start-up retry. So
`fit()` fails with the very `ControllerError(ActorDiedError)` seen under load, and
`fit_retrying_start` must build and fit a new job; a death on every start is raised after
`START_RETRIES` restarts, and a failure of another kind is not retried at all.

Train 2.60 leaves such a job's placement group in place, holding both CPUs of this
cluster: the new job gets them only because the failed job's group is removed. Train
retries a start that times out without limit by default, so the jobs here allow one
controller failure: a leaked group fails the test instead of hanging it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _load_pill(marker: str, always: bool) -> None:
    """Unpickling a `DiesOnLoad` in a Train worker: the first load (every load, with
    `always`) ends the process, as a worker lost to its node would; later loads, and the
    controller's (it unpickles the config too, before any worker exists), give None."""
    from ray.train.v2._internal.execution.context import get_train_context

    try:
        get_train_context()
    except RuntimeError:
        return None
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    except FileExistsError:
        if not always:
            return None
    os._exit(1)


class DiesOnLoad:
    def __init__(self, marker: Path, always: bool = False) -> None:
        self.marker, self.always = str(marker), always

    def __reduce__(self) -> tuple[Any, tuple[str, bool]]:
        return (_load_pill, (self.marker, self.always))


def _loop(config: dict[str, Any]) -> None:
    import ray.train

    if config.get("fail"):
        raise ValueError("the training function raised")
    rank = ray.train.get_context().get_world_rank()
    (Path(config["out"]) / f"trained-rank-{rank}").touch()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    # `address="local"`: a new cluster, never another test's that the machine runs.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def jobs(tmp: Path, config: dict[str, Any]) -> tuple[list[int], Any]:
    """A job builder that counts the jobs it builds: two CPU workers running `_loop`."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    built: list[int] = []

    def job() -> TorchTrainer:
        built.append(len(built))
        return TorchTrainer(
            _loop,
            train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(
                name=f"attempt-{len(built)}",
                storage_path=str(tmp / "train"),
                failure_config=FailureConfig(max_failures=0, controller_failure_limit=1),
            ),
        )

    return built, job


def test_a_worker_that_dies_at_launch_gets_a_new_job(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    from sweeper.ray_backend.distributed import fit_retrying_start

    built, job = jobs(tmp_path, {"pill": DiesOnLoad(tmp_path / "died"), "out": str(tmp_path)})
    result = fit_retrying_start(job, "trial-7")
    assert (tmp_path / "died").exists(), "the first job's worker did not die"
    assert len(built) == 2
    assert result.error is None
    assert sorted(p.name for p in tmp_path.glob("trained-*")) == [
        "trained-rank-0",
        "trained-rank-1",
    ]
    out = capsys.readouterr().out
    assert "trial-7: the job's workers died as it started" in out
    assert "released its placement group" in out and "(1 of 2)" in out
    # The failed job's group (released here) and the finished job's (by Train).
    assert [g["state"] for g in ray.util.placement_group_table().values()] == ["REMOVED"] * 2


def test_a_death_on_every_start_is_raised_after_the_restarts(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray.train import ControllerError

    from sweeper.ray_backend import distributed
    from sweeper.ray_backend.distributed import fit_retrying_start

    # One restart instead of two: each failed start costs the better part of a minute here.
    monkeypatch.setattr(distributed, "START_RETRIES", 1)
    built, job = jobs(tmp_path, {"pill": DiesOnLoad(tmp_path / "died", always=True)})
    with pytest.raises(ControllerError):
        fit_retrying_start(job, "trial-8")
    assert len(built) == 2
    # The last failed job's group is released too, for the trial's own retry.
    assert {g["state"] for g in ray.util.placement_group_table().values()} == {"REMOVED"}


def test_a_training_error_is_not_retried(ray_cluster: None, tmp_path: Path) -> None:
    from ray.train import WorkerGroupError

    from sweeper.ray_backend.distributed import fit_retrying_start

    built, job = jobs(tmp_path, {"fail": True})
    with pytest.raises(WorkerGroupError):
        fit_retrying_start(job, "trial-9")
    assert len(built) == 1
