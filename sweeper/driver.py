"""Runs a planned sweep stage by stage: pretrain -> select -> [screen -> pick] -> clean.

A stage's output (a selected checkpoint) is the next stage's input. Every decision is made
from the rows in the results store, so `resume` (driver killed) re-derives the same
selections, skips finished trials and re-runs only the rest.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from results.errors import StoreError
from results.store import StoreWriter, read_epochs, read_trials
from sweeper import ray_backend as backend
from sweeper.errors import SweeperError, SweepNotFound
from sweeper.events import StoreEvents, trial_row
from sweeper.plan import START_CHECKPOINT, StagePlan, SweepPlan, TrialPlan
from sweeper.plan_io import load_plan, save_plan
from sweeper.selection import pick_screened, select_pretrained

FINISHED = ("completed", "diverged", "failed")
PLACEHOLDER = "@synthetic/"


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
) -> int:
    """Start a new sweep; prints its id and store path first, so scripts can follow it.

    The cluster is joined and every stage's request checked against it before anything is
    written, so a sweep that could never run leaves no trace in the store.
    """
    # Absolute: Ray Tune runs each trial in its own working directory.
    store = Path(store).resolve()
    with _cluster(plan, address, dashboard_host) as info:
        writer = StoreWriter(store, new_sweep_id(plan.name))
        writer.write_spec(plan.spec_text)
        save_plan(writer.sweep_dir / "plan.json", plan)
        print(f"sweep: {writer.sweep_id}", flush=True)
        print(f"store: {writer.sweep_dir}", flush=True)
        _print_dashboard(info)
        return _run_guarded(plan, writer, info)


def resume(
    sweep: str, *, store: str | Path, address: str | None = None, dashboard_host: str = "127.0.0.1"
) -> int:
    """Finish an interrupted sweep: finished trials are kept, the others run again."""
    sweep_dir = _sweep_dir(sweep, store).resolve()
    plan = load_plan(sweep_dir / "plan.json")
    with _cluster(plan, address, dashboard_host) as info:
        writer = StoreWriter(sweep_dir.parent, sweep_dir.name)
        print(f"sweep: {writer.sweep_id} (resuming)", flush=True)
        print(f"store: {writer.sweep_dir}", flush=True)
        _print_dashboard(info)
        return _run_guarded(plan, writer, info)


@contextlib.contextmanager
def _cluster(
    plan: SweepPlan, address: str | None, dashboard_host: str
) -> Iterator[backend.ClusterInfo]:
    info = backend.connect(address, dashboard_host=dashboard_host)
    try:
        for stage in plan.stages:
            backend.check_resources(
                stage.name,
                _effective_resources(stage, info, plan.profile),
                info,
                field=_field(stage, plan),
            )
        yield info
    finally:
        if info.started_here:
            backend.shutdown()


def _field(stage: StagePlan, plan: SweepPlan) -> str:
    return "embedded.resources" if plan.profile == "embedded" else f"{stage.name}.resources"


def _print_dashboard(info: backend.ClusterInfo) -> None:
    if info.dashboard_url:
        print(
            f"dashboard: {info.dashboard_url}  (Jobs/Actors tabs: the sweep's trials)", flush=True
        )


def _sweep_dir(sweep: str, store: str | Path) -> Path:
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


def _run_guarded(plan: SweepPlan, writer: StoreWriter, info: backend.ClusterInfo) -> int:
    """`_run_stages`; a store that stops taking writes (disk full, read-only) stops the sweep
    with a message that names the path and says how to finish it, not a traceback."""
    try:
        return _run_stages(plan, writer, info)
    except StoreError as err:
        raise SweeperError(
            f"the results store failed while the sweep ran: {err}. Rows written before it are "
            f"kept; fix the cause (disk space, permissions or mount of {writer.sweep_dir}) and "
            f"finish the sweep with `sweeper resume {writer.sweep_id} --store "
            f"{writer.sweep_dir.parent}`"
        ) from None


def _epoch_rows(writer: StoreWriter) -> list[dict[str, Any]]:
    """The sweep's epoch rows; none (every trial failed before its first epoch) is no error."""
    if not any((writer.sweep_dir / "epochs").glob("part-*.parquet")):
        return []
    return read_epochs(writer.sweep_dir.parent, [writer.sweep_id]).to_pylist()


