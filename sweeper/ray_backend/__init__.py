"""Every Ray call the sweeper makes lives in this package, so a Ray upgrade touches one place.

A stage is one Ray Tune run: a grid of trials given as a `grid_search` over their payloads,
or an Optuna search over short-named parameters. Each trial is `trainers.ENTRYPOINTS[entry]`
called in a Ray worker with a reporter that forwards every `EpochRecord` through
`ray.tune.report`; a driver-side `Callback` turns Tune's events into `StageEvents` calls,
which the driver writes into the results store while the stage runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Tune warns when one step of its loop takes over TUNE_WARN_THRESHOLD_S (0.5 s): "...may be a
# performance bottleneck. Please consider reporting results less frequently". The sweeper
# reports once an epoch, and its driver-side callbacks write the results store and the
# trackers, which takes longer on a busy or networked disk; a successful run must not read
# as a failing one. Read when ray.tune is imported, so set first; a user's value wins.
os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from sweeper.cluster import (
    ClusterInfo,
    join_error,
    probe_address,
    ray_name,
)
from sweeper.errors import ClusterError
from sweeper.ray_backend.distributed import distributed_trainable, job_slots
from sweeper.ray_backend.forwarder import EPOCH as EPOCH
from sweeper.ray_backend.forwarder import OUTCOME as OUTCOME
from sweeper.ray_backend.forwarder import EventForwarder as EventForwarder
from sweeper.ray_backend.forwarder import StageEvents as StageEvents
from sweeper.ray_backend.forwarder import _InterruptStopper
from sweeper.ray_backend.loggers import LogTo, tune_callbacks
from sweeper.ray_backend.schedulers import ParetoASHAScheduler, make_scheduler
from sweeper.spec_distributed import WORKERS

if TYPE_CHECKING:
    from sweeper.ray_backend.optuna_warm import Finished


def connect(address: str | None, *, dashboard_host: str = "127.0.0.1") -> ClusterInfo:
    """Join `address` (or RAY_ADDRESS), else start a local cluster with a dashboard."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        ctx = None
        started = False
    else:
        if address:
            probe_address(address)
        try:
            if address:
                ctx = ray.init(address=address, logging_level="warning", log_to_driver=True)
            else:
                # "local" starts a fresh cluster; a bare init() would join whatever cluster
                # /tmp/ray last recorded (another user's `ray start`, a test's Cluster).
                with _loopback_node():
                    ctx = ray.init(
                        address="local",
                        include_dashboard=True,
                        dashboard_host=dashboard_host,
                        logging_level="warning",
                        log_to_driver=True,
                    )
        except Exception as err:
            raise ClusterError(join_error(address, err)) from None
        started = address in (None, "local")
    url = getattr(ctx, "dashboard_url", None) if ctx is not None else None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return ClusterInfo(dashboard_url=url or None, nodes=_alive_nodes(), started_here=started)


# Ray's single-machine mode (its default on macOS): the node's IP is 127.0.0.1, so the ports
# Ray serves without the token (the Prometheus metrics of the dashboard, its agent and the
# autoscaler bind to the node IP only when it is loopback) are not on 0.0.0.0. No other node
# can join such a cluster, which is what a local sweep's private cluster is.
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    from ray._private import ray_constants

    before_env = os.environ.get(_SINGLE_MACHINE_ENV)
    before = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_MACHINE_ENV] = "0"  # Ray's processes read it when they start
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported Ray already
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = before_env


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


def alive_nodes() -> tuple[dict[str, float], ...]:
    """Total resources of each alive node of the joined cluster."""
    return _alive_nodes()


def _alive_nodes() -> tuple[dict[str, float], ...]:
    return tuple(
        {k: float(v) for k, v in n.get("Resources", {}).items()}
        for n in ray.nodes()
        if n.get("Alive")
    )


def joined() -> bool:
    """Whether this process is already connected to a Ray cluster (a test's, a notebook's)."""
    return ray.is_initialized()


def _quiet_sigterm_exit() -> None:
    """In a trial's worker: a SIGTERM that lands while Python runs a weakref or GC callback
    (Ray stopping the worker after a successful run) raises Ray's `SystemExit` in that
    callback, which Python reports as "Exception ignored in ..." with a traceback on the
    worker's stderr, forwarded to the sweep's terminal. The exit is what was asked for; any
    other unraisable exception is still reported by the previous hook."""
    import sys

    previous = sys.unraisablehook
    if getattr(previous, "_sweeper_quiet", False):
        return

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            previous(unraisable)

    quiet._sweeper_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = quiet


def _trial_fn(config: dict[str, Any]) -> None:
    """Runs in a Ray worker: one trial of one stage."""
    from sweeper.trialrun import run_payload

    _quiet_sigterm_exit()
    payload = trial_payload(config)
    host = trial_host()

    def emit(kind: str, metrics: dict[str, Any]) -> None:
        tune.report({"_kind": kind, "host": host, **metrics})

    run_payload(payload, emit)


def trial_host() -> str:
    """The host column names the Ray node too, so packing over nodes of one machine shows."""
    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"


def trial_payload(config: dict[str, Any]) -> dict[str, Any]:
    """The payload of the trial Tune's `config` stands for (an Optuna trial's completed)."""
    payload = dict(config["trial"])
    if "params" in config:  # an Optuna trial: the searcher sampled these
        payload["params"] = dict(config["params"])
        payload["trial_id"] = f"{payload['trial_id']}-{tune.get_context().get_trial_id()}"
        config = dict(payload["config"])
        for key, name in (
            ("checkpoint_dir", payload["trial_id"]),
            ("resume_state", f"{payload['trial_id']}.pt"),
        ):
            if config.get(key):
                config[key] = str(Path(config[key]).parent / name)
        payload["config"] = config
    return payload


