"""One runner per stage kind, and the selection each stage hands to the next.

Every decision is made from the rows in the results store, so `resume` re-derives the same
selections, skips finished trials and re-runs only the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from results.store import StoreWriter, read_epochs, read_trials
from sweeper import interrupts
from sweeper import ray_backend as backend
from sweeper.errors import SweeperError, SweepFailed
from sweeper.events import StoreEvents, selected_row, trial_row
from sweeper.payloads import job_of
from sweeper.plan import StagePlan
from sweeper.pretrain_cache import write_cache
from sweeper.ray_backend.loggers import LogTo
from sweeper.retention import Row, StageRetention, best_per_group, keep_checkpoints, prune
from sweeper.screen_chunks import chunk_size, make_chunks, slots
from sweeper.selection import pick_screened, select_pretrained
from sweeper.store_paths import resolve

# A trial its stage's scheduler stopped early is finished: `resume` does not run it again.
FINISHED = ("completed", "diverged", "failed", "stopped")


def epoch_rows(writer: StoreWriter) -> list[dict[str, Any]]:
    """The sweep's epoch rows; none yet (every trial failed before its first epoch) is no
    error, a damaged part file is."""
    root = writer.sweep_dir.parent
    return read_epochs(root, [writer.sweep_id], missing_ok=True).to_pylist()


def trial_rows(writer: StoreWriter) -> list[dict[str, Any]]:
    root = writer.sweep_dir.parent
    return read_trials(root, [writer.sweep_id], missing_ok=True).to_pylist()


def done_trials(writer: StoreWriter) -> dict[str, str]:
    """Finished trials by id. A damaged trials part raises: read as "nothing finished", it
    would make `resume` run finished trials again."""
    return {r["trial_id"]: r["status"] for r in trial_rows(writer) if r["status"] in FINISHED}


def run_stage(
    stage: StagePlan,
    payloads: list[dict[str, Any]],
    resources: Mapping[str, float],
    writer: StoreWriter,
    threshold: float,
    log_to: LogTo | None = None,
) -> dict[str, str]:
    """Run what is left of a grid stage; returns its failed or diverged trials."""
    done = done_trials(writer)
    todo = [p for p in payloads if p["trial_id"] not in done]
    events = StoreEvents(writer, stage.name, total=len(payloads), threshold=threshold)
    events.status.update(
        {p["trial_id"]: done[p["trial_id"]] for p in payloads if p["trial_id"] in done}
    )
    _track(events, stage, writer, threshold)
    events.pending(todo)
    events.flush()
    if len(todo) < len(payloads):
        print(f"[{stage.name}] {len(payloads) - len(todo)} trial(s) already finished: skipped")
    storage = writer.sweep_dir / "ray"
    if stage.name == "screen" and not stage.scheduler:
        # Several points per trial: the screen's wall is its evaluations, not Ray's overhead.
        # (A scheduler decides per trial, so a screen with one runs a trial per point.)
        size = stage.points_per_trial or chunk_size(
            len(todo), slots(resources, backend.alive_nodes())
        )
        todo = make_chunks(todo, size, stage.name)
    with _stopping(stage.name, events, writer):
        backend.run_grid(
            stage.name,
            todo,
            resources=resources,
            max_failures=stage.max_failures,
            storage=storage,
            events=events,
            log_to=log_to,
            scheduler=stage.scheduler,
            history=_history(stage, writer, set(done)),
        )
    return _ended(events)


def run_search(
    stage: StagePlan,
    base: dict[str, Any],
    resources: Mapping[str, float],
    writer: StoreWriter,
    threshold: float,
    log_to: LogTo | None = None,
) -> dict[str, str]:
    """An Optuna stage: runs what is left of its trial budget (resume counts finished ones)."""
    search = stage.search
    assert search is not None
    prefix = f"{base['trial_id']}-"
    done = {t: s for t, s in done_trials(writer).items() if t.startswith(prefix)}
    remaining = max(0, search.n_trials - len(done))
    events = StoreEvents(writer, stage.name, total=search.n_trials, threshold=threshold)
    events.status.update(done)
    _track(events, stage, writer, threshold)
    if remaining:
        with _stopping(stage.name, events, writer):
            backend.run_optuna(
                stage.name,
                {**base, "search": True, "scaling": search.scaling},
                search.params,
                n_trials=remaining,
                seed=search.seed,
                resources=resources,
                max_failures=stage.max_failures,
                storage=writer.sweep_dir / "ray",
                events=events,
                max_concurrent=search.max_concurrent,
                log_to=log_to,
                scheduler=stage.scheduler,
                history=_history(stage, writer, set(done)),
                finished=_finished_points(writer, done, threshold),
            )
    return _ended(events)


def _finished_points(
    writer: StoreWriter, done: Mapping[str, str], threshold: float
) -> list[tuple[dict[str, Any], tuple[float, float] | None]]:
    """A resumed Optuna stage's finished trials as its searcher is told them: (params,
    objective), the objective None for a failed trial (`ray_backend.optuna_warm`)."""
    from sweeper.trialrun import best_point_of_rows

    if not done:
        return []
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in epoch_rows(writer):
        rows.setdefault(r["trial_id"], []).append(r)
    out = []
    for t in trial_rows(writer):
        if t["trial_id"] not in done:
            continue
        params = json.loads(t["params"] or "{}")
        point = None
        if t["status"] != "failed":
            point = best_point_of_rows(rows.get(t["trial_id"], []), threshold)
        out.append((params, point))
    return out


def _history(stage: StagePlan, writer: StoreWriter, done: set[str]) -> list[dict[str, Any]]:
    """A resumed stage's epoch rows of its finished trials, in the order they were written,
    for its scheduler's rungs (none without a scheduler or before anything finished)."""
    if not stage.scheduler or not done:
        return []
    rows = [r for r in epoch_rows(writer) if r["stage"] == stage.name and r["trial_id"] in done]
    return sorted(rows, key=lambda r: (r["written_at"], r["trial_id"], r["epoch"]))


