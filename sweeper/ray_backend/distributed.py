"""A data-parallel trial: a Tune function trainable that builds and fits a Ray Train job.

The pattern Ray Train V2 documents for Tune + Train (`Tuner(TorchTrainer)` is deprecated):
the Tune trial runs a `TorchTrainer` of `workers` workers, each asking the stage's
per-worker resources, NCCL between GPUs and gloo on CPU (TorchTrainer's default backend
for `use_gpu`). Every worker runs the trial's payload (`sweeper.trialrun.run_payload`) as
one rank of `trainers.distributed`; `ray.train.report` is collective in Train V2 (every
rank calls it as often), and `TuneReportCallback` forwards rank 0's metrics to the Tune
trial as its results. Rank 0's metrics are the very dict a one-process trial hands
`tune.report`, so the driver's forwarder stores each epoch once, by the same path.

The Tune trial itself only waits on the job: it asks no CPU or GPU, so a stage whose job
needs every CPU of the cluster still schedules (a Tune request must ask for something; it
asks for a little of Ray's `memory` resource, which the workers do not ask for).
Its retries are Tune's (`max_failures` of the stage); Train's own are off, so a failed job
fails its trial once, and the retry resumes from the trial's resume state like any trial.
One exception: a job whose worker group dies before training starts (a Train worker's
placement group removed under it, seen once under load right after a retry) is a start-up
failure, which Ray retries without limit when it catches it in time; Train 2.60 lets the
case where it happens at launch through as a `ControllerError`, and the trial retries the
job itself, up to `START_RETRIES` times, without spending the stage's `max_failures`,
after removing the failed job's placement group, which Train leaves behind in that case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from sweeper.cluster import holds, ray_name
from sweeper.spec_distributed import WORKERS

# What the Tune trial of a distributed job reserves: 64 MiB of Ray's `memory` resource,
# which a node offers whether or not its CPUs are all taken by the job's workers.
DRIVER_REQUEST = {"memory": float(64 * 2**20)}
START_RETRIES = 2


def distributed_trainable(
    workers: int, per_worker: Mapping[str, float], storage: Path
) -> Callable[[dict[str, Any]], None]:
    """The Tune trainable whose trials are each a TorchTrainer of `workers` x `per_worker`."""
    resources = {ray_name(k): float(v) for k, v in per_worker.items() if float(v) > 0}
    use_gpu = resources.get("GPU", 0.0) > 0
    train_storage = str((storage / "train").resolve())

    def distributed_trial(config: dict[str, Any]) -> None:
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        from ray.tune.integration.ray_train import TuneReportCallback

        from sweeper.ray_backend import trial_payload

        payload = trial_payload(config)

        def job() -> Any:
            return TorchTrainer(
                _worker_loop,
                train_loop_config={"payload": payload, "use_gpu": use_gpu},
                scaling_config=ScalingConfig(
                    num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources
                ),
                run_config=RunConfig(
                    # One name per attempt: Train V2 would take an existing run's state.
                    name=f"{payload['trial_id']}-{int(time.time() * 1000)}",
                    storage_path=train_storage,
                    failure_config=FailureConfig(max_failures=0),
                    callbacks=[TuneReportCallback()],
                ),
            )

        fit_retrying_start(job, payload["trial_id"])

    return tune.with_resources(distributed_trial, dict(DRIVER_REQUEST))


def fit_retrying_start(job: Callable[[], Any], label: str) -> Any:
    """Fit the trainer `job()` builds; when its workers die as it starts (`lost_at_start`),
    build and fit a new one, up to `START_RETRIES` times. Any other failure, or the last
    start-up death, is raised as it came; each start-up death's placement group is
    released first (`release_placement_group`)."""
    for attempt in range(START_RETRIES + 1):
        try:
            return job().fit()
        except Exception as err:  # noqa: BLE001 - only start-up deaths are retried
            if not lost_at_start(err):
                raise
            # Released on the last death too: the trial's own retry needs the resources.
            released = release_placement_group(err)
            then = (
                f"starting it again ({attempt + 1} of {START_RETRIES})"
                if attempt < START_RETRIES
                else "no restarts left"
            )
            print(
                f"{label}: the job's workers died as it started ({_first_line(err)}); "
                f"{released}; {then}",
                flush=True,
            )
            if attempt == START_RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def release_placement_group(err: BaseException) -> str:
    """Remove the placement group of the Train worker whose death `err` reports, and say
    what was done. Train 2.60 leaks it: the worker group that failed at launch is never
    handed to the controller, which removes only the group it holds, and its cleaner
    stands down with the controller. The group lives on with the sweep's driver, holding
    the job's resources, and a new job would wait for them forever (Train retries a start
    that times out without limit). The group is found from the dead actor's own record in
    the GCS (Ray keeps no public lookup that works without the dashboard), and removed only
    when that actor is a Train worker, so no other trial's group can be touched."""
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    actor_id = getattr(getattr(err, "controller_failure", None), "actor_id", None)
    if not actor_id:
        return "the dead worker is not named, so its resources were left to Ray"
    try:
        from ray._private.state import state
        from ray.core.generated import gcs_pb2

        raw = state._connect_and_get_accessor().get_actor_info(ray.ActorID.from_hex(actor_id))
        record = gcs_pb2.ActorTableData.FromString(raw) if raw else None
        if record is None or record.class_name != "RayTrainWorker":
            return f"actor {actor_id} is not a Train worker, so no resources were released"
        group_id = ray.PlacementGroupID(record.placement_group_id)
        if group_id.is_nil():
            return f"worker {actor_id} had no placement group to release"
        remove_placement_group(PlacementGroup(group_id))
    except Exception as lookup:  # noqa: BLE001 - the restart goes ahead either way
        return (
            f"its placement group could not be released ({type(lookup).__name__}: {lookup}), "
            "so the new job may wait for resources"
        )
    return f"released its placement group {group_id.hex()}"


