"""Driver-side handling of trial events: rows into the results store, progress on the terminal."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from results.best import DEFAULT_THRESHOLD
from results.store import StoreWriter

RECORD_FIELDS = (
    "epoch",
    "clean_acc",
    "clean_top5",
    "asr",
    "loss",
    "loss_mmcl",
    "loss_ssl",
    "loss_reg",
    "loss_cluster",
    "lr",
    "samples_seen",
    "wall_s",
    "checkpoint",
)
SUCCESS_ASR = DEFAULT_THRESHOLD


_last_stamp: datetime | None = None


def now() -> datetime:
    """UTC now, strictly increasing within this process: `written_at` decides which row of a
    key is the truth, so two rows of one trial must never share a timestamp."""
    global _last_stamp
    t = datetime.now(timezone.utc)
    if _last_stamp is not None and t <= _last_stamp:
        t = _last_stamp + timedelta(microseconds=1)
    _last_stamp = t
    return t


def epoch_row(
    sweep_id: str, payload: Mapping[str, Any], record: Mapping[str, Any]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sweep_id": sweep_id,
        "stage": payload["stage"],
        "trial_id": payload["trial_id"],
        "method": payload["method"],
        "objective": payload.get("objective"),
        "host": record.get("host") or socket.gethostname(),
        "written_at": now(),
    }
    row.update({k: record.get(k) for k in RECORD_FIELDS})
    for name, value in (payload.get("params") or {}).items():
        row[f"p_{name}"] = value
    return row


def trial_row(
    sweep_id: str,
    payload: Mapping[str, Any],
    status: str,
    *,
    error: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    selected_epoch: int | None = None,
    start_sha256: str | None = None,
) -> dict[str, Any]:
    return {
        "sweep_id": sweep_id,
        "trial_id": payload["trial_id"],
        "stage": payload["stage"],
        "method": payload["method"],
        "objective": payload.get("objective"),
        "status": status,
        "error": error,
        "params": json.dumps(payload.get("params") or {}, sort_keys=True, default=str),
        "resources": json.dumps(payload.get("resources") or {}, sort_keys=True),
        "start_checkpoint": payload["config"].get("model", {}).get("checkpoint"),
        "start_checkpoint_sha256": start_sha256,
        "selected_epoch": selected_epoch,
        "started_at": started_at,
        "ended_at": ended_at,
        "written_at": now(),
    }


@dataclass
class StoreEvents:
    """Implements `ray_backend.StageEvents`: buffers rows and flushes them on every tick."""

    writer: StoreWriter
    stage: str
    total: int
    out: TextIO = field(default_factory=lambda: sys.stdout)
    flush_rows: int = 256
    epochs: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    started_at: dict[str, datetime] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    best: tuple[float, str, int] | None = None
    _last_line: str = ""
    _last_print: float = 0.0
    _t0: float = field(default_factory=time.monotonic)

    @property
    def sweep_id(self) -> str:
        return self.writer.sweep_id

    def started(self, trial_id: str, payload: Mapping[str, Any]) -> None:
        self.started_at[trial_id] = now()
        self.status[trial_id] = "running"
        self.trials.append(trial_row(self.sweep_id, payload, "running", started_at=now()))

    def epoch(self, trial_id: str, payload: Mapping[str, Any], record: dict[str, Any]) -> None:
        self.epochs.append(epoch_row(self.sweep_id, payload, record))
        candidate = self.stage == "clean" and record["asr"] <= SUCCESS_ASR and record["epoch"] > 0
        if candidate and (self.best is None or record["clean_acc"] > self.best[0]):
            self.best = (record["clean_acc"], trial_id, record["epoch"])
        if len(self.epochs) >= self.flush_rows:
            self.flush()

    def finished(self, trial_id: str, payload: Mapping[str, Any], outcome: dict[str, Any]) -> None:
        status = str(outcome.get("status", "completed"))
        self.status[trial_id] = status
        self.outcomes[trial_id] = dict(outcome)
        self.trials.append(
            trial_row(
                self.sweep_id,
                payload,
                status,
                error=outcome.get("reason"),
                started_at=self.started_at.get(trial_id),
                ended_at=now(),
            )
        )
        self.flush()

    def failed(self, trial_id: str, payload: Mapping[str, Any], error: str) -> None:
        self.status[trial_id] = "failed"
        self.errors[trial_id] = error
        self.trials.append(
            trial_row(
                self.sweep_id,
                payload,
                "failed",
                error=error,
                started_at=self.started_at.get(trial_id),
                ended_at=now(),
            )
        )
        self.flush()

    def retrying(self, trial_id: str, payload: Mapping[str, Any], error: str) -> None:
        self.trials.append(
            trial_row(
                self.sweep_id,
                payload,
                "running",
                error=f"retrying after: {error}",
                started_at=self.started_at.get(trial_id),
            )
        )

    def tick(self) -> None:
        self.flush()
        self.progress()

    def flush(self) -> None:
        if self.epochs:
            rows, self.epochs = self.epochs, []
            self.writer.append_epochs(rows)
        if self.trials:
            rows, self.trials = self.trials, []
            self.writer.append_trials(rows)

    def counts(self) -> dict[str, int]:
        values = list(self.status.values())
        done = sum(v in ("completed", "diverged") for v in values)
        failed = sum(v == "failed" for v in values)
        running = sum(v == "running" for v in values)
        return {"done": done, "failed": failed, "running": running}

    def progress(self) -> None:
        c = self.counts()
        best = (
            ""
            if self.stage != "clean"
            else (
                f" | best clean_acc at ASR<={SUCCESS_ASR:g}%: {self.best[0]:.2f} "
                f"({self.best[1]}, epoch {self.best[2]})"
                if self.best
                else f" | no candidate at ASR<={SUCCESS_ASR:g}% yet"
            )
        )
        line = (
            f"[{self.stage}] {c['done']}/{self.total} done, {c['running']} running, "
            f"{c['failed']} failed{best}"
        )
        elapsed = time.monotonic() - self._t0
        if line != self._last_line or elapsed - self._last_print >= 30:
            print(f"{line} | {elapsed:.0f}s", file=self.out, flush=True)
            self._last_line = line
            self._last_print = elapsed