class _stopping:
    """Around a stage's Tune run: a signal (first: Tune stopped every trial; second: a
    `ForcedStop` out of Tune's loop) ends in `SweepInterrupted`, running trials recorded."""

    def __init__(self, stage: str, events: StoreEvents, writer: StoreWriter) -> None:
        self.stage, self.events, self.writer = stage, events, writer

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        signum = interrupts.requested()
        if signum is None or (err is not None and not interrupts.is_forced(err)):
            return False
        self.events.flush()
        ids = self.events.interrupted(interrupts.signal_name(signum))
        counts = self.events.counts()
        raise interrupts.SweepInterrupted(
            f"interrupted by {interrupts.signal_name(signum)} during the {self.stage} stage: "
            f"{counts['done']} trial(s) of the stage finished, {len(ids)} interrupted "
            f"({', '.join(ids) or 'none running'}); nothing was reported as complete. Finish "
            f"with: sweeper resume {self.writer.sweep_id} --store {self.writer.sweep_dir.parent}",
            signum,
        ) from None


def _ended(events: StoreEvents) -> dict[str, str]:
    events.flush()
    if events.retention is not None:
        events.retention.prune()  # no trial of the stage runs any more
    events.progress(force=True)
    return events.unsuccessful()


def _track(events: StoreEvents, stage: StagePlan, writer: StoreWriter, threshold: float) -> None:
    """The epochs the store holds already (written once), and the stage's retention; a
    pre-training's checkpoints are pruned only once selection has chosen (`select_pretrain`)."""
    rows = [r for r in epoch_rows(writer) if r["stage"] == stage.name]
    events.stored = {(r["trial_id"], int(r["epoch"])) for r in rows}
    policy = "all" if stage.name == "pretrain" else stage.keep
    events.retention = StageRetention(
        stage.name, policy, writer.sweep_dir, selected=_selected_of(stage, threshold)
    )
    events.retention.observe(rows)


