"""One summary per group: best cleaned model, relative change, frontier, hypervolume, stopping.

`summary_json` is what `sweeper report --json` prints. Units of its keys:

- `clean_acc`, `asr`, `frontier` pairs: percent;
- `relative_change`: a fraction of the starting accuracy (-0.45 is the paper's "-45%");
- `hypervolume`: the share of the (accuracy, ASR) square dominated by the frontier, in [0, 1]
  (reference point accuracy 0%, ASR 100%);
- `stopping.*.loss_vs_oracle`, `mean_acc_lost`: accuracy points.

`best_clean` is null when no candidate has ASR <= threshold; `note` then says so.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from results.best import (
    DEFAULT_THRESHOLD,
    BestClean,
    Origins,
    check_threshold,
    group_best,
    screen_origins,
)
from results.candidates import DEFAULT_GROUP, Candidates, Group, candidates
from results.errors import StoreError
from results.hypervolume import hypervolume
from results.labels import group_words
from results.pareto import Frontier, group_frontier
from results.stopping import (
    GroupStopping,
    RuleSummary,
    TrialStopping,
    stopping_analysis,
    summarize_stopping,
)

UNITS = {
    "clean_acc": "percent",
    "asr": "percent",
    "frontier": "[clean_acc, asr] pairs in percent, by ascending asr",
    "relative_change": "fraction of the starting model's clean_acc",
    "hypervolume": "share of the 100 x 100 (clean_acc, asr) square, reference (0, 100)",
    "loss_vs_oracle": "clean_acc points",
}


@dataclass(frozen=True)
class GroupSummary:
    group: Group
    best: BestClean
    frontier: Frontier
    hypervolume: float
    stopping: GroupStopping | None


@dataclass(frozen=True)
class Summary:
    threshold: float
    by: tuple[str, ...]
    groups: tuple[GroupSummary, ...]
    # Per-trial stopping figures the group summaries were made from (trajectory plots use them).
    trials: tuple[TrialStopping, ...]


def summarize(
    data: Any,
    threshold: float = DEFAULT_THRESHOLD,
    by: Sequence[str] = DEFAULT_GROUP,
    stage: str | None = "clean",
    origins: Origins | None = None,
) -> Summary:
    """Every analysis of every group, computed from one pass of grouping.

    `origins` (shrink and perturb): the unperturbed start models, read from `data` itself
    unless it is already a `Candidates` of one stage.
    """
    threshold = check_threshold(threshold)
    if origins is None and not isinstance(data, Candidates):
        origins = screen_origins(data)
    cands: Candidates = candidates(data, by, stage)
    trials = stopping_analysis(cands, threshold)
    stops = {s.group: s for s in summarize_stopping(trials)}
    groups = []
    for g, group in enumerate(cands.groups):
        front = group_frontier(cands, g)
        groups.append(
            GroupSummary(
                group=group,
                best=group_best(cands, g, threshold, origins),
                frontier=front,
                hypervolume=hypervolume(front.points),
                stopping=stops.get(group),
            )
        )
    return Summary(threshold, cands.by, tuple(groups), tuple(trials))


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def no_candidate_note(threshold: float) -> str:
    return f"no candidate with ASR <= {threshold:g}%"


def _rule_json(rule: RuleSummary) -> dict[str, Any]:
    out = asdict(rule)
    out.pop("rule")
    return out


def group_json(gs: GroupSummary, threshold: float) -> dict[str, Any]:
    best = gs.best
    start = best.start
    out: dict[str, Any] = {
        "group": group_words(gs.group.as_dict()),
        "key": gs.group.as_dict(),
        "label": gs.group.label,
        "start": None if start is None else asdict(start),
        # Shrink and perturb: the poisoned model before the perturbation, which
        # relative_change is measured from (`start` is then the perturbed model).
        "origin": None if best.origin is None else asdict(best.origin),
        "best_clean": None if best.best is None else asdict(best.best),
        "relative_change": best.relative_change,
        "hypervolume": gs.hypervolume,
        "frontier": [list(p) for p in gs.frontier.points],
        "n_trials": best.n_trials,
        "n_candidates": best.n_candidates,
    }
    if best.best is None:
        out["note"] = no_candidate_note(threshold)
    if gs.stopping is not None:
        s = gs.stopping
        out["stopping"] = {
            "last_epoch": _rule_json(s.last),
            "lowest_loss": _rule_json(s.min_loss),
            "mean_jaggedness": s.mean_jaggedness,
            "mean_asr_reversals": s.mean_asr_reversals,
        }
    return out


def summary_json(summary: Summary) -> dict[str, Any]:
    """The summary as JSON-ready data (see the module docstring for units)."""
    return _clean(
        {
            "threshold": summary.threshold,
            "group_by": list(summary.by),
            "units": UNITS,
            "groups": [group_json(g, summary.threshold) for g in summary.groups],
        }
    )


def csv_rows(summary: Summary) -> list[dict[str, Any]]:
    """One flat row per group, for a spreadsheet."""
    rows = []
    for gs in summary.groups:
        b, start, st = gs.best, gs.best.start, gs.stopping
        row: dict[str, Any] = dict(group_words(gs.group.as_dict()))
        row.update(
            {
                "threshold": summary.threshold,
                "start_clean_acc": None if start is None else start.clean_acc,
                "start_asr": None if start is None else start.asr,
                "origin_clean_acc": None if b.origin is None else b.origin.clean_acc,
                "origin_asr": None if b.origin is None else b.origin.asr,
                "best_clean_acc": None if b.best is None else b.best.clean_acc,
                "best_asr": None if b.best is None else b.best.asr,
                "best_trial_id": None if b.best is None else b.best.trial_id,
                "best_epoch": None if b.best is None else b.best.epoch,
                "best_checkpoint": None if b.best is None else b.best.checkpoint,
                "relative_change": b.relative_change,
                "hypervolume": gs.hypervolume,
                "frontier_points": len(gs.frontier.points),
                "stopping_loss_last_epoch": None if st is None else st.last.loss_vs_oracle,
                "stopping_loss_lowest_loss": None if st is None else st.min_loss.loss_vs_oracle,
                "mean_jaggedness": None if st is None else st.mean_jaggedness,
                "n_trials": b.n_trials,
                "n_candidates": b.n_candidates,
                "note": "" if b.best is not None else no_candidate_note(summary.threshold),
            }
        )
        rows.append(_clean(row))
    return rows


def write_csv(summary: Summary, path: str | Path) -> Path:
    """Write `csv_rows(summary)` to `path` (empty cells for "none")."""
    out = Path(path)
    rows = csv_rows(summary)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    try:
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields or ["note"])
            writer.writeheader()
            writer.writerows(rows)
    except OSError as err:
        raise StoreError(f"cannot write CSV {out}: {err.strerror}; pass a writable path") from None
    return out
