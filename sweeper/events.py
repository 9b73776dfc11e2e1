"""Driver-side handling of trial events: rows into the results store, progress on the terminal."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from results.best import DEFAULT_THRESHOLD, is_success
from results.schema import PARAM_PREFIX, param_kind
from results.store import StoreWriter
from sweeper.payloads import ORIGIN
from sweeper.plan import SweepPlan
from sweeper.progress import StageProgress, format_eta, planned_epochs
from sweeper.retention import StageRetention
from sweeper.store_paths import in_store

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
    "skipped",
    "n_eval",
    "n_asr_eval",
    "n_classes",
    "asr_untriggered",
    "wall_s",
    "checkpoint",
)


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


def param_columns(plan: SweepPlan) -> dict[str, str]:
    """Every `p_` column the sweep's epoch rows can hold, with its one type, declared when
    the sweep starts (`StoreWriter(params=...)`): the grid params of every stage, each
    Optuna stage's params, and the screen's origin trials' (shrink, perturb_sigma). A clean
    trial after a screen also carries the screen's pick, already among the screen's."""
    values: dict[str, list[Any]] = {}
    for stage in plan.stages:
        for trial in stage.trials:
            for name, value in trial.params.items():
                values.setdefault(name, []).append(value)
        if stage.search is not None:
            for name, dist in stage.search.params.items():
                # float and int ranges are numbers; a categorical is what its choices are.
                choices = dist.get("choices") if dist.get("type") == "categorical" else None
                values.setdefault(name, []).extend(choices or [0.0])
        if stage.name == "screen":
            for name, value in ORIGIN.items():
                values.setdefault(name, []).append(value)
    return {f"{PARAM_PREFIX}{name}": param_kind(name, v) for name, v in sorted(values.items())}


def epoch_row(
    sweep_id: str,
    payload: Mapping[str, Any],
    record: Mapping[str, Any],
    store_root: Path | None = None,
) -> dict[str, Any]:
    """One epochs row; a checkpoint inside the store is recorded relative to the store's
    root, so a moved or copied store still finds its own files."""
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
    if store_root is not None:
        row["checkpoint"] = in_store(row["checkpoint"], store_root)
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
    store_root: Path | None = None,
) -> dict[str, Any]:
    start = payload["config"].get("model", {}).get("checkpoint")
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
        "start_checkpoint": in_store(start, store_root) if store_root else start,
        "start_checkpoint_sha256": payload.get("start_sha256"),
        "selected_epoch": selected_epoch,
        "started_at": started_at,
        "ended_at": ended_at,
        "written_at": now(),
    }


def selected_row(
    recorded: Mapping[str, Any] | None, fallback: dict[str, Any], selected_epoch: int
) -> dict[str, Any]:
    """A trial's row marked as the stage's selection: its latest recorded row (times, host,
    resources, params as they ran) with `selected_epoch` set, or `fallback` (a `trial_row`)
    when none was recorded. A fresh row would drop when and where the trial ran."""
    if recorded is None:
        return {**fallback, "selected_epoch": selected_epoch}
    return {**recorded, "selected_epoch": selected_epoch, "written_at": now()}


@dataclass
class StoreEvents:
    """Implements `ray_backend.StageEvents`: buffers rows and flushes them on every tick."""

    writer: StoreWriter
    stage: str
    total: int
    out: TextIO = field(default_factory=lambda: sys.stdout)
    flush_rows: int = 256
    threshold: float = DEFAULT_THRESHOLD
    epochs: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    started_at: dict[str, datetime] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    payloads: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    best: tuple[float, str, int] | None = None
    # A progress line is printed when the trial counts change, when only the running trials'
    # epochs changed at most every `detail_s`, and at least every `quiet_s` seconds.
    detail_s: float = 10.0
    quiet_s: float = 30.0
    _last_counts: str = ""
    _last_detail: str = ""
    _last_text: str = ""
    _last_print: float = -1e9
    # (trial, epoch) keys the store holds already: a retried or resumed trial hands its
    # earlier records over again, and the store keeps each epoch once.
    stored: set[tuple[str, int]] = field(default_factory=set)
    retention: StageRetention | None = None
    resumed: dict[str, int] = field(default_factory=dict)  # trial -> last replayed epoch
    _t0: float = field(default_factory=time.monotonic)
    _progress: StageProgress | None = None

    @property
    def stage_progress(self) -> StageProgress:
        if self._progress is None:
            before = sum(s in ("completed", "diverged", "failed") for s in self.status.values())
            self._progress = StageProgress(self.stage, self.total, finished_before=before)
        return self._progress

    @property
    def sweep_id(self) -> str:
        return self.writer.sweep_id

    @property
    def store_root(self) -> Path:
        return self.writer.sweep_dir.parent

    def _row(self, payload: Mapping[str, Any], status: str, **kw: Any) -> dict[str, Any]:
        return trial_row(self.sweep_id, payload, status, store_root=self.store_root, **kw)

    def pending(self, payloads: list[dict[str, Any]]) -> None:
        self.trials.extend(self._row(p, "pending") for p in payloads)

    def started(self, trial_id: str, payload: Mapping[str, Any]) -> None:
        self.started_at[trial_id] = now()
        self.status[trial_id] = "running"
        self.payloads[trial_id] = payload
        self.stage_progress.started(trial_id, planned_epochs(payload))
        self.trials.append(self._row(payload, "running", started_at=now()))

    def epoch(self, trial_id: str, payload: Mapping[str, Any], record: dict[str, Any]) -> None:
        key = (trial_id, int(record["epoch"]))
        if record.get("replayed"):
            self.resumed[trial_id] = max(self.resumed.get(trial_id, -1), key[1])
        elif trial_id in self.resumed:
            print(
                f"[{self.stage}] {trial_id} resumed after epoch {self.resumed.pop(trial_id)}",
                file=self.out,
                flush=True,
            )
        if key in self.stored:
            return
        self.stored.add(key)
        self.epochs.append(epoch_row(self.sweep_id, payload, record, self.store_root))
        self.stage_progress.epoch(trial_id, int(record["epoch"]), float(record.get("wall_s") or 0))
        row = {**record, "method": payload.get("method")}
        candidate = self.stage == "clean" and is_success(row, self.threshold)
        if candidate and (self.best is None or record["clean_acc"] > self.best[0]):
            self.best = (record["clean_acc"], trial_id, record["epoch"])
        if len(self.epochs) >= self.flush_rows:
            self.flush()

    def finished(self, trial_id: str, payload: Mapping[str, Any], outcome: dict[str, Any]) -> None:
        status = str(outcome.get("status", "completed"))
        self.status[trial_id] = status
        self.stage_progress.ended(trial_id, status)
        self.outcomes[trial_id] = dict(outcome)
        if status == "failed" and outcome.get("reason"):
            self.errors[trial_id] = str(outcome["reason"])
        self.trials.append(
            self._row(
                payload,
                status,
                error=outcome.get("reason"),
                started_at=self.started_at.get(trial_id),
                ended_at=now(),
            )
        )
        self.flush()
        if self.retention is not None:
            self.retention.trial_ended(trial_id)

    def failed(self, trial_id: str, payload: Mapping[str, Any], error: str) -> None:
        self.status[trial_id] = "failed"
        self.stage_progress.ended(trial_id, "failed")
        self.errors[trial_id] = error
        self.trials.append(
            self._row(
                payload,
                "failed",
                error=error,
                started_at=self.started_at.get(trial_id),
                ended_at=now(),
            )
        )
        self.flush()
        if self.retention is not None:
            self.retention.trial_ended(trial_id)

    def retrying(self, trial_id: str, payload: Mapping[str, Any], error: str) -> None:
        self.trials.append(
            self._row(
                payload,
                "running",
                error=f"retrying after: {error}",
                started_at=self.started_at.get(trial_id),
            )
        )

    def stopped(self, trial_id: str, payload: Mapping[str, Any], reason: str) -> None:
        """The stage's scheduler stopped the trial early: its epochs stay candidates."""
        self.status[trial_id] = "stopped"
        self.trials.append(
            self._row(
                payload,
                "stopped",
                error=reason,
                started_at=self.started_at.get(trial_id),
                ended_at=now(),
            )
        )
        self.flush()

    def interrupted(self, signal_name: str) -> list[str]:
        """Record every trial still running as interrupted; returns their ids."""
        ids = [t for t, s in self.status.items() if s == "running"]
        for t in ids:
            self.status[t] = "interrupted"
            self.stage_progress.ended(t, "interrupted")
            self.trials.append(
                self._row(
                    self.payloads[t],
                    "interrupted",
                    error=f"stopped by {signal_name}; `sweeper resume` runs it again",
                    started_at=self.started_at.get(t),
                    ended_at=now(),
                )
            )
        self.flush()
        return ids

    def tick(self) -> None:
        self.flush()
        self.progress()

    def flush(self) -> None:
        if self.epochs:
            rows, self.epochs = self.epochs, []
            self.writer.append_epochs(rows)
            if self.retention is not None:
                self.retention.observe(rows)
                self.retention.prune(running={t for t, s in self.status.items() if s == "running"})
        if self.trials:
            rows, self.trials = self.trials, []
            self.writer.append_trials(rows)

    def counts(self) -> dict[str, int]:
        values = list(self.status.values())
        done = sum(v in ("completed", "diverged", "stopped") for v in values)
        failed = sum(v == "failed" for v in values)
        running = sum(v == "running" for v in values)
        stopped = sum(v == "stopped" for v in values)
        return {"done": done, "failed": failed, "running": running, "stopped": stopped}

    def unsuccessful(self) -> dict[str, str]:
        """Trials that failed or diverged, by id: what makes the sweep's exit code 1."""
        return {t: s for t, s in self.status.items() if s in ("failed", "diverged")}

    def progress(self, force: bool = False) -> None:
        """Print the stage's progress line when it says something new (see `detail_s`)."""
        c = self.counts()
        counts = (
            f"[{self.stage}] {c['done']}/{self.total} done, {c['running']} running, "
            f"{c['failed']} failed"
            + (f", {c['stopped']} stopped early" if c.get("stopped") else "")
        )
        stage = self.stage_progress
        detail = stage.running_text()
        elapsed = time.monotonic() - self._t0
        since = elapsed - self._last_print
        if not (
            force
            or counts != self._last_counts
            or (detail != self._last_detail and since >= self.detail_s)
            or since >= self.quiet_s
        ):
            return
        eta = "done" if stage.finished() else format_eta(stage.eta_s())
        text = " | ".join([counts, *([detail] if detail else []), eta, *self._best_text()])
        if force and text == self._last_text:
            return  # the stage's last line, already printed by the last tick
        print(f"{text} | {elapsed:.0f}s", file=self.out, flush=True)
        self._last_counts, self._last_detail, self._last_print = counts, detail, elapsed
        self._last_text = text

    def _best_text(self) -> list[str]:
        if self.stage != "clean":
            return []
        t = f"{self.threshold:g}"
        if self.best is None:
            return [f"no candidate at ASR<={t}% yet"]
        acc, tid, ep = self.best
        return [f"best clean_acc at ASR<={t}%: {acc:.2f} ({tid}, epoch {ep})"]