def _selected_of(stage: StagePlan, threshold: float) -> Callable[[list[Row]], set[str]]:
    """What a stage hands on, from its rows: each start's screen pick, each group's best."""
    if stage.name != "screen":
        return lambda rows: best_per_group(rows, threshold)
    max_asr = float((stage.select or {}).get("max_asr", 15))
    start_of = {t.trial_id: t.start for t in stage.trials}

    def picks(rows: list[Row]) -> set[str]:
        by_start: dict[str | None, list[Row]] = {}
        for r in rows:
            if r["trial_id"] in start_of:
                by_start.setdefault(start_of[r["trial_id"]], []).append(r)
        chosen = (pick_screened(rs, max_asr=max_asr) for rs in by_start.values())
        return {str(p["checkpoint"]) for p in chosen if p is not None and p.get("checkpoint")}

    return picks


def select_pretrain(stage: StagePlan, writer: StoreWriter) -> dict[str, str]:
    """The paper's rule over the stored epoch rows: job name -> selected checkpoint."""
    root = writer.sweep_dir.parent
    by_trial = {t.trial_id: t for t in stage.trials}
    trials = {r["trial_id"]: r for r in trial_rows(writer)}
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in epoch_rows(writer):
        t = by_trial.get(r["trial_id"])
        if (
            r["stage"] == "pretrain"
            and t is not None
            and _status(trials, t.trial_id) == "completed"
        ):
            runs.setdefault(job_of(t), []).append(r)
    rules = (stage.select or {}).get("jobs", {})
    chosen = select_pretrained(runs, rules)
    pruned = _prune_pretrain(stage, runs, chosen, trials, writer)
    starts: dict[str, str] = {}
    for trial in stage.trials:
        job = job_of(trial)
        if job not in chosen:
            continue
        row = chosen[job]
        starts[job] = str(resolve(row["checkpoint"], root))
        kept = [{**r, "checkpoint": None} if r["checkpoint"] in pruned else r for r in runs[job]]
        write_cache(trial, kept, row, root)
        recorded = trials.get(trial.trial_id)
        payload = {
            "trial_id": trial.trial_id,
            "stage": "pretrain",
            "method": trial.method,
            "objective": trial.objective,
            # keeps "cache": "hit"
            "params": json.loads(recorded["params"] or "{}") if recorded else trial.params,
            "config": trial.config,
            # How the job ran (a distributed job's workers and batches): the row is the last.
            "resources": json.loads(recorded.get("resources") or "{}") if recorded else {},
        }
        fresh = trial_row(writer.sweep_id, payload, "completed", store_root=root)
        writer.append_trials([selected_row(recorded, fresh, row["epoch"])])
        rule = rules.get(job, {}).get("rule", "max_acc")
        print(
            f"[pretrain] selected {job} epoch {row['epoch']} ({rule}): "
            f"clean_acc {row['clean_acc']:.2f}, asr {row['asr']:.2f}",
            flush=True,
        )
    missing = sorted({job_of(t) for t in stage.trials} - set(starts))
    if missing:
        raise _no_model(missing, trials, writer)
    return starts


def _prune_pretrain(
    stage: StagePlan,
    runs: Mapping[str, list[dict[str, Any]]],
    chosen: Mapping[str, Mapping[str, Any]],
    trials: Mapping[str, Mapping[str, Any]],
    writer: StoreWriter,
) -> set[str]:
    """Prune what the stage's policy does not keep of the jobs this sweep trained (a cache
    hit's files are the cache's, and may be another sweep's selection); returns them."""
    if stage.keep == "all":
        return set()
    rows: list[dict[str, Any]] = []
    for job, job_rows in runs.items():
        recorded = trials.get(f"pretrain-{job}") or {}
        if json.loads(recorded.get("params") or "{}").get("cache") != "hit":
            rows += job_rows
    selected = {str(row["checkpoint"]) for row in chosen.values()}
    keep = keep_checkpoints(rows, stage.keep, selected=selected)
    return set(prune(rows, keep, writer.sweep_dir, writer.sweep_dir.parent))


