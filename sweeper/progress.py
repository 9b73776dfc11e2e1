"""What a person follows while a stage runs: each running trial's epoch k/N and an estimate
of the stage's remaining time, from the epochs done so far and their wall time.

Pure bookkeeping over trial events (no Ray, no store): `StoreEvents` feeds it on the driver,
`sweeper status --watch` feeds it from the store's rows, and tests feed it by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Statuses after which a trial reports no more epochs.
ENDED = ("completed", "diverged", "failed", "stopped", "interrupted")
# At most this many running trials are named on a progress line; the rest are counted.
SHOWN = 4


@dataclass
class TrialProgress:
    """One trial as far as its epoch reports go. `first_wall`/`last_wall` are the trial's
    own clock (`wall_s`, seconds since it started) at the first and last epoch it reported:
    a resumed trial's first report is a later epoch, and only epochs after it are timed."""

    planned: int
    status: str = "running"
    first_epoch: int | None = None
    epoch: int | None = None
    first_wall: float = 0.0
    last_wall: float = 0.0

    @property
    def trained(self) -> int:
        """Epochs this run of the trial has timed (after its first report)."""
        if self.epoch is None or self.first_epoch is None:
            return 0
        return self.epoch - self.first_epoch

    @property
    def left(self) -> int:
        return 0 if self.status in ENDED else max(0, self.planned - (self.epoch or 0))


@dataclass
class StageProgress:
    """The trials of one stage: those started here, and how many are still to start."""

    stage: str
    total: int
    trials: dict[str, TrialProgress] = field(default_factory=dict)
    # Trials finished before this run (a resume): counted done, never timed.
    finished_before: int = 0
    # Planned epochs of a trial not started yet (a grid's trials share their epoch count
    # in most stages; the first started trial's count stands in otherwise).
    default_planned: int | None = None
    slots: int = 1  # the most trials seen running at once: how many run side by side

    def started(self, trial_id: str, planned: int) -> None:
        self.trials[trial_id] = TrialProgress(planned=planned)
        if self.default_planned is None:
            self.default_planned = planned
        self.slots = max(self.slots, self.running())

    def epoch(self, trial_id: str, epoch: int, wall_s: float) -> None:
        t = self.trials.setdefault(trial_id, TrialProgress(planned=self.default_planned or 0))
        if t.first_epoch is None or epoch < t.first_epoch:
            # A retried trial starts its clock again: time from its new first report.
            t.first_epoch, t.first_wall = epoch, wall_s
        t.epoch, t.last_wall = epoch, wall_s

    def ended(self, trial_id: str, status: str) -> None:
        t = self.trials.setdefault(trial_id, TrialProgress(planned=0))
        t.status = status

    def running(self) -> int:
        return sum(t.status == "running" for t in self.trials.values())

    def seconds_per_epoch(self) -> float | None:
        """Mean wall time of one trained epoch over every trial's timed epochs; None before
        the first one (epoch 0 evaluates the start model and trains nothing)."""
        epochs = sum(t.trained for t in self.trials.values())
        if epochs <= 0:
            return None
        return sum(t.last_wall - t.first_wall for t in self.trials.values() if t.trained) / epochs

    def unstarted(self) -> int:
        return max(0, self.total - self.finished_before - len(self.trials))

    def epochs_left(self) -> int:
        planned = self.default_planned or 0
        return sum(t.left for t in self.trials.values()) + self.unstarted() * planned

    def finished(self) -> bool:
        return self.unstarted() == 0 and all(t.status in ENDED for t in self.trials.values())

    def eta_s(self) -> float | None:
        """Seconds until the stage ends: epochs left x seconds per epoch, over the trials
        that run side by side. 0 when none is left, None while there is no timed epoch (or
        no trial has started, so the epochs to come are not known)."""
        if self.finished():
            return 0.0
        if self.default_planned is None:
            return None
        left = self.epochs_left()
        if left == 0:
            return 0.0
        per_epoch = self.seconds_per_epoch()
        if per_epoch is None:
            return None
        return left * per_epoch / max(1, self.slots)

    def running_text(self) -> str:
        """`<trial> k/N` for each running trial (the stage prefix of its id left out)."""
        names = [
            f"{_short(tid, self.stage)} {_epochs(t)}"
            for tid, t in self.trials.items()
            if t.status == "running"
        ]
        more = len(names) - SHOWN
        return ", ".join(names[:SHOWN]) + (f", +{more} more" if more > 0 else "")


def _short(trial_id: str, stage: str) -> str:
    return trial_id.removeprefix(f"{stage}-")


def _epochs(t: TrialProgress) -> str:
    if t.planned == 0:
        return "evaluating"  # a screen trial trains nothing: it evaluates one model
    if t.epoch is None:
        return f"starting (0/{t.planned})"
    return f"epoch {t.epoch}/{t.planned}"


def format_eta(seconds: float | None) -> str:
    """`ETA estimating` until there is a timed epoch, then `ETA ~1h02m`, `~4m05s`, `~40s`."""
    if seconds is None:
        return "ETA estimating"
    s = int(round(seconds))
    if s >= 3600:
        return f"ETA ~{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"ETA ~{s // 60}m{s % 60:02d}s"
    return f"ETA ~{s}s"


def planned_epochs(payload: Mapping[str, Any]) -> int:
    """The epochs a trial is planned to train (0 for a screen trial, which evaluates only);
    an Optuna trial's sampled values are applied first (it may sample `epochs`)."""
    if payload.get("entry") == "screen" or payload.get("stage") == "screen":
        return 0
    config = payload.get("config") or {}
    if payload.get("search") and payload.get("params"):
        from sweeper.plan import apply_params

        config = apply_params(config, payload["params"], payload.get("scaling"))
    return int((config.get("optim") or {}).get("epochs") or 0)