def run_grid(
    stage: str,
    payloads: Sequence[dict[str, Any]],
    *,
    resources: Mapping[str, float],
    max_failures: int,
    storage: Path,
    events: StageEvents,
    max_concurrent: int | None = None,
    log_to: LogTo | None = None,
    scheduler: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Run every payload as one Tune trial; returns when all have ended. `scheduler` is the
    stage's `scheduler:` section (None: every trial runs all its epochs), `history` the
    epoch rows of the stage's trials that finished before (`make_scheduler`)."""
    if not payloads:
        return
    max_concurrent = job_slots(resources, max_concurrent, _alive_nodes())
    sched = make_scheduler(scheduler, history)
    _fit(
        stage,
        {"trial": tune.grid_search(list(payloads))},
        tune.TuneConfig(
            num_samples=1,
            reuse_actors=True,
            max_concurrent_trials=max_concurrent,
            scheduler=sched,
        ),
        resources=resources,
        max_failures=max_failures,
        storage=storage,
        events=events,
        log_to=log_to,
        scheduler=sched,
    )


def run_optuna(
    stage: str,
    base: dict[str, Any],
    params: Mapping[str, Mapping[str, Any]],
    *,
    n_trials: int,
    seed: int,
    resources: Mapping[str, float],
    max_failures: int,
    storage: Path,
    events: StageEvents,
    max_concurrent: int | None = None,
    log_to: LogTo | None = None,
    scheduler: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    finished: Sequence[Finished] = (),
) -> None:
    """Multi-objective Optuna search (maximise clean_acc, minimise asr) through Ray Tune.

    Each trial's objective is its best cleaning epoch so far (`sweeper.trialrun.best_point`,
    never epoch 0), carried by every result: a trial the stage's `scheduler` stops is told
    to Optuna with the best point of the epochs it ran. `finished`: a resumed stage's
    finished trials, told to the searcher first (`optuna_warm`)."""
    from sweeper.ray_backend.optuna_warm import PARAMS_KEY
    from sweeper.ray_backend.optuna_warm import searcher as make_searcher

    max_concurrent = job_slots(resources, max_concurrent, _alive_nodes())
    space = {name: _tune_domain(name, p) for name, p in params.items()}
    searcher = make_searcher(space, seed, finished)
    sched = make_scheduler(scheduler, history)
    _fit(
        stage,
        {"trial": base, PARAMS_KEY: space},
        tune.TuneConfig(
            search_alg=searcher,
            num_samples=n_trials,
            reuse_actors=True,
            max_concurrent_trials=max_concurrent,
            scheduler=sched,
        ),
        resources=resources,
        max_failures=max_failures,
        storage=storage,
        events=events,
        log_to=log_to,
        scheduler=sched,
    )


def _tune_domain(name: str, p: Mapping[str, Any]) -> Any:
    if p.get("type") == "categorical" or "choices" in p:
        return tune.choice(list(p["choices"]))
    if p.get("type") == "int":
        low_i, high_i = int(p["low"]), int(p["high"])
        # Tune's integer domains exclude the upper bound; the spec's includes it.
        return (
            tune.lograndint(low_i, high_i + 1) if p.get("log") else tune.randint(low_i, high_i + 1)
        )
    low, high = float(p["low"]), float(p["high"])
    return tune.loguniform(low, high) if p.get("log") else tune.uniform(low, high)


class _StoreFlushIsNotSlow(logging.Filter):
    """Drops Tune's "`callbacks.on_step_end` operation took N s, which may be a performance
    bottleneck" warning: that callback is the sweeper's, and its time is the results store's
    Parquet write of the tick's rows (by design, once a second at most). Tune's warnings
    about its own steps are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`callbacks.on_step_end` operation took" not in record.getMessage()


def _quiet_tune_warnings() -> None:
    tune_util = logging.getLogger("ray.tune.utils.util")
    if not any(isinstance(f, _StoreFlushIsNotSlow) for f in tune_util.filters):
        tune_util.addFilter(_StoreFlushIsNotSlow())


def _fit(
    stage: str,
    param_space: dict[str, Any],
    tune_config: tune.TuneConfig,
    *,
    resources: Mapping[str, float],
    max_failures: int,
    storage: Path,
    events: StageEvents,
    log_to: LogTo | None = None,
    scheduler: ParetoASHAScheduler | None = None,
) -> None:
    # Tune's newer console output prints a banner per run even at verbose=0; the legacy
    # reporter is silent, and the sweeper prints its own progress line.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The sweeper owns SIGINT (sweeper.interrupts): Tune's own handler would end `fit()`
    # as if the stage had finished.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    _quiet_tune_warnings()
    req = {
        ray_name(k).lower(): float(v) for k, v in resources.items() if float(v) > 0 and k != WORKERS
    }
    workers = int(resources.get(WORKERS, 1))
    if workers > 1:  # each trial a Ray Train job of `workers` x `req` (sweeper.spec_distributed)
        trainable = distributed_trainable(workers, req, storage)
    else:
        trainable = tune.with_resources(_trial_fn, req)
    forward = EventForwarder(events, scheduler=scheduler)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=f"{stage}-{int(time.time() * 1000)}",
            storage_path=str(storage.resolve()),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=[forward, *tune_callbacks(log_to, stage)],
            stop=_InterruptStopper(),
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    except Exception:
        if forward.error is not None:
            raise forward.error from None
        raise