def _run_stages(plan: SweepPlan, writer: StoreWriter, info: backend.ClusterInfo) -> int:
    store_root = writer.sweep_dir.parent
    synthetic = _prepare_synthetic(plan, store_root)
    starts: dict[str, str] = {}
    screened: dict[str, Any] | None = None
    failed_total = 0
    for stage in plan.stages:
        resources = _effective_resources(stage, info, plan.profile, quiet=False)
        trials = stage.trials if stage.search is None else (_search_base(stage),)
        payloads = [
            _payload(t, plan, writer, synthetic, starts, screened, resources) for t in trials
        ]
        if stage.name == "pretrain":
            payloads = _use_cache(payloads, writer)
        failed_total += _run_stage(stage, payloads, resources, writer)
        if stage.name == "pretrain":
            starts = _select_pretrain(stage, writer)
        elif stage.name == "screen":
            screened = _pick_screen(stage, writer)
    rows = len(_epoch_rows(writer))
    print(f"done: {writer.sweep_id}: {rows} epoch rows, {failed_total} failed trial(s)", flush=True)
    if plan.report:
        from results.report import write_report

        path, _ = write_report(store_root, [writer.sweep_id])
        print(f"report: {path}", flush=True)
    else:
        print(f"report: sweeper report {writer.sweep_id} --store {store_root}", flush=True)
    return 0


def _prepare_synthetic(plan: SweepPlan, store_root: Path) -> dict[str, str] | None:
    if not plan.synthetic:
        return None
    from trainers.data.synthetic import make_synthetic

    key = _hash(plan.synthetic)
    paths = make_synthetic(store_root / ".cache" / "data" / key, **plan.synthetic)
    return {
        "@synthetic/train": str(paths.train),
        "@synthetic/clean": str(paths.clean),
        "@synthetic/eval": str(paths.eval),
        "@synthetic/classnames": str(paths.classnames),
    }


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _effective_resources(
    stage: StagePlan, info: backend.ClusterInfo, profile: str, quiet: bool = True
) -> dict[str, float]:
    res = {k: float(v) for k, v in stage.resources.items()}
    if res.get("gpu", 0) > 0 and info.total_gpus == 0 and profile == "embedded":
        # The embedded default runs every search space as written on a CPU-only machine:
        # the GPU fraction is dropped, the CPU request stays.
        if not quiet:
            print(
                f"[{stage.name}] no GPU in the cluster: the embedded profile runs these trials "
                f"on cpu: {res.get('cpu', 1):g} (asked gpu: {res['gpu']:g})",
                flush=True,
            )
        res.pop("gpu")
    return res


def _payload(
    trial: TrialPlan,
    plan: SweepPlan,
    writer: StoreWriter,
    synthetic: dict[str, str] | None,
    starts: Mapping[str, str],
    screened: dict[str, Any] | None,
    resources: Mapping[str, float],
) -> dict[str, Any]:
    config = _fill_placeholders(copy.deepcopy(trial.config), synthetic)
    params = dict(trial.params)
    if trial.stage == "pretrain":
        key = plan.pretrain_cache_keys[_job_of(trial)]
        config["checkpoint_dir"] = str(writer.sweep_dir.parent / ".cache" / "pretrain" / key)
        config["save"] = "every"
    else:
        config["checkpoint_dir"] = str(writer.checkpoints_dir / trial.trial_id)
        if trial.stage == "clean" and screened is not None:
            config.setdefault("model", {})["checkpoint"] = screened["checkpoint"]
            params.update(screened["params"])
        elif trial.start is not None:
            config.setdefault("model", {})["checkpoint"] = starts[trial.start]
        _fill_start(config)
    config["threads"] = max(1, int(resources.get("cpu", 1)))
    return {
        "trial_id": trial.trial_id,
        "stage": trial.stage,
        "entry": trial.entry,
        "method": trial.method,
        "objective": trial.objective,
        "params": params,
        "config": config,
        "resources": dict(resources),
        "job": _job_of(trial) if trial.stage == "pretrain" else None,
    }