def lost_at_start(err: BaseException) -> bool:
    """Whether a failed `fit` is Train's controller losing a worker actor: a `ControllerError`
    whose cause is an actor's death (training-time deaths are `WorkerGroupError`s, and a
    user error in the training function is neither)."""
    from ray.exceptions import RayActorError
    from ray.train import ControllerError

    return isinstance(err, ControllerError) and isinstance(err.controller_failure, RayActorError)


def _first_line(err: BaseException) -> str:
    cause = getattr(err, "controller_failure", err)
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]


def _worker_loop(config: dict[str, Any]) -> None:
    """One rank of the job: the trial's payload, its records reported by every rank."""
    import ray.train
    import torch

    from sweeper.ray_backend import _quiet_sigterm_exit, trial_host
    from sweeper.trialrun import run_payload

    _quiet_sigterm_exit()
    rank = ray.train.get_context().get_world_rank()
    if config["use_gpu"] and torch.cuda.is_available():
        import ray.train.torch

        # Workers of one node may see each other's GPUs (NCCL's peer access); "cuda" in the
        # trainers is then this rank's own.
        torch.cuda.set_device(ray.train.torch.get_device())
    host = trial_host()

    def emit(kind: str, metrics: dict[str, Any]) -> None:
        # Collective: every rank reports each record; only rank 0's reaches the Tune trial.
        if rank == 0:
            ray.train.report({"_kind": kind, "host": host, **metrics})
        else:
            ray.train.report({"_kind": kind, "rank": rank})

    run_payload(config["payload"], emit)


def job_slots(
    resources: Mapping[str, float],
    max_concurrent: int | None,
    nodes: Sequence[Mapping[str, float]],
) -> int | None:
    """How many trials of a stage run at once: `max_concurrent`, and for a data-parallel
    stage no more jobs than the cluster holds together (a job's workers wait for all of
    them to be placed; more trials would only queue Train controllers)."""
    workers = int(resources.get(WORKERS, 1))
    if workers <= 1:
        return max_concurrent
    per = {k: float(v) for k, v in resources.items() if k != WORKERS and float(v) > 0}
    slots = max(1, sum(holds(n, per) for n in nodes) // workers)
    return slots if max_concurrent is None else min(slots, max_concurrent)
