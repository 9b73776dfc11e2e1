"""The resources each stage's trials ask for, as a given cluster will run them.

A stage's request comes from its search space (`<stage>.resources`, or `embedded.resources`
on the embedded profile). Two rules change it, and each is said when it applies:
- the embedded profile drops a GPU fraction on a cluster without GPUs (it is meant to run
  every search space on a CPU);
- `--fit-resources` cuts every request that no node could hold down to the biggest node
  (so `profile=real` can be tried on a laptop); without it such a stage is refused, every
  one of them in one error, before anything runs.
"""

from __future__ import annotations

from sweeper import cluster
from sweeper.errors import ClusterError
from sweeper.plan import StagePlan, SweepPlan
from sweeper.spec_distributed import WORKERS


def stage_resources(
    plan: SweepPlan, info: cluster.ClusterInfo, *, fit: bool = False
) -> dict[str, dict[str, float]]:
    """Each stage's request per trial on `info`; raises `ClusterError` naming every stage
    no node can hold (unless `fit`)."""
    asked = {s.name: _embedded_cpu_only(s, info, plan.profile) for s in plan.stages}
    if fit:
        return {name: cluster.fit_request(r, info) for name, r in asked.items()}
    cluster.check_stages([(s.name, asked[s.name], _field(s, plan)) for s in plan.stages], info)
    return asked


def fitted_line(plan: SweepPlan, info: cluster.ClusterInfo) -> str | None:
    """The one line `--fit-resources` prints when it changed a request; None if it did not."""
    changed = []
    for stage in plan.stages:
        asked = _embedded_cpu_only(stage, info, plan.profile)
        runs = cluster.fit_request(asked, info)
        if runs != asked:
            changed.append(f"{stage.name} {_fmt(asked)} -> {_fmt(runs)}")
    if not changed:
        return None
    return (
        f"resources fitted to this cluster's biggest node {_fmt(_node(info))} "
        f"(--fit-resources): " + "; ".join(changed)
    )


def check_feasible(plan: SweepPlan, address: str | None, *, fit: bool = False) -> str | None:
    """What `--dry-run` says of the cluster, without contacting one: with `address`, that
    the resources are checked when `launch` joins it; without, what a local launch on this
    machine would do (refuse, or fit with `fit`), as a warning: the plan may be meant for
    a cluster."""
    if address:
        return (
            f"resources not checked: --dry-run does not contact the cluster at {address}; "
            "`launch` checks every stage against its nodes before it writes anything"
        )
    local = cluster.local_machine()
    if fit:
        line = fitted_line(plan, local)
        return f"a local launch on this machine would run with {line}" if line else None
    try:
        stage_resources(plan, local)
    except ClusterError as err:
        return f"a local launch on this machine would refuse it: {err}"
    return None


def announce_cpu_only(stage: StagePlan, info: cluster.ClusterInfo, profile: str) -> None:
    """Say, at the start of a stage, that the embedded profile dropped its GPU fraction."""
    gpu = float(stage.resources.get("gpu", 0))
    if gpu > 0 and "gpu" not in _embedded_cpu_only(stage, info, profile):
        print(
            f"[{stage.name}] no GPU in the cluster: the embedded profile runs these trials "
            f"on cpu: {float(stage.resources.get('cpu', 1)):g} (asked gpu: {gpu:g})",
            flush=True,
        )


def _embedded_cpu_only(
    stage: StagePlan, info: cluster.ClusterInfo, profile: str
) -> dict[str, float]:
    res = {k: float(v) for k, v in stage.resources.items()}
    if res.get("gpu", 0) > 0 and info.total_gpus == 0 and profile == "embedded":
        # The embedded default runs every search space as written on a CPU-only machine:
        # the GPU fraction is dropped, the CPU request stays.
        res.pop("gpu")
    workers = getattr(stage, "workers", 1)
    if workers > 1:  # the request above is per worker (`sweeper.spec_distributed`)
        res[WORKERS] = float(workers)
    return res


def _field(stage: StagePlan, plan: SweepPlan) -> str:
    return "embedded.resources" if plan.profile == "embedded" else f"{stage.name}.resources"


def _node(info: cluster.ClusterInfo) -> dict[str, float]:
    return cluster.biggest_node(info)


def _fmt(request: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in request.items()) + "}"
