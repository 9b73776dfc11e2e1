"""Screen trials that each evaluate a chunk of (shrink, sigma) points from one start model.

A shrink-and-perturb screen is 255 points, each one evaluation. As one Ray trial per point,
the scheduling and the start model's loading cost more than the evaluations themselves.
A chunk trial runs several points of one start model in one worker, one after another; the
start model is read once (`trainers.checkpoint` keeps it), and every point keeps its own
trial id, rows, outcome and status: the store cannot tell a chunked screen from another.

Chunks are sized so that each trial slot of the cluster gets about `PER_SLOT` of them (the
stage still ends with every slot busy, and a lost chunk re-runs few points), at most
`MOST` points each. A stage with a scheduler is never chunked: a scheduler decides per
trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

POINTS = "points"  # a chunk payload's points, each a whole point payload
# A chunk's reports go to Tune together, at most every BATCH_S seconds: each `tune.report`
# of a function trainable waits for the driver's loop to take it, a round trip that cost
# about as much as a point's evaluation (bench/bench_screen.py). The forwarder unpacks them.
BATCH = "batch"
BATCH_ITEMS = "_items"
BATCH_S = 2.0
PER_SLOT = 4
MOST = 32


def slots(resources: Mapping[str, float], nodes: Sequence[Mapping[str, float]]) -> int:
    """How many trials asking `resources` the nodes hold at once."""
    total = 0
    for node in nodes:
        fits = [
            math.floor(node.get({"cpu": "CPU", "gpu": "GPU"}.get(k, k), 0.0) / v + 1e-9)
            for k, v in resources.items()
            if v > 0
        ]
        total += min(fits) if fits else 1
    return max(1, total)


def chunk_size(n_points: int, n_slots: int) -> int:
    if n_points <= n_slots:
        return 1
    return max(1, min(MOST, math.ceil(n_points / (n_slots * PER_SLOT))))


def make_chunks(payloads: list[dict[str, Any]], size: int, stage: str) -> list[dict[str, Any]]:
    """The payloads as chunk payloads of up to `size` points sharing a start model (a
    single point stays as it is)."""
    if size <= 1:
        return payloads
    by_start: dict[Any, list[dict[str, Any]]] = {}
    for p in payloads:
        by_start.setdefault((p["config"].get("model") or {}).get("checkpoint"), []).append(p)
    out = []
    for points in by_start.values():
        for i in range(0, len(points), size):
            part = points[i : i + size]
            if len(part) == 1:
                out.append(part[0])
                continue
            first = part[0]["trial_id"]
            out.append({**part[0], "trial_id": f"{stage}-chunk-{first}", POINTS: part})
    return out


def points_of(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The point payloads a trial runs: a chunk's points, or the payload itself."""
    return list(payload.get(POINTS) or [payload])


class Batched:
    """`emit` for a chunk's points: buffers (kind, metrics) and sends them as one report of
    kind BATCH when BATCH_S has passed since the last send, and on `flush` (chunk end)."""

    def __init__(self, emit: Callable[[str, dict[str, Any]], None], every_s: float = BATCH_S):
        self.emit = emit
        self.every_s = every_s
        self.items: list[dict[str, Any]] = []
        self.sent = time.monotonic()

    def __call__(self, kind: str, metrics: dict[str, Any]) -> None:
        self.items.append({"_kind": kind, **metrics})
        if time.monotonic() - self.sent >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.items:
            items, self.items = self.items, []
            self.emit(BATCH, {BATCH_ITEMS: items})
        self.sent = time.monotonic()


def unbatched(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The reports a Tune result carries: a BATCH's items (each with the batch's host), or
    the result itself."""
    if result.get("_kind") != BATCH:
        return [result]
    host = {"host": result["host"]} if "host" in result else {}
    return [{**host, **item} for item in result[BATCH_ITEMS]]
