"""`distributed: {workers: N}` without Ray: the spec option, the stage plan and its saved
form, the request a cluster must hold (N workers over its nodes), how many jobs run at
once, what a trial row records, and the pre-training cache key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from sweeper.cluster import ClusterInfo, check_stages, fit_request
from sweeper.errors import ClusterError, SpecError
from sweeper.payloads import trial_resources
from sweeper.plan import plan_file
from sweeper.plan_io import plan_from_dict
from sweeper.ray_backend.distributed import job_slots
from sweeper.resources import stage_resources
from tests.sweeper.test_launch import tiny_spec


def info(*nodes: dict[str, float]) -> ClusterInfo:
    return ClusterInfo(dashboard_url=None, nodes=tuple(nodes), started_here=False)


def spec_with(tmp: Path, pretrain: dict, clean: dict | None = None) -> Path:
    path = tiny_spec(tmp)
    spec = yaml.safe_load(path.read_text())
    spec["pretrain"].update(pretrain)
    spec["clean"].update(clean or {})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_the_option_plans_a_stage_of_n_worker_jobs(tmp_path: Path) -> None:
    _, plan = plan_file(spec_with(tmp_path, {"distributed": {"workers": 2}}))
    stages = {s.name: s for s in plan.stages}
    assert stages["pretrain"].workers == 2
    assert stages["clean"].workers == 1  # only the stage that asks
    # The request: the (embedded) per-worker resources, and the workers.
    asked = stage_resources(plan, info({"CPU": 2.0}))
    assert asked["pretrain"] == {"cpu": 1.0, "gpu": 0.0, "workers": 2.0}
    assert asked["clean"] == {"cpu": 1.0, "gpu": 0.0}
    # A saved plan keeps the workers; one saved before the option runs one process.
    raw = json.loads(json.dumps(dataclasses.asdict(plan), default=str))
    assert plan_from_dict(raw).stages[0].workers == 2
    for s in raw["stages"]:
        s.pop("workers")
    assert {s.workers for s in plan_from_dict(raw).stages} == {1}


@pytest.mark.parametrize(
    ("option", "why"), [({"workers": 0}, "workers: must be >= 1 (got 0)"), ({"nodes": 2}, "nodes")]
)
def test_a_bad_option_is_refused_naming_the_field(tmp_path: Path, option: dict, why: str) -> None:
    with pytest.raises(SpecError) as err:
        plan_file(spec_with(tmp_path, {"distributed": option}))
    assert "pretrain.distributed" in str(err.value) and why in str(err.value)


def test_a_job_of_workers_may_span_nodes_but_must_fit_in_them() -> None:
    job = {"cpu": 4.0, "gpu": 1.0, "workers": 8.0}
    two_boxes = info({"CPU": 32.0, "GPU": 4.0}, {"CPU": 32.0, "GPU": 4.0})
    check_stages([("pretrain", job, "pretrain.resources")], two_boxes)  # 4 + 4 workers
    one_box = info({"CPU": 32.0, "GPU": 4.0})
    with pytest.raises(ClusterError) as err:
        check_stages([("pretrain", job, "pretrain.resources")], one_box)
    assert "8 workers of {'cpu': 4.0, 'gpu': 1.0}" in str(err.value)
    # A node's CPUs limit it too: 2 workers of 4 CPUs on a 6-CPU, 4-GPU node.
    with pytest.raises(ClusterError):
        check_stages([("p", {"cpu": 4.0, "workers": 2.0}, "f")], info({"CPU": 6.0, "GPU": 4.0}))
    # --fit-resources cuts each worker to the biggest node and keeps the job's workers.
    assert fit_request({"cpu": 8.0, "gpu": 1.0, "workers": 2.0}, info({"CPU": 2.0})) == {
        "cpu": 2.0,
        "workers": 2.0,
    }


def test_no_more_jobs_at_once_than_the_cluster_holds() -> None:
    nodes = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 16.0, "GPU": 4.0}]
    per = {"cpu": 4.0, "gpu": 1.0}
    assert job_slots({**per, "workers": 4.0}, None, nodes) == 2
    assert job_slots({**per, "workers": 8.0}, None, nodes) == 1
    assert job_slots({**per, "workers": 4.0}, 1, nodes) == 1  # the stage's own limit wins
    assert job_slots(per, None, nodes) is None  # a plain stage: unchanged


def test_the_trial_row_records_workers_and_both_batches() -> None:
    config = {"data": {"batch_size": 128}}
    assert trial_resources({"cpu": 8.0, "gpu": 1.0, "workers": 8.0}, config) == {
        "cpu": 8.0,
        "gpu": 1.0,
        "workers": 8,
        "batch_per_worker": 128,
        "batch_global": 1024,
    }
    assert trial_resources({"cpu": 1.0}, config) == {"cpu": 1.0}  # as before the option


def test_a_distributed_pretraining_is_another_cached_model(tmp_path: Path) -> None:
    _, plain = plan_file(spec_with(tmp_path, {}))
    _, one = plan_file(spec_with(tmp_path, {"distributed": {"workers": 1}}))
    _, two = plan_file(spec_with(tmp_path, {"distributed": {"workers": 2}}))
    # One worker is the plain trial: its cache key stays; two workers train another model.
    assert plain.pretrain_cache_keys == one.pretrain_cache_keys
    assert plain.pretrain_cache_keys["mmcl"] != two.pretrain_cache_keys["mmcl"]


def test_workers_that_would_share_a_gpu_are_refused(tmp_path: Path) -> None:
    path = spec_with(tmp_path, {"distributed": {"workers": 4}})
    spec = yaml.safe_load(path.read_text())
    spec["embedded"]["resources"] = {"cpu": 1, "gpu": 0.5}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError) as err:
        plan_file(path)
    assert "pretrain.distributed: 4 workers with embedded.resources.gpu 0.5" in str(err.value)


def test_only_a_worker_lost_as_the_job_starts_is_retried_inside_the_trial() -> None:
    """Train 2.60 reports a worker actor that dies while the controller starts the group (its
    placement group removed under it) as a ControllerError caused by the actor's death: the
    trial starts the job again. A worker lost in training (WorkerGroupError, the stage's
    `max_failures` decide) and a controller bug of another kind are not retried here."""
    from ray.exceptions import ActorDiedError
    from ray.train import ControllerError, WorkerGroupError

    from sweeper.ray_backend.distributed import lost_at_start

    assert lost_at_start(ControllerError(ActorDiedError()))
    assert not lost_at_start(WorkerGroupError("rank 1 died", {1: ActorDiedError()}))
    assert not lost_at_start(ControllerError(ValueError("a bad scaling decision")))
    assert not lost_at_start(RuntimeError("the training function raised"))
