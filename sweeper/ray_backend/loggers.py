"""Experiment trackers through Ray Tune's own logger callbacks (TensorBoard, MLflow, W&B).

Each callback is Ray's, told three things Tune cannot know: only the trial's epoch records
are metrics (not its outcome report), the step is the record's epoch (0 = the start model),
and a trial is named by its sweeper id with its swept values as `p_<name>` params, the names
of the store's columns. The trackers write under `<sweep>/logs/` unless told otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.logger import LoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL, TRAINING_ITERATION

from sweeper.events import RECORD_FIELDS

# The numeric fields of an EpochRecord a tracker plots: the store's record fields less the
# epoch (the step) and the checkpoint path.
METRICS = tuple(f for f in RECORD_FIELDS if f not in ("epoch", "checkpoint"))
EPOCH_KIND = "epoch"


def epoch_metrics(result: Mapping[str, Any]) -> dict[str, float] | None:
    """The metrics of one epoch report, None for any other report (a trial's outcome).
    Unused losses (None) are left out: a tracker would plot them as 0 or refuse them."""
    if result.get("_kind") != EPOCH_KIND:
        return None
    return {
        k: float(result[k])
        for k in METRICS
        if isinstance(result.get(k), int | float) and not isinstance(result.get(k), bool)
    }


def trial_name(trial: Any) -> str:
    """The sweeper's trial id (an Optuna trial's carries Tune's id, as in the store)."""
    payload = trial.config["trial"]
    if "params" in trial.config:
        return f"{payload['trial_id']}-{trial.trial_id}"
    return str(payload["trial_id"])


def trial_params(trial: Any) -> dict[str, Any]:
    """The trial's swept values as the store names them (`p_lr`), and what the trial is."""
    payload = trial.config["trial"]
    params = dict(payload.get("params") or {})
    params.update(trial.config.get("params") or {})
    out: dict[str, Any] = {f"p_{k}": v for k, v in sorted(params.items())}
    out.update(stage=payload["stage"], method=payload["method"])
    if payload.get("objective"):
        out["objective"] = payload["objective"]
    return out


def _step_result(result: Mapping[str, Any], metrics: Mapping[str, float]) -> dict[str, Any]:
    # Ray's callbacks take the step from timesteps_total, else training_iteration: both set
    # to the epoch, so epoch 0 (falsy) still lands on step 0.
    epoch = int(result["epoch"])
    return {**metrics, TIMESTEPS_TOTAL: epoch, TRAINING_ITERATION: epoch}


@dataclass(frozen=True)
class LogTo:
    """Where a stage's trials are logged besides the store.

    `names`: registered logger names (checked by the spec); `project`: the sweep's name (W&B
    project, MLflow experiment); `sweep_id` and the stage make the group (W&B group, MLflow
    tag), so the stages of one sweep stay together."""

    names: Sequence[str]
    log_dir: Path
    project: str
    sweep_id: str


def tune_callbacks(log_to: LogTo | None, stage: str) -> list[LoggerCallback]:
    """One Ray Tune callback per logger name, for one stage's Tune run."""
    if log_to is None or not log_to.names:
        return []
    makers = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}
    group = f"{log_to.sweep_id}/{stage}"
    return [makers[n](log_to.log_dir, log_to.project, group) for n in log_to.names]


def _tensorboard(log_dir: Path, project: str, group: str) -> LoggerCallback:
    from ray.tune.logger import TBXLoggerCallback

    class SweepTensorBoard(TBXLoggerCallback):
        """Ray's TensorBoard callback, one folder per trial under `root`."""

        def __init__(self, root: Path) -> None:
            super().__init__()
            self.root = root

        def log_trial_start(self, trial: Any) -> None:
            if trial in self._trial_writer:
                self._trial_writer[trial].close()
            self._trial_writer[trial] = self._summary_writer_cls(
                str(self.root / trial_name(trial)), flush_secs=30
            )
            self._trial_result[trial] = {}

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            metrics = epoch_metrics(result)
            if metrics is not None:
                super().log_trial_result(iteration, trial, _step_result(result, metrics))

        def _try_log_hparams(self, trial: Any, result: dict) -> None:
            # Ray's would log the whole payload of the trial (every config field).
            from tensorboardX.summary import hparams

            tags = hparams(hparam_dict=trial_params(trial), metric_dict=result)
            for tag in tags:
                self._trial_writer[trial].file_writer.add_summary(tag)

    return SweepTensorBoard(log_dir / "tensorboard")