def _no_model(
    missing: list[str], trials: Mapping[str, Mapping[str, Any]], writer: StoreWriter
) -> SweepFailed:
    """Each job without a selected model, with its status and last error line."""
    why = "; ".join(
        f"{job}: {_status(trials, f'pretrain-{job}')}"
        + (f" ({_last_line(trials[f'pretrain-{job}']['error'])})" if _error(trials, job) else "")
        for job in missing
    )
    return SweepFailed(
        f"pre-training job(s) {missing} produced no model to clean ({why}). Details: "
        f"sweeper status {writer.sweep_id} --store {writer.sweep_dir.parent}"
    )


def _status(trials: Mapping[str, Mapping[str, Any]], trial_id: str) -> str:
    return str(trials.get(trial_id, {}).get("status", "not run"))


def _error(trials: Mapping[str, Mapping[str, Any]], job: str) -> bool:
    return bool(trials.get(f"pretrain-{job}", {}).get("error"))


def _last_line(text: str | None) -> str:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def pick_screen(
    stage: StagePlan, writer: StoreWriter, payloads: list[dict[str, Any]] | None = None
) -> dict[str | None, dict[str, Any]]:
    """One pick per start model (D.13): start job -> {"checkpoint", "params"}.

    A screen that kept no checkpoints (`keep: selected`) has its pick's model written here
    from the pick's trial config (`payloads`): the same start weights and seeded
    perturbation the trial evaluated."""
    root = writer.sweep_dir.parent
    max_asr = float((stage.select or {}).get("max_asr", 15))
    by_trial = {t.trial_id: t for t in stage.trials}
    rows_by_start: dict[str | None, list[dict[str, Any]]] = {}
    for r in epoch_rows(writer):
        t = by_trial.get(r["trial_id"])
        if r["stage"] == "screen" and t is not None:
            rows_by_start.setdefault(t.start, []).append(r)
    recorded = {r["trial_id"]: r for r in trial_rows(writer)}
    picks: dict[str | None, dict[str, Any]] = {}
    for start in dict.fromkeys(t.start for t in stage.trials):
        pick = pick_screened(rows_by_start.get(start, []), max_asr=max_asr)
        name = start or "the start checkpoint"
        if pick is None:
            raise SweeperError(
                f"no screened (shrink, perturb_sigma) model of {name} has ASR < {max_asr:g}%: "
                "nothing to clean. Widen screen.grid or raise screen.pick.max_asr"
            )
        params = {k[2:]: v for k, v in pick.items() if k.startswith("p_") and v is not None}
        trial = by_trial[pick["trial_id"]]
        payload = {
            "trial_id": trial.trial_id,
            "stage": "screen",
            "method": trial.method,
            "objective": trial.objective,
            "params": trial.params,
            "config": trial.config,
        }
        fresh = trial_row(writer.sweep_id, payload, "completed", store_root=root)
        writer.append_trials([selected_row(recorded.get(trial.trial_id), fresh, 0)])
        print(
            f"[screen] picked {pick['trial_id']} for {name} ({params}): clean_acc "
            f"{pick['clean_acc']:.2f}, asr {pick['asr']:.2f}",
            flush=True,
        )
        ckpt = resolve(pick["checkpoint"], root) or _write_pick(pick, payloads, writer)
        picks[start] = {"checkpoint": str(ckpt), "params": params}
    return picks


def _write_pick(
    pick: Mapping[str, Any], payloads: list[dict[str, Any]] | None, writer: StoreWriter
) -> str:
    """The pick's model, written once into `checkpoints/<trial>/` (kept on a resume)."""
    from trainers.entries import perturbed_checkpoint

    config = next((p["config"] for p in payloads or [] if p["trial_id"] == pick["trial_id"]), None)
    if config is None:
        raise SweeperError(f"screen pick {pick['trial_id']} has no checkpoint and no config")
    path = writer.checkpoints_dir / str(pick["trial_id"]) / "epoch-000.pt"
    if not path.is_file():
        perturbed_checkpoint(config, path, clean_acc=pick["clean_acc"], asr=pick["asr"])
    return str(path)
