"""What a Ray worker does with one trial payload (no Ray here: `emit` is handed in).

The payload is a planned trial (`sweeper.plan.TrialPlan` as a dict) whose config the driver
has completed (data paths, starting checkpoint, checkpoint directory).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from results.best import DEFAULT_THRESHOLD, best_of_rows
from sweeper.screen_chunks import POINTS, Batched
from trainers.errors import TrainerError
from trainers.reporter import EpochRecord

Emit = Callable[[str, dict[str, Any]], None]
# The objective of a trial that has no cleaning epoch yet: the worst point of the square.
NO_POINT = (0.0, 100.0)


class _Collect:
    def __init__(self, emit: Emit, threshold: float) -> None:
        self.emit = emit
        self.threshold = threshold
        self.records: list[EpochRecord] = []

    def report(self, record: EpochRecord) -> None:
        self.records.append(record)
        # Every result carries the trial's best point so far: Optuna reads it at the end,
        # and Tune insists that each result holds the searcher's metrics.
        acc, asr = best_point(self.records, self.threshold)
        self.emit("epoch", {**record.to_dict(), "objective_acc": acc, "objective_asr": asr})

    def replay(self, record: EpochRecord) -> None:
        """A resumed run's earlier epoch: the driver stores it only if it has not yet."""
        self.records.append(record)
        acc, asr = best_point(self.records, self.threshold)
        metrics = {**record.to_dict(), "objective_acc": acc, "objective_asr": asr}
        self.emit("epoch", {**metrics, "replayed": True})


def best_point(
    records: list[EpochRecord], threshold: float = DEFAULT_THRESHOLD
) -> tuple[float, float]:
    """What Optuna optimises per trial: its best cleaning epoch by the paper's success rule
    (`results.best.best_of_rows`), or, when no epoch gets under the threshold, its cleaning
    epoch of lowest ASR. Epoch 0 is the start model, never a candidate: were it one, every
    trial whose cleaning does not beat the start would report the same point."""
    return best_point_of_rows([r.to_dict() for r in records], threshold)


def best_point_of_rows(
    rows: list[dict[str, Any]], threshold: float = DEFAULT_THRESHOLD
) -> tuple[float, float]:
    """`best_point` of a trial's epoch rows (store rows or `EpochRecord.to_dict()`s)."""
    rows = [
        r
        for r in rows
        if int(r["epoch"]) >= 1 and r.get("clean_acc") is not None and r.get("asr") is not None
    ]
    if not rows:
        return NO_POINT
    best = best_of_rows(rows, threshold)
    if best is None:
        best = min(rows, key=lambda r: (r["asr"], -r["clean_acc"], r["epoch"]))
    return float(best["clean_acc"]), float(best["asr"])


def run_payload(payload: dict[str, Any], emit: Emit) -> None:
    """Run one trial; a chunk of screen points (`sweeper.screen_chunks`) runs each point in
    turn, every result tagged with its point's trial id (`_point`) and sent in batches."""
    if payload.get(POINTS):
        batched = Batched(emit)  # one report every BATCH_S, not two per point
        try:
            for point in payload[POINTS]:
                pid = point["trial_id"]
                run_payload(point, lambda kind, m, pid=pid: batched(kind, {**m, "_point": pid}))
        finally:
            batched.flush()  # what the points before a failure reported is kept
        return
    _run_one(payload, emit)


def _run_one(payload: dict[str, Any], emit: Emit) -> None:
    from sweeper.plan import apply_params
    from trainers.entries import ENTRYPOINTS

    config = payload["config"]
    if payload.get("params") and payload.get("search"):
        config = apply_params(config, payload["params"], payload.get("scaling"))
    threshold = float(payload.get("success_asr", DEFAULT_THRESHOLD))
    reporter = _Collect(emit, threshold)
    try:
        outcome = ENTRYPOINTS[payload["entry"]](config, reporter).to_dict()
    except TrainerError as err:
        # The trainers raise these on purpose for what a retry cannot fix (data that is not
        # there, a checkpoint of another architecture, a label that is not a class): the
        # trial fails now, with its message, instead of Ray retrying it max_failures times.
        frame = traceback.extract_tb(err.__traceback__)[-1]
        outcome = {
            "status": "failed",
            "reason": f"{type(err).__name__}: {err} (not retried: a retry cannot fix it; "
            f"raised at {frame.filename}:{frame.lineno})",
            "final_checkpoint": None,
            "epochs_done": len(reporter.records),
            "skipped": 0,
        }
    acc, asr = best_point(reporter.records, threshold)
    emit(
        "outcome",
        {
            **{k: outcome.get(k) for k in ("status", "reason", "final_checkpoint")},
            "epochs_done": outcome.get("epochs_done", 0),
            "skipped": outcome.get("skipped", 0),
            "objective_acc": acc,
            "objective_asr": asr,
        },
    )
