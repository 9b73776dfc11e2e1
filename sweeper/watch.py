"""`sweeper status --watch`: a sweep's progress read from its store, refreshed until it ends.

Everything comes from the store's rows and `plan.json` (no Ray, no driver to ask), so a
laptop can watch a cluster's sweep on a shared file system. A sweep is finished when every
trial it planned is in a final state, or when its driver stopped it (a signal, a
pre-training job with no model): then nothing will write to it until `sweeper resume`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from sweeper.plan import StagePlan, SweepPlan
from sweeper.progress import ENDED, StageProgress, format_eta, planned_epochs

# ANSI: cursor home, clear the screen (what `watch(1)` does between refreshes).
CLEAR = "\x1b[H\x1b[2J"


def latest_trials(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Each trial's last row (the reader returns them in `written_at` order)."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["written_at"]):
        out[r["trial_id"]] = r
    return out


def _planned_of(stage: StagePlan, trial: Mapping[str, Any]) -> int:
    if stage.search is not None:
        params = json.loads(trial.get("params") or "{}")
        base = {"stage": stage.name, "config": stage.search.config, "search": True}
        return planned_epochs({**base, "params": params, "scaling": stage.search.scaling})
    by_id = {t.trial_id: t for t in stage.trials}
    planned = by_id.get(trial["trial_id"])
    config = planned.config if planned is not None else {}
    return planned_epochs({"stage": stage.name, "config": config})


def stage_progress(
    stage: StagePlan,
    trials: Mapping[str, Mapping[str, Any]],
    epochs: Iterable[Mapping[str, Any]],
) -> StageProgress:
    """The stage's progress as the driver would see it, rebuilt from the store's rows."""
    progress = StageProgress(stage.name, stage.n_trials)
    mine = {t: r for t, r in trials.items() if r["stage"] == stage.name}
    for tid, row in mine.items():
        if row["status"] != "pending":
            progress.started(tid, _planned_of(stage, row))
    if progress.default_planned is None and stage.trials:
        progress.default_planned = planned_epochs(
            {"stage": stage.name, "config": stage.trials[0].config}
        )
    for e in sorted(epochs, key=lambda e: e["epoch"]):
        if e["trial_id"] in progress.trials and e["stage"] == stage.name:
            progress.epoch(e["trial_id"], int(e["epoch"]), float(e["wall_s"] or 0))
    for tid, row in mine.items():
        if row["status"] in ENDED:
            progress.ended(tid, row["status"])
    # Side by side: as many as run now (the store has no history of it).
    progress.slots = max(1, progress.running())
    return progress


def sweep_finished(plan: SweepPlan, trials: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether anything more will be written: every planned trial ended, or the driver
    stopped the sweep (nothing running, and a trial interrupted or a pre-training job
    failed: `select_pretrain` has no model to clean)."""
    statuses = [r["status"] for r in trials.values()]
    if any(s not in ENDED for s in statuses):
        return False
    if any(
        r["status"] == "interrupted" or (r["stage"] == "pretrain" and r["status"] == "failed")
        for r in trials.values()
    ):
        return True
    for stage in plan.stages:
        ended = [t for t, r in trials.items() if r["stage"] == stage.name]
        if stage.search is not None:
            if len(ended) < stage.search.n_trials:
                return False
        elif any(t.trial_id not in trials for t in stage.trials):
            return False
    return True


def stage_lines(
    plan: SweepPlan,
    trials: Mapping[str, Mapping[str, Any]],
    epochs: list[Mapping[str, Any]],
) -> list[str]:
    """One line per planned stage: done / running / failed of its trials, and its ETA."""
    lines = []
    for stage in plan.stages:
        mine = [r["status"] for r in trials.values() if r["stage"] == stage.name]
        done = sum(s in ("completed", "diverged") for s in mine)
        failed = sum(s == "failed" for s in mine)
        running = sum(s == "running" for s in mine)
        line = f"  {stage.name}: {done}/{stage.n_trials} done, {running} running, {failed} failed"
        if running:
            progress = stage_progress(stage, trials, epochs)
            line += f" | {progress.running_text()} | {format_eta(progress.eta_s())}"
        lines.append(line)
    return lines


def watch(
    refresh: Callable[[], tuple[list[str], bool]],
    *,
    interval: float,
    count: int | None,
    out: TextIO,
    tty: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print `refresh()`'s lines every `interval` seconds until it says the sweep is
    finished, `count` refreshes were printed, or Ctrl-C; exit 0 in each case."""
    shown = 0
    try:
        while True:
            lines, finished = refresh()
            block = "\n".join(lines)
            if tty:
                out.write(f"{CLEAR}{block}\n")
            else:
                out.write(("\n" if shown else "") + block + "\n")
            out.flush()
            shown += 1
            if finished or (count is not None and shown >= count):
                return 0
            sleep(interval)
    except KeyboardInterrupt:
        # Ctrl-C is how a person stops watching: not an error.
        out.write("\n")
        return 0


def load_plan_of(sweep_dir: Path) -> SweepPlan | None:
    """The sweep's plan, None for a store without one (an imported or hand-made store)."""
    from sweeper.plan_io import load_plan

    path = sweep_dir / "plan.json"
    return load_plan(path) if path.is_file() else None