def _fill_start(config: dict[str, Any]) -> None:
    """`@start` as a teacher checkpoint: the trial's own start model (embedded D.11)."""
    loss = config.get("loss", {})
    if loss.get("teacher_checkpoint") == START_CHECKPOINT:
        loss["teacher_checkpoint"] = config.get("model", {}).get("checkpoint")


def _search_base(stage: StagePlan) -> TrialPlan:
    """An Optuna stage's template as a trial: its sampled params complete it in the worker."""
    s = stage.search
    assert s is not None
    return TrialPlan(
        trial_id=f"{stage.name}-optuna",
        stage=stage.name,
        entry=s.entry,
        method=s.method,
        objective=s.objective,
        params={},
        config=s.config,
        start=s.start,
    )


def _job_of(trial: TrialPlan) -> str:
    """The pre-training job a trial is (pretrain stage) or starts from (later stages)."""
    if trial.stage == "pretrain":
        return trial.trial_id.removeprefix("pretrain-")
    return trial.start or ""


def _fill_placeholders(config: Any, synthetic: dict[str, str] | None) -> Any:
    if isinstance(config, dict):
        return {k: _fill_placeholders(v, synthetic) for k, v in config.items()}
    if isinstance(config, str) and config.startswith(PLACEHOLDER):
        if synthetic is None:
            raise SweeperError(f"{config} is only defined in the embedded profile")
        return synthetic[config]
    return config


def _done_trials(writer: StoreWriter) -> dict[str, str]:
    try:
        table = read_trials(writer.sweep_dir.parent, [writer.sweep_id])
    except Exception:  # no trial rows yet: a fresh sweep
        return {}
    rows = table.select(["trial_id", "status"]).to_pylist()
    return {r["trial_id"]: r["status"] for r in rows if r["status"] in FINISHED}


def _run_stage(
    stage: StagePlan,
    payloads: list[dict[str, Any]],
    resources: Mapping[str, float],
    writer: StoreWriter,
) -> int:
    done = _done_trials(writer)
    storage = writer.sweep_dir / "ray"
    if stage.search is not None:
        return _run_search(stage, payloads[0], writer, resources, storage, done)
    todo = [p for p in payloads if p["trial_id"] not in done]
    events = StoreEvents(writer, stage.name, total=len(payloads))
    events.status.update(
        {p["trial_id"]: done[p["trial_id"]] for p in payloads if p["trial_id"] in done}
    )
    events.trials.extend(trial_row(writer.sweep_id, p, "pending") for p in todo)
    events.flush()
    if len(todo) < len(payloads):
        print(
            f"[{stage.name}] {len(payloads) - len(todo)} trial(s) already finished: skipped",
            flush=True,
        )
    backend.run_grid(
        stage.name,
        todo,
        resources=resources,
        max_failures=stage.max_failures,
        storage=storage,
        events=events,
    )
    events.flush()
    events.progress()
    return events.counts()["failed"]


def _run_search(
    stage: StagePlan,
    base: dict[str, Any],
    writer: StoreWriter,
    resources: Mapping[str, float],
    storage: Path,
    done: Mapping[str, str],
) -> int:
    """An Optuna stage: runs what is left of its trial budget (resume counts finished ones)."""
    search = stage.search
    assert search is not None
    already = sum(1 for t in done if t.startswith(f"{base['trial_id']}-"))
    remaining = max(0, search.n_trials - already)
    events = StoreEvents(writer, stage.name, total=search.n_trials)
    events.status.update({t: s for t, s in done.items() if t.startswith(f"{base['trial_id']}-")})
    base = {**base, "search": True}
    if remaining:
        backend.run_optuna(
            stage.name,
            base,
            search.params,
            n_trials=remaining,
            seed=search.seed,
            resources=resources,
            max_failures=stage.max_failures,
            storage=storage,
            events=events,
            max_concurrent=search.max_concurrent,
        )
    events.flush()
    events.progress()
    return events.counts()["failed"]


