"""Runs a planned sweep stage by stage: pretrain -> select -> [screen -> pick] -> clean.

A stage's output (a selected checkpoint) is the next stage's input. This module only orders
the stages and says how the sweep ended; `payloads`, `pretrain_cache` and `stages` hold the
parts. Every decision is made from the rows in the results store, so `resume` re-derives the
same selections, skips finished trials and re-runs only the rest.

How a sweep ends is its exit code: 0 every trial completed, 1 some failed or diverged
(`SweepFailed`), 2 bad input or a damaged store, 130/143 a signal (`SweepInterrupted`).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from results.check import check_parts
from results.errors import DamagedPart, StoreError
from results.store import StoreWriter
from sweeper import cluster, interrupts
from sweeper import ray_backend as backend
from sweeper.errors import SweeperError, SweepFailed, SweepNotFound
from sweeper.events import param_columns
from sweeper.payloads import (
    bn_only_payloads,
    origin_payloads,
    payload,
    prepare_synthetic,
    search_base,
)
from sweeper.plan import SweepPlan
from sweeper.plan_io import load_plan, save_plan
from sweeper.pretrain_cache import use_cache
from sweeper.resources import announce_cpu_only, fitted_line, stage_resources
from sweeper.spec_distributed import WORKERS, one_process
from sweeper.stages import (
    FINISHED,
    done_trials,
    epoch_rows,
    pick_screen,
    run_search,
    run_stage,
    select_pretrain,
)


def new_sweep_id(name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def launch(
    plan: SweepPlan,
    *,
    store: str | Path,
    address: str | None = None,
    dashboard_host: str = "127.0.0.1",
    spec_path: str | Path | None = None,
    fit_resources: bool = False,
    sweep_id: str | None = None,
) -> int:
    """Start a new sweep; prints its id and store path first, so scripts can follow it.

    The cluster is joined and every stage's request checked against it before anything is
    written, so a sweep that could never run leaves no trace in the store. `sweep_id`
    (default: a new one) lets a caller know the id before the sweep ends (`sweeper.launch`).
    """
    # Absolute: Ray Tune runs each trial in its own working directory.
    store = Path(store).resolve()
    # After the cluster: ray.init installs its own SIGTERM handler (sys.exit).
    with _cluster(plan, address, dashboard_host, fit_resources) as info, interrupts.catching():
        # Every p_ column declared up front: one schema for all of the sweep's parts.
        writer = StoreWriter(store, sweep_id or new_sweep_id(plan.name), params=param_columns(plan))
        writer.write_spec(plan.spec_text)
        _save_plan(writer, plan)
        print(f"sweep: {writer.sweep_id}", flush=True)
        print(f"store: {writer.sweep_dir}", flush=True)
        _print_dashboard(info)
        return _run_guarded(plan, writer, info, fit_resources)


def resume(
    sweep: str,
    *,
    store: str | Path,
    address: str | None = None,
    dashboard_host: str = "127.0.0.1",
    fit_resources: bool = False,
) -> int:
    """Finish an interrupted sweep: finished trials are kept, the others run again.

    The sweep's files are checked first: a damaged part stops the resume before anything is
    written or started. A sweep with nothing left to run says so and starts nothing.
    """
    sweep_dir = sweep_dir_of(sweep, store).resolve()
    damaged = check_parts(sweep_dir)
    if damaged:
        raise StoreError(
            f"cannot resume {sweep_dir.name}: {len(damaged)} damaged part file(s):\n"
            + "\n".join(f"  {d.path}" for d in damaged)
            + f"\nMove them out of the store (their rows are lost; their trials run again) "
            f"or restore them, then resume. `sweeper check {sweep_dir}` lists them again"
        )
    plan = load_plan(sweep_dir / "plan.json")
    writer = StoreWriter(sweep_dir.parent, sweep_dir.name, params=param_columns(plan))
    left = _left_to_run(plan, writer)
    if not left:
        print(f"sweep {writer.sweep_id} is finished: nothing to resume", flush=True)
        return _exit_code(writer, _unsuccessful(writer))
    # After the cluster: ray.init installs its own SIGTERM handler (sys.exit).
    with _cluster(plan, address, dashboard_host, fit_resources) as info, interrupts.catching():
        print(f"sweep: {writer.sweep_id} (resuming: {', '.join(left)})", flush=True)
        print(f"store: {writer.sweep_dir}", flush=True)
        _print_dashboard(info)
        return _run_guarded(plan, writer, info, fit_resources)


def _left_to_run(plan: SweepPlan, writer: StoreWriter) -> list[str]:
    """Stages with trials still to run (`resume` of a finished sweep does nothing)."""
    done = done_trials(writer)
    left = []
    for stage in plan.stages:
        if stage.search is not None:
            ran = sum(1 for t in done if t.startswith(f"{stage.name}-optuna-"))
            if ran < stage.search.n_trials:
                left.append(stage.name)
        elif any(t.trial_id not in done for t in stage.trials):
            left.append(stage.name)
    return left


def _unsuccessful(writer: StoreWriter) -> dict[str, str]:
    return {t: s for t, s in done_trials(writer).items() if s in ("failed", "diverged")}


@contextlib.contextmanager
def _cluster(
    plan: SweepPlan, address: str | None, dashboard_host: str, fit: bool
) -> Iterator[cluster.ClusterInfo]:
    if not (address or backend.joined()):
        # A local cluster will have this machine's CPUs and GPUs: an infeasible stage is
        # refused, all of them at once, before Ray starts.
        stage_resources(plan, cluster.local_machine(), fit=fit)
    info = backend.connect(address, dashboard_host=dashboard_host)
    try:
        stage_resources(plan, info, fit=fit)
        if fit and (line := fitted_line(plan, info)):
            print(line, flush=True)
        yield info
    finally:
        if info.started_here:
            backend.shutdown()


def _print_dashboard(info: cluster.ClusterInfo) -> None:
    if info.dashboard_url:
        print(
            f"dashboard: {info.dashboard_url}  (Jobs/Actors tabs: the sweep's trials)", flush=True
        )


def _save_plan(writer: StoreWriter, plan: SweepPlan) -> None:
    try:
        save_plan(writer.sweep_dir / "plan.json", plan)
    except OSError as err:
        raise SweeperError(
            f"cannot write {writer.sweep_dir / 'plan.json'}: {err.strerror}; free space or "
            "pass another --store"
        ) from None


def sweep_dir_of(sweep: str, store: str | Path) -> Path:
    """The directory of sweep `sweep` (an id in `store`, or a sweep directory)."""
    p = Path(sweep)
    if (p / "plan.json").is_file():
        return p
    if "/" in sweep or ".." in sweep:
        # An id names a folder inside the store; it must not lead out of it.
        raise SweepNotFound(
            f"{sweep!r} is neither a sweep directory nor a sweep id of store {store} (an id "
            "has no '/' or '..'): pass the id that `sweeper launch` printed, or the path "
            "of a sweep directory"
        )
    cand = Path(store) / sweep
    if not (cand / "plan.json").is_file():
        raise SweepNotFound(
            f"no sweep {sweep!r} in store {store}: expected {cand}/plan.json; "
            "pass the sweep id that `sweeper launch` printed and the same --store"
        )
    return cand


def _run_guarded(plan: SweepPlan, writer: StoreWriter, info: cluster.ClusterInfo, fit: bool) -> int:
    """`_run_stages`, with every way it can stop turned into a message that says how to
    finish the sweep, not a traceback."""
    resume_cmd = f"sweeper resume {writer.sweep_id} --store {writer.sweep_dir.parent}"
    try:
        return _run_stages(plan, writer, info, fit)
    except interrupts.SweepInterrupted:
        raise
    except DamagedPart as err:
        raise StoreError(
            f"{err}. Nothing more was run; once it is moved or restored: {resume_cmd}"
        ) from None
    except StoreError as err:
        raise SweeperError(
            f"the results store failed while the sweep ran: {err}. Rows written before it are "
            f"kept; fix the cause (disk space, permissions or mount of {writer.sweep_dir}) and "
            f"finish the sweep with `{resume_cmd}`"
        ) from None
    except OSError as err:
        raise SweeperError(
            f"cannot write {err.filename or writer.sweep_dir}: {err.strerror or err}; free "
            f"space or fix permissions, then: {resume_cmd}"
        ) from None
    except BaseException as err:
        if not interrupts.is_forced(err):
            raise
        signum = interrupts.requested() or 2
        raise interrupts.SweepInterrupted(
            f"interrupted by {interrupts.signal_name(signum)} outside a stage's trials; finish with: "
            f"{resume_cmd}",
            signum,
        ) from None


def _run_stages(plan: SweepPlan, writer: StoreWriter, info: cluster.ClusterInfo, fit: bool) -> int:
    store_root = writer.sweep_dir.parent
    threshold = plan.success_asr
    synthetic = prepare_synthetic(plan, store_root)
    starts: dict[str, str] = {}
    screened: dict[str | None, dict[str, Any]] | None = None
    unsuccessful: dict[str, str] = {}
    # Trackers write under the sweep (`<sweep>/logs/`), beside the store's own rows.
    log_to = backend.LogTo(plan.loggers, writer.sweep_dir / "logs", plan.name, writer.sweep_id)
    for stage in plan.stages:
        interrupts.raise_if_requested(
            f"interrupted before the {stage.name} stage; finish with: sweeper resume "
            f"{writer.sweep_id} --store {store_root}"
        )
        announce_cpu_only(stage, info, plan.profile)
        resources = stage_resources(plan, info, fit=fit)[stage.name]
        trials = stage.trials if stage.search is None else (search_base(stage),)
        payloads = [
            {
                **payload(t, plan, writer, synthetic, starts, screened, resources),
                "success_asr": threshold,
            }
            for t in trials
        ]
        if stage.name == "screen":
            payloads += origin_payloads(payloads, [t.start for t in trials])
        baselines = []
        if "bn_only" in stage.baselines:
            baselines = bn_only_payloads(payloads, [t.start for t in trials])
        if stage.name == "pretrain":
            # Jobs this sweep already has (a resume) are not copied from the cache again.
            done = done_trials(writer)
            fresh = use_cache([p for p in payloads if p["trial_id"] not in done], writer)
            payloads = fresh + [p for p in payloads if p["trial_id"] in done]
        if WORKERS in resources and baselines:
            # A baseline does not train: one process, beside the stage's distributed jobs.
            baselines = [{**b, "resources": one_process(b["resources"])} for b in baselines]
            unsuccessful |= run_stage(
                stage, baselines, one_process(resources), writer, threshold, log_to
            )
            baselines = []
        if stage.search is None:
            unsuccessful |= run_stage(
                stage, payloads + baselines, resources, writer, threshold, log_to
            )
        else:
            unsuccessful |= run_stage(stage, baselines, resources, writer, threshold, log_to)
            unsuccessful |= run_search(stage, payloads[0], resources, writer, threshold, log_to)
        if stage.name == "pretrain":
            starts = select_pretrain(stage, writer)
        elif stage.name == "screen":
            screened = pick_screen(stage, writer, payloads)
    return _finish(plan, writer, unsuccessful)


def _finish(plan: SweepPlan, writer: StoreWriter, unsuccessful: dict[str, str]) -> int:
    store_root = writer.sweep_dir.parent
    rows = len(epoch_rows(writer))
    print(
        f"done: {writer.sweep_id}: {rows} epoch rows, {len(unsuccessful)} failed trial(s)"
        + (f" ({', '.join(sorted(unsuccessful))})" if unsuccessful else ""),
        flush=True,
    )
    from results.finding import study_finding

    finding = study_finding(store_root, [writer.sweep_id], plan.success_asr)
    if finding:
        print(finding, flush=True)
    if plan.report:
        from results.report import write_report

        path, _ = write_report(store_root, [writer.sweep_id], threshold=plan.success_asr)
        print(f"report: {path}", flush=True)
    else:
        print(f"report: sweeper report {writer.sweep_id} --store {store_root}", flush=True)
    return _exit_code(writer, unsuccessful)


def _exit_code(writer: StoreWriter, unsuccessful: dict[str, str]) -> int:
    """0 when every trial completed; 1 (with the line that names them) when some did not."""
    if not unsuccessful:
        return 0
    names = ", ".join(f"{t} ({s})" for t, s in sorted(unsuccessful.items()))
    raise SweepFailed(
        f"{len(unsuccessful)} trial(s) of {writer.sweep_id} did not complete: {names}; "
        f"their errors: sweeper status {writer.sweep_id} --store {writer.sweep_dir.parent}"
    )


__all__ = ["FINISHED", "launch", "new_sweep_id", "resume"]
