"""Tune trial schedulers the sweeper offers (by short name, `sweeper ls schedulers`).

`ParetoASHAScheduler` is asynchronous successive halving with two objectives: Tune's own
ASHA and HyperBand rank trials by one metric, so the decision itself lives in the Ray-free
`sweeper.pareto_asha`, and this class only feeds it each epoch result and turns its answer
into Tune's STOP. A FIFO scheduler otherwise: trials start in submission order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from sweeper import pareto_asha

# The `_kind` of the results a trial sends per epoch (`sweeper.trialrun`, `_trial_fn`).
_EPOCH = "epoch"


class ParetoASHAScheduler(FIFOScheduler):
    """Stops a trial at a rung when its candidate set is not among the rung's best."""

    def __init__(self, grace: int = 1, reduction: float = 3.0) -> None:
        super().__init__()
        self.asha = pareto_asha.ParetoASHA(grace=grace, reduction=reduction)
        # Tune trial id -> why it was stopped (the store's `error` column).
        self.reasons: dict[str, str] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get("_kind") != _EPOCH or result.get("epoch") is None:
            return TrialScheduler.CONTINUE
        decision = self.asha.report(
            trial.trial_id,
            int(result["epoch"]),
            result.get("clean_acc"),
            result.get("asr"),
            last_epoch=planned_epochs(trial.config),
        )
        if decision is not None and decision.stop:
            self.reasons[trial.trial_id] = decision.reason
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def stop_reason(self, trial: Any) -> str | None:
        """Why this scheduler stopped `trial`, or None when it did not."""
        return self.reasons.get(trial.trial_id)

    def debug_string(self) -> str:
        return f"{pareto_asha.NAME}: rungs at epochs {self.asha.rungs[:5]}..."


def planned_epochs(config: Mapping[str, Any]) -> int | None:
    """The last epoch a trial will train (its sampled value for an Optuna trial)."""
    from sweeper.plan import apply_params

    payload = config.get("trial") or {}
    trial_config = payload.get("config") or {}
    if "params" in config:
        trial_config = apply_params(trial_config, config["params"], payload.get("scaling"))
    epochs = (trial_config.get("optim") or {}).get("epochs")
    return int(epochs) if epochs is not None else None


def make_scheduler(
    spec: Mapping[str, Any] | None, history: Iterable[Mapping[str, Any]] = ()
) -> ParetoASHAScheduler | None:
    """The scheduler a stage's `scheduler:` section names (None: Tune's FIFO default).

    `history` is the stage's epoch rows of trials that finished before (a resumed stage),
    in the order they were written: they fill the rungs they reached, so the trials run
    now are ranked against them as they would have been in one go.
    """
    if not spec:
        return None
    (name, options), *more = spec.items()
    if more or name != pareto_asha.NAME:
        raise ValueError(f"unknown scheduler section {dict(spec)!r}")  # the spec refuses it
    sched = ParetoASHAScheduler(
        grace=int(options.get("grace", 1)), reduction=float(options.get("reduction", 3.0))
    )
    for row in history:
        sched.asha.report(row["trial_id"], int(row["epoch"]), row["clean_acc"], row["asr"])
    return sched
