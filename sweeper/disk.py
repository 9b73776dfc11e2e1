"""The disk a plan's checkpoints may take, before and after retention (`launch --dry-run`).

bytes = checkpoints x the model's state-dict bytes (weights and buffers, fp32: 4 bytes each;
RN50: 408 MB). Checkpoints per stage:
- before retention (`keep: all`): every checkpoint the trials write: pre-training and
  cleaning one per epoch and the start model (epochs + 1), a screen point one;
- after retention, at the end of the sweep: `selected` keeps one per pre-training job, one
  screen pick per start model, one best cleaned model per group (start objective x method);
  `last` adds one per trial; `frontier` adds the frontier's candidates, estimated at one per
  trial (a trajectory seldom puts more than one epoch on a sweep's frontier; at most, every
  epoch). Never more than before.
While a trial runs it also holds a resume state (weights and AdamW's two moments: 3 x the
model), deleted when it ends; and a stage prunes as its rows arrive, so the store briefly
holds the checkpoints of the epochs not judged yet.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError
from sweeper.plan import StagePlan, SweepPlan

RESUME_FACTOR = 3  # weights + AdamW's exp_avg and exp_avg_sq, all fp32


@dataclass(frozen=True)
class StageDisk:
    stage: str
    keep: str
    model: str
    checkpoint_bytes: int
    before: int  # checkpoints
    after: int

    @property
    def before_bytes(self) -> int:
        return self.before * self.checkpoint_bytes

    @property
    def after_bytes(self) -> int:
        return self.after * self.checkpoint_bytes


class DiskFull(SweeperError):
    """The plan's checkpoints cannot fit the store's free space."""


def plan_disk(plan: SweepPlan) -> list[StageDisk]:
    """Checkpoint counts and bytes of every stage (see the module's formula)."""
    from trainers.models import state_bytes

    out = []
    for stage in plan.stages:
        configs = _configs(stage)
        model = str(configs[0].get("model", {}).get("name", "tiny-rn"))
        before = sum(_written(stage.name, c) for c in configs)
        out.append(
            StageDisk(
                stage.name,
                stage.keep,
                model,
                state_bytes(model),
                before,
                min(before, _kept(stage, configs)),
            )
        )
    return out


def _configs(stage: StagePlan) -> list[dict[str, Any]]:
    if stage.search is not None:
        return [stage.search.config] * stage.search.n_trials
    return [t.config for t in stage.trials]


def _written(stage: str, config: dict[str, Any]) -> int:
    """Checkpoints one trial writes under `keep: all`."""
    if stage == "screen":
        return 1
    return int(config.get("optim", {}).get("epochs", 1)) + 1


def _kept(stage: StagePlan, configs: list[dict[str, Any]]) -> int:
    n = len(configs)
    if stage.keep == "all":
        return sum(_written(stage.name, c) for c in configs)
    if stage.name == "pretrain":
        selected = n  # one job per trial
    elif stage.name == "screen":
        selected = len({t.start for t in stage.trials})
    else:
        selected = len(_groups(stage))
    return selected + (n if stage.keep in ("last", "frontier") else 0)


def _groups(stage: StagePlan) -> set[tuple[Any, ...]]:
    if stage.search is not None:
        return {(stage.search.objective, stage.search.method)}
    return {(t.objective, t.method) for t in stage.trials}


def lines(disk: list[StageDisk]) -> list[str]:
    """The dry-run's disk lines: per stage, the total, and the formula."""
    out = [f"  {'disk':<10}{'keep':>10}{'before':>12}{'after':>12}  checkpoints before -> after"]
    for d in disk:
        out.append(
            f"  {d.stage:<10}{d.keep:>10}{_size(d.before_bytes):>12}{_size(d.after_bytes):>12}"
            f"  {d.before} -> {d.after} x {_size(d.checkpoint_bytes)} ({d.model})"
        )
    before = sum(d.before_bytes for d in disk)
    after = sum(d.after_bytes for d in disk)
    out.append(f"  {'total':<10}{'':>10}{_size(before):>12}{_size(after):>12}")
    out.append(
        "  bytes = checkpoints x the model's state-dict bytes (fp32); after = selected models "
        "+ (frontier: 1 per trial, estimated; last: 1 per trial); a running trial also holds a "
        f"resume state of {RESUME_FACTOR} x the model until it ends"
    )
    return out


def as_json(disk: list[StageDisk]) -> dict[str, Any]:
    return {
        "stages": [
            {
                "name": d.stage,
                "keep": d.keep,
                "model": d.model,
                "checkpoint_bytes": d.checkpoint_bytes,
                "checkpoints_before": d.before,
                "checkpoints_after": d.after,
                "bytes_before": d.before_bytes,
                "bytes_after": d.after_bytes,
            }
            for d in disk
        ],
        "bytes_before": sum(d.before_bytes for d in disk),
        "bytes_after": sum(d.after_bytes for d in disk),
        "formula": "checkpoints x model state-dict bytes; frontier estimated at 1 per trial",
    }


def check_fits(disk: list[StageDisk], store: str | Path) -> None:
    """Refuse a plan whose checkpoints (after retention) exceed the store's free space."""
    need = sum(d.after_bytes for d in disk)
    where = Path(store).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise DiskFull(
            f"the plan's checkpoints may take {_size(need)} ({need} bytes, after retention) but "
            f"{where} has {_size(free)} free: free space, pass another --store, keep fewer "
            "checkpoints (keep: selected), or pass --ignore-disk to launch anyway"
        )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
