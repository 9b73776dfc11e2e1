"""A stage's `distributed:` option: each trial one data-parallel job of `workers` processes.

    pretrain:
      resources: {cpu: 8, gpu: 1}   # per worker
      distributed: {workers: 8}     # 8 GPUs, on one node or several

The trial runs as a Ray Train `TorchTrainer` inside its Tune trial (`sweeper.ray_backend.
distributed`), NCCL on GPUs and gloo on CPU; the trainers run it as `trainers.distributed`.
`resources` stay per worker (the request is `workers` x them, spread over the nodes as they
fit), and `data.batch_size` is per worker too: the global batch is `workers` x it. Both
batches and the worker count are recorded in the trial row's `resources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The key the worker count travels under in a stage's resource request and a trial row's
# `resources` (absent, as before this option, for a one-process trial).
WORKERS = "workers"


class DistributedSpec(BaseModel):
    """`workers`: processes of one trial's data-parallel job (1: a plain trial)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(default=1, ge=1, le=4096)


def workers_of(section: object) -> int:
    """The worker count a stage section (`PretrainSpec`, `CleanSpec`, ...) asks for."""
    spec = getattr(section, "distributed", None)
    return spec.workers if spec is not None else 1


def distributed_problems(spec: Any) -> list[tuple[str, str]]:
    """A data-parallel stage whose workers would share a GPU: NCCL refuses two ranks on
    one device, so a job's worker takes a whole GPU (or none: gloo on CPU)."""
    problems = []
    for name in ("pretrain", "clean"):
        section = getattr(spec, name, None)
        if section is None or workers_of(section) <= 1:
            continue
        res = spec.embedded.resources if spec.profile == "embedded" else section.resources
        if 0 < res.gpu < 1:
            field = "embedded.resources" if spec.profile == "embedded" else f"{name}.resources"
            problems.append(
                (
                    f"{name}.distributed",
                    f"{workers_of(section)} workers with {field}.gpu {res.gpu:g}: the workers "
                    "of a job cannot share a GPU (NCCL); ask gpu: 1 (per worker) or leave "
                    "out `distributed`",
                )
            )
    return problems


def one_process(resources: Mapping[str, Any]) -> dict[str, Any]:
    """`resources` of a stage or a trial row without the data-parallel part: what a trial
    that does not train (a `bn_only` baseline beside distributed cleaning) runs with."""
    drop = (WORKERS, "batch_per_worker", "batch_global")
    return {k: v for k, v in resources.items() if k not in drop}


def batch_record(workers: int, batch_size: int | None) -> dict[str, int]:
    """What a distributed trial's row says of its batch: per worker, and over the job."""
    if workers <= 1 or batch_size is None:
        return {}
    return {"batch_per_worker": batch_size, "batch_global": batch_size * workers}
