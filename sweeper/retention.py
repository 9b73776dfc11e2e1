"""Checkpoint retention: which of a stage's checkpoints the store keeps as the sweep goes.

A policy per stage (`keep:` in the YAML):
- `selected`: what the stage hands on or reports: pre-training's selected epochs (the start
  models), the screen's pick, the cleaning stage's best model per group (the success rule of
  `results.best`, grouped as the report groups: pre-training objective and method);
- `frontier`: `selected` and every candidate on the stage's current Pareto frontier
  (accuracy up, ASR down, `results.pareto`), per group;
- `last`: `selected` and each trial's last checkpoint;
- `all`: every checkpoint a trial writes.
Under every policy the last checkpoint of a trial still running is kept, and a trial's
resume state lives until the trial ends.

Defaults: `selected` for pre-training and the screen (a screen trial then writes no
checkpoint: the driver writes the pick's), `frontier` for cleaning, so the best cleaned model
always has its weights. Pruning is monotone: a dominated candidate stays dominated and a
beaten best stays beaten as rows arrive, so nothing pruned would be kept later.

A pruned checkpoint is recorded (`results.pruned`) before its file is deleted, and the
store's reader returns its rows with `checkpoint` null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.best import best_of_rows
from results.pareto import pareto_indices
from results.pruned import mark_pruned, read_pruned
from sweeper.store_paths import resolve

POLICIES = ("frontier", "selected", "last", "all")
DEFAULT_KEEP = {"pretrain": "selected", "screen": "selected", "clean": "frontier"}
RESUME_DIR = "resume"  # <sweep>/resume/<trial_id>.pt, deleted when the trial ends
GROUP = ("objective", "method")  # within a sweep: `results.candidates.DEFAULT_GROUP`
Row = Mapping[str, Any]


def resume_state_path(sweep_dir: Path, trial_id: str) -> Path:
    """Where a trial keeps its resume state: in its sweep, never in the shared pre-training
    cache (a job resumed there by another sweep would not report its first epochs to it)."""
    return sweep_dir / RESUME_DIR / f"{trial_id}.pt"


def default_keep(stage: str) -> str:
    return DEFAULT_KEEP.get(stage, "all")


def is_candidate(row: Row) -> bool:
    """A model the stage's analyses compare: a trained epoch (a screen point is its epoch 0)."""
    return int(row["epoch"]) >= 1 or row.get("stage") == "screen"


def best_per_group(rows: Iterable[Row], threshold: float) -> set[str]:
    """The checkpoint of each group's best cleaned model by the success rule."""
    out = set()
    for group in _groups(r for r in rows if r.get("checkpoint")).values():
        best = best_of_rows(group, threshold)
        if best is not None:
            out.add(str(best["checkpoint"]))
    return out


def keep_checkpoints(
    rows: Sequence[Row],
    policy: str,
    *,
    selected: Iterable[str] = (),
    running: Iterable[str] = (),
) -> set[str]:
    """The checkpoints (as the rows record them) that `policy` keeps among `rows`.

    `selected`: what the stage hands on (`best_per_group` for cleaning); `running`: trial ids
    still running, whose last checkpoint is kept whatever the policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"keep policy {policy!r} is not one of {', '.join(POLICIES)}")
    with_ckpt = [r for r in rows if r.get("checkpoint")]
    if policy == "all":
        return {str(r["checkpoint"]) for r in with_ckpt}
    keep = set(selected)
    last = _last_per_trial(with_ckpt)
    keep |= {last[t] for t in set(running) & last.keys()}
    if policy == "last":
        keep |= set(last.values())
    elif policy == "frontier":
        for group in _groups(r for r in with_ckpt if is_candidate(r)).values():
            front = pareto_indices([r["clean_acc"] for r in group], [r["asr"] for r in group])
            keep |= {str(group[i]["checkpoint"]) for i in front}
    return keep


def prune(rows: Sequence[Row], keep: set[str], sweep_dir: Path, store_root: Path) -> list[str]:
    """Delete the checkpoints of `rows` not in `keep` (recorded as pruned first); returns
    them. Files outside the store are never touched (a start checkpoint the user gave)."""
    done = read_pruned(sweep_dir)
    gone = sorted({str(r["checkpoint"]) for r in rows if r.get("checkpoint")} - keep - done)
    gone = [c for c in gone if not Path(c).is_absolute()]  # relative: inside the store
    if not gone:
        return []
    mark_pruned(sweep_dir, gone)
    for ckpt in gone:
        path = resolve(ckpt, store_root)
        if path is not None:
            Path(path).unlink(missing_ok=True)
    return gone


def _last_per_trial(rows: Iterable[Row]) -> dict[str, str]:
    last: dict[str, tuple[int, str]] = {}
    for r in rows:
        t, e = str(r["trial_id"]), int(r["epoch"])
        if t not in last or e > last[t][0]:
            last[t] = (e, str(r["checkpoint"]))
    return {t: c for t, (_, c) in last.items()}


def _groups(rows: Iterable[Row]) -> dict[tuple[Any, ...], list[Row]]:
    out: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        out.setdefault(tuple(r.get(k) for k in GROUP), []).append(r)
    return out


@dataclass
class StageRetention:
    """One stage's policy applied while it runs: `StoreEvents` hands it every epoch row it
    stores and every trial that ends."""

    stage: str
    policy: str
    sweep_dir: Path
    # What the stage hands on, from its rows so far (the screen's pick, the best cleaned).
    selected: Callable[[list[Row]], set[str]] = field(default=lambda rows: set())
    rows: list[Row] = field(default_factory=list)
    pruned: int = 0

    @property
    def store_root(self) -> Path:
        return self.sweep_dir.parent

    def observe(self, rows: Iterable[Row]) -> None:
        self.rows.extend(r for r in rows if r.get("checkpoint"))

    def prune(self, running: Iterable[str] = ()) -> None:
        if self.policy == "all" or not self.rows:
            return
        keep = keep_checkpoints(
            self.rows, self.policy, selected=self.selected(self.rows), running=running
        )
        self.pruned += len(prune(self.rows, keep, self.sweep_dir, self.store_root))

    def trial_ended(self, trial_id: str) -> None:
        """A trial that ended (completed, diverged, failed for good) resumes no more."""
        resume_state_path(self.sweep_dir, trial_id).unlink(missing_ok=True)


def save_mode(stage: str, keep: str) -> str:
    """What a trial of `stage` writes (`TrialConfig.save`) so that `keep` can be honoured:
    every epoch may be a candidate (pre-training's selection needs them all until it has
    chosen); a screen under `selected` writes none (the driver writes the pick's)."""
    if stage == "screen":
        return "none" if keep == "selected" else "last"
    if stage == "clean" and keep == "last":
        return "last"
    return "every"