def _use_cache(payloads: list[dict[str, Any]], writer: StoreWriter) -> list[dict[str, Any]]:
    """Pre-training already done under the same config hash: copy its rows, skip the run."""
    todo = []
    for p in payloads:
        cache = Path(p["config"]["checkpoint_dir"])
        done_file = cache / "done.json"
        if not done_file.is_file():
            todo.append(p)
            continue
        cached = json.loads(done_file.read_text())
        rows = [dict(r, sweep_id=writer.sweep_id, trial_id=p["trial_id"]) for r in cached["rows"]]
        writer.append_epochs(rows)
        writer.append_trials(
            [
                trial_row(
                    writer.sweep_id, {**p, "params": {**p["params"], "cache": "hit"}}, "completed"
                )
            ]
        )
        print(f"[pretrain] {p['trial_id']}: reusing cached pre-training {cache}", flush=True)
    return todo


def _select_pretrain(stage: StagePlan, writer: StoreWriter) -> dict[str, str]:
    """The paper's rule over the stored epoch rows: job name -> selected checkpoint."""
    rows = _epoch_rows(writer)
    by_trial = {t.trial_id: t for t in stage.trials}
    status = _done_trials(writer)
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        t = by_trial.get(r["trial_id"])
        if r["stage"] == "pretrain" and t is not None and status.get(t.trial_id) == "completed":
            runs.setdefault(_job_of(t), []).append(r)
    rules = (stage.select or {}).get("jobs", {})
    chosen = select_pretrained(runs, rules)
    recorded = {
        r["trial_id"]: json.loads(r["params"] or "{}")
        for r in read_trials(writer.sweep_dir.parent, [writer.sweep_id]).to_pylist()
    }
    starts: dict[str, str] = {}
    for trial in stage.trials:
        job = _job_of(trial)
        if job not in chosen:
            continue
        row = chosen[job]
        starts[job] = row["checkpoint"]
        _write_cache(trial, runs[job], row)
        payload = {
            "trial_id": trial.trial_id,
            "stage": "pretrain",
            "method": trial.method,
            "objective": trial.objective,
            "params": recorded.get(trial.trial_id, trial.params),  # keeps "cache": "hit"
            "config": trial.config,
        }
        writer.append_trials(
            [trial_row(writer.sweep_id, payload, "completed", selected_epoch=row["epoch"])]
        )
        print(
            f"[pretrain] selected {job} epoch {row['epoch']} ({rules.get(job, {}).get('rule', 'max_acc')}): "
            f"clean_acc {row['clean_acc']:.2f}, asr {row['asr']:.2f}",
            flush=True,
        )
    missing = {_job_of(t) for t in stage.trials} - set(starts)
    if missing:
        raise SweeperError(
            f"pre-training job(s) {sorted(missing)} did not complete, so there is no model to "
            f"clean: see `sweeper status {writer.sweep_id}` for their errors"
        )
    return starts


def _write_cache(trial: TrialPlan, rows: list[dict[str, Any]], chosen: dict[str, Any]) -> None:
    ckpt = chosen.get("checkpoint")
    if not ckpt:
        return
    cache = Path(ckpt).parent
    keep = [{k: v for k, v in r.items() if k not in ("sweep_id", "written_at")} for r in rows]
    (cache / "done.json").write_text(
        json.dumps({"trial": trial.trial_id, "rows": keep}, default=str)
    )


def _pick_screen(stage: StagePlan, writer: StoreWriter) -> dict[str, Any]:
    rows = [r for r in _epoch_rows(writer) if r["stage"] == "screen"]
    max_asr = float((stage.select or {}).get("max_asr", 15))
    pick = pick_screened(rows, max_asr=max_asr)
    if pick is None:
        raise SweeperError(
            f"no screened (shrink, perturb_sigma) model has ASR < {max_asr:g}%: nothing to clean. "
            "Widen screen.grid or raise screen.pick.max_asr"
        )
    params = {k[2:]: v for k, v in pick.items() if k.startswith("p_") and v is not None}
    trial = next(t for t in stage.trials if t.trial_id == pick["trial_id"])
    payload = {
        "trial_id": trial.trial_id,
        "stage": "screen",
        "method": trial.method,
        "objective": trial.objective,
        "params": trial.params,
        "config": trial.config,
    }
    writer.append_trials([trial_row(writer.sweep_id, payload, "completed", selected_epoch=0)])
    print(
        f"[screen] picked {pick['trial_id']} ({params}): clean_acc {pick['clean_acc']:.2f}, "
        f"asr {pick['asr']:.2f}",
        flush=True,
    )
    return {"checkpoint": pick["checkpoint"], "params": params}