def _mlflow(log_dir: Path, project: str, group: str) -> LoggerCallback:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class SweepMLflow(MLflowLoggerCallback):
        """Ray's MLflow callback: a run per trial named by its id, its params the `p_` ones."""

        def setup(self, *args: Any, **kwargs: Any) -> None:
            # Ray's setup leaves the artifact root to MLflow: ./mlruns of the driver's cwd.
            self.mlflow_util.setup_mlflow(
                tracking_uri=self.tracking_uri,
                experiment_name=self.experiment_name,
                artifact_location=(log_dir / "mlartifacts").resolve().as_uri(),
            )
            self.tags = self.tags or {}
            self._trial_runs = {}

        def log_trial_start(self, trial: Any) -> None:
            if trial not in self._trial_runs:
                tags = {**(self.tags or {}), "sweep_group": group, "trial_id": trial_name(trial)}
                run = self.mlflow_util.start_run(tags=tags, run_name=trial_name(trial))
                self._trial_runs[trial] = run.info.run_id
                self.mlflow_util.log_params(
                    run_id=self._trial_runs[trial], params_to_log=trial_params(trial)
                )

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            metrics = epoch_metrics(result)
            if metrics is None:
                return
            if trial not in self._trial_runs:
                self.log_trial_start(trial)
            self.mlflow_util.log_metrics(
                run_id=self._trial_runs[trial], metrics_to_log=metrics, step=int(result["epoch"])
            )

    return SweepMLflow(tracking_uri=mlflow_uri(log_dir), experiment_name=project)


def mlflow_uri(log_dir: Path) -> str:
    """$MLFLOW_TRACKING_URI (a tracking server), else a SQLite store under the sweep:
    MLflow 3 refuses its plain-file store unless told to (MLFLOW_ALLOW_FILE_STORE), and
    SQLite is the local store it recommends. `mlflow ui --backend-store-uri <this>`."""
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given
    log_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(log_dir / 'mlflow.db').resolve()}"


def wandb_mode() -> str:
    """ "online" when the user has said so or is logged in (WANDB_MODE, WANDB_API_KEY, a
    `wandb login`, which keeps the key in ~/.netrc), else "offline": a sweep never stops to
    ask for a key."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        found = netrc.netrc(os.environ.get("NETRC")).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc: never logged in here
        found = None
    return "online" if found and found[2] else "offline"


def _wandb(log_dir: Path, project: str, group: str) -> LoggerCallback:
    from ray.air.integrations.wandb import WandbLoggerCallback

    mode = wandb_mode()
    if mode in ("offline", "disabled"):
        # Ray's callback asks for an API key unless the mode says it needs none.
        os.environ["WANDB_MODE"] = mode

    class SweepWandb(WandbLoggerCallback):
        """Ray's W&B callback: a run per trial named by its id, its config the `p_` params."""

        def log_trial_start(self, trial: Any) -> None:
            self._start_logging_actor(
                trial,
                [*self._exclude_results, *self.excludes, "config"],
                id=trial.trial_id,
                name=trial_name(trial),
                resume=False,
                reinit=True,
                allow_val_change=True,
                group=group,
                project=self.project,
                config=trial_params(trial),
                **self.kwargs,
            )

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            metrics = epoch_metrics(result)
            if metrics is not None:
                super().log_trial_result(iteration, trial, _step_result(result, metrics))

    root = log_dir / "wandb"
    root.mkdir(parents=True, exist_ok=True)
    return SweepWandb(project=project, group=group, dir=str(root), mode=mode)
