"""What the sweeper knows of a cluster without Ray: its nodes' resources, whether a stage
fits, whether anything answers at an address, and what a failed join means.

`sweeper.ray_backend` fills `ClusterInfo` from Ray and re-exports these; nothing here imports
Ray, so the checks run (and are tested) before a cluster is started or joined.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sweeper.errors import ClusterError

# A data-parallel trial's worker count in a request (`sweeper.spec_distributed.WORKERS`).
WORKERS = "workers"


@dataclass(frozen=True)
class ClusterInfo:
    dashboard_url: str | None
    nodes: tuple[dict[str, float], ...]  # total resources of each alive node
    started_here: bool

    @property
    def total_gpus(self) -> float:
        return sum(n.get("GPU", 0.0) for n in self.nodes)


PROBE_TIMEOUT_S = 10.0


def probe_address(address: str) -> None:
    """Fail in seconds when nothing listens at `address`: Ray itself retries for minutes."""
    if address in ("auto", "local"):  # Ray's words for "find one" and "start one here"
        return
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(
            f"cluster address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379): fix "
            "--address or RAY_ADDRESS"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        raise ClusterError(
            f"no Ray cluster answers at {address!r} ({err.strerror or err}): start one there "
            "(`ray start --head`), fix --address / RAY_ADDRESS, or leave both out to run on "
            "a local cluster"
        ) from None


def join_error(address: str | None, err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0][:300] if text else type(err).__name__
    if address:
        # Something listens there (probe_address passed): a cluster with token auth that
        # refuses this driver's token fails this way, and Ray's exception does not say so.
        token = "is set" if os.environ.get("RAY_AUTH_TOKEN") else "is not set"
        return (
            f"cannot join the Ray cluster at {address!r}: {first}. Something listens there, "
            f"so check the token: RAY_AUTH_TOKEN {token} and must hold the cluster's token "
            "(`ray get-auth-token` on its head node); also check that --address / "
            "RAY_ADDRESS is the head's GCS port and the Ray versions match"
        )
    return f"cannot start a local Ray cluster: {first}"


def local_machine() -> ClusterInfo:
    """The one node a local cluster would have, as Ray would count it, without starting it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    else:
        gpus = len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])
    node = {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}
    return ClusterInfo(dashboard_url=None, nodes=(node,), started_here=False)


def check_stages(
    requests: Sequence[tuple[str, Mapping[str, float], str]], info: ClusterInfo
) -> None:
    """Every (stage, request per trial, spec field) that no node could ever host, in one
    error: a trial no node can hold would wait in PENDING forever."""
    bad = [(s, r, f) for s, r, f in requests if not _fits(r, info)]
    if not bad:
        return
    nodes = ", ".join(f"{{cpu: {n.get('CPU', 0):g}, gpu: {n.get('GPU', 0):g}}}" for n in info.nodes)
    lines = [f"  stage {s!r} asks for {_shown(r)} per trial: lower {f}" for s, r, f in bad]
    raise ClusterError(
        f"{len(bad)} stage(s) ask for more than any node of the cluster has (nodes: "
        f"{nodes or 'none'}):\n"
        + "\n".join(lines)
        + "\nin the search space (or as an override), join a bigger cluster with --address, "
        "or pass --fit-resources to run each stage on the biggest node as it is"
    )


def _shown(request: Mapping[str, float]) -> str:
    if WORKERS not in request:
        return str(dict(request))
    per = {k: v for k, v in request.items() if k != WORKERS}
    n = int(request[WORKERS])
    return f"{n} workers of {per} (distributed.workers: {n}, on any nodes with room)"


def biggest_node(info: ClusterInfo) -> dict[str, float]:
    """The node with the most GPUs, then CPUs, as {cpu, gpu}: where a fitted trial runs."""
    if not info.nodes:
        return {"cpu": 0.0, "gpu": 0.0}
    node = max(info.nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)))
    return {"cpu": node.get("CPU", 0.0), "gpu": node.get("GPU", 0.0)}


def fit_request(request: Mapping[str, float], info: ClusterInfo) -> dict[str, float]:
    """`request` as it is when some node can hold it, else cut to the biggest node: each
    of cpu and gpu at most that node's (a GPU request on a node without GPUs is dropped:
    the trial runs on CPU). Other resources (memory, custom) are kept as asked."""
    req = {k: float(v) for k, v in request.items()}
    if _fits(req, info):
        return req
    node = biggest_node(info)
    out = {}
    for key, value in req.items():
        if key in node:  # the job keeps its workers; each one is cut to the node
            value = min(value, node[key])
            if value <= 0:
                continue
        out[key] = value
    return out


def _fits(request: Mapping[str, float], info: ClusterInfo) -> bool:
    """Whether some node holds `request`; with `workers` (a data-parallel trial, the rest
    per worker), whether the nodes together hold that many workers, each whole on one
    node: Ray Train places the job's workers on whichever nodes have room."""
    per = {k: v for k, v in request.items() if k != WORKERS and v > 0}
    workers = int(request.get(WORKERS, 1))
    return sum(holds(node, per) for node in info.nodes) >= workers


def holds(node: Mapping[str, float], per: Mapping[str, float]) -> int:
    """How many copies of `per` fit on `node` at once."""
    counts = [int(node.get(ray_name(k), 0.0) // v + 1e-9) for k, v in per.items()]
    return min(counts) if counts else 1 << 30


def ray_name(key: str) -> str:
    return {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}.get(key, key)
