"""The driver side of a stage's Tune run: Tune's trial events as `StageEvents` calls.

`EventForwarder` is the Tune callback that turns each trial's start, epoch report,
outcome, error, retry and scheduler stop into calls on the stage's events sink (the results
store, `sweeper.events.StoreEvents`); a screen chunk's trial is routed point by point.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ray import tune
from ray.tune.stopper import Stopper

from sweeper import interrupts
from sweeper.ray_backend.schedulers import ParetoASHAScheduler
from sweeper.screen_chunks import points_of, unbatched

EPOCH = "epoch"
OUTCOME = "outcome"


class StageEvents(Protocol):
    """What the driver hears while a stage runs (all on the driver, in Tune's loop)."""

    def started(self, trial_id: str, payload: Mapping[str, Any]) -> None: ...

    def epoch(self, trial_id: str, payload: Mapping[str, Any], record: dict[str, Any]) -> None: ...

    def finished(
        self, trial_id: str, payload: Mapping[str, Any], outcome: dict[str, Any]
    ) -> None: ...

    def failed(self, trial_id: str, payload: Mapping[str, Any], error: str) -> None: ...

    def retrying(self, trial_id: str, payload: Mapping[str, Any], error: str) -> None: ...

    def stopped(self, trial_id: str, payload: Mapping[str, Any], reason: str) -> None: ...

    def tick(self) -> None: ...


class EventForwarder(tune.Callback):
    """Turns Tune's trial events into `StageEvents` calls on the driver."""

    def __init__(
        self,
        events: StageEvents,
        tick_s: float = 1.0,
        scheduler: ParetoASHAScheduler | None = None,
    ) -> None:
        self.events = events
        # The stage's early-stopping scheduler: the trials it stopped end as `stopped`.
        self.scheduler = scheduler
        # The first error the driver's own handlers raised (a store that stops taking
        # writes): Tune wraps it in a TuneError, `_fit` raises it again as itself.
        self.error: BaseException | None = None
        self.tick_s = tick_s
        self._last = 0.0
        self._ended: set[str] = set()  # points whose outcome arrived (of chunk trials too)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; the events sink (open
        # files, the terminal) belongs to this driver process only.
        return {**self.__dict__, "events": None, "error": None}

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as err:
            self.error = self.error or err
            raise

    @staticmethod
    def _who(trial: Any) -> tuple[str, dict[str, Any]]:
        payload = dict(trial.config["trial"])
        if "params" in trial.config:
            payload["params"] = dict(trial.config["params"])
            payload["trial_id"] = f"{payload['trial_id']}-{trial.trial_id}"
        return payload["trial_id"], payload

    def _open_points(self, trial: Any) -> list[tuple[str, dict[str, Any]]]:
        """The (trial id, payload) of each point a trial runs that has not ended yet: the
        trial itself, or each point of a screen chunk (`sweeper.screen_chunks`)."""
        _, payload = self._who(trial)
        points = [(p["trial_id"], p) for p in points_of(payload)]
        return [(pid, p) for pid, p in points if pid not in self._ended]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for pid, point in self._open_points(trial):
            self._call(self.events.started, pid, point)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        for one in unbatched(result):  # a screen chunk's reports come in batches
            self._result(trial, dict(one))

    def _result(self, trial: Any, result: dict[str, Any]) -> None:
        tid, payload = self._who(trial)
        if "_point" in result:
            tid = result["_point"]
            payload = next(p for p in points_of(payload) if p["trial_id"] == tid)
        kind = result.get("_kind")
        if kind == EPOCH:
            self._call(self.events.epoch, tid, payload, result)
        elif kind == OUTCOME:
            self._ended.add(tid)
            self._call(self.events.finished, tid, payload, result)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for pid, point in self._open_points(trial):
            self._call(self.events.failed, pid, point, _error_text(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for pid, point in self._open_points(trial):
            self._call(self.events.retrying, pid, point, _error_text(trial))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune ends a trial its scheduler stopped without the trial's own outcome result;
        # the epoch that decided it was recorded already (callbacks hear it after the
        # scheduler). A trial that finished on its own has sent its outcome before this.
        reason = self.scheduler.stop_reason(trial) if self.scheduler is not None else None
        if reason is not None:
            self._call(self.events.stopped, *self._who(trial), reason)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.tick_s:
            self._last = now
            self._call(self.events.tick)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._call(self.events.tick)


class _InterruptStopper(Stopper):
    """Stops every trial of the stage once a signal asked the sweep to stop."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return interrupts.requested() is not None


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace").strip()
        # Keep the exception line (the last) and the nearest frames, not the whole traceback.
        lines = text.splitlines()
        return "\n".join(lines[-12:])
    return "trial failed (Ray recorded no error file)"
