"""Best cleaned model: the highest accuracy among candidates with ASR at most a threshold.

This is the figure the paper's Tables 1 and 2 report, with its change relative to the
starting model: `relative_change = (best.clean_acc - start.clean_acc) / start.clean_acc`, a
fraction (-0.45 is the paper's "-45%"). The starting model is the best trial's own epoch-0
row. A group with no candidate under the threshold has `best = None` and
`relative_change = None`: "no candidate", never a number.

Ties on accuracy go to the lower ASR, then the earlier epoch, then the trial first in
(sweep_id, trial_id) order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from results.candidates import (
    BASELINE_METHODS,
    DEFAULT_GROUP,
    Candidates,
    Group,
    as_table,
    candidates,
)
from results.errors import AnalysisError

DEFAULT_THRESHOLD = 5.0


@dataclass(frozen=True)
class StartPoint:
    """The model before cleaning (epoch 0): the best trial's own, else the group's mean."""

    clean_acc: float
    asr: float
    trial_id: str | None
    n_rows: int


@dataclass(frozen=True)
class Candidate:
    """One epoch of one trial, with what a reader needs to find and rebuild it."""

    sweep_id: str
    trial_id: str
    epoch: int
    clean_acc: float
    asr: float
    clean_top5: float | None
    stage: str
    method: str
    objective: str | None
    params: dict[str, Any]
    checkpoint: str | None


@dataclass(frozen=True)
class BestClean:
    """A group's best cleaned model under `threshold` (None when there is none)."""

    group: Group
    threshold: float
    start: StartPoint | None
    best: Candidate | None
    relative_change: float | None
    n_candidates: int
    n_trials: int
    # Shrink-and-perturb (D.13): the poisoned model the screen perturbed. `start` is then the
    # perturbed model (the clean trial's epoch 0) and `relative_change` is measured from
    # here: from the perturbed start it would credit the cleaning with the perturbation's loss.
    origin: StartPoint | None = None

    @property
    def found(self) -> bool:
        return self.best is not None


def check_threshold(threshold: float) -> float:
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 100:
        raise AnalysisError(f"ASR threshold {threshold!r} must be a number of percent in [0, 100]")
    return float(threshold)


def candidate_at(cands: Candidates, row: int) -> Candidate:
    """The `Candidate` of row `row` of `cands.table`."""
    rec = cands.table.slice(row, 1).to_pylist()[0]
    # Swept values by their hyperparameter name ("lr" for column p_lr).
    params = {k[2:]: v for k, v in rec.items() if k.startswith("p_") and v is not None}
    top5 = rec.get("clean_top5")
    return Candidate(
        sweep_id=rec["sweep_id"],
        trial_id=rec["trial_id"],
        epoch=int(rec["epoch"]),
        clean_acc=float(rec["clean_acc"]),
        asr=float(rec["asr"]),
        clean_top5=None if top5 is None or math.isnan(top5) else float(top5),
        stage=rec["stage"],
        method=rec.get("method"),
        objective=rec.get("objective"),
        params=params,
        checkpoint=rec.get("checkpoint"),
    )


def is_success(row: Mapping[str, Any], threshold: float = DEFAULT_THRESHOLD) -> bool:
    """The paper's success rule for one epoch row: a cleaning epoch (>= 1) at ASR <= threshold.

    A baseline's row (`BASELINE_METHODS`) is never a success: it cleaned nothing."""
    if row.get("method") in BASELINE_METHODS:
        return False
    acc, asr = row.get("clean_acc"), row.get("asr")
    finite = acc is not None and asr is not None and math.isfinite(acc) and math.isfinite(asr)
    return finite and int(row["epoch"]) >= 1 and float(asr) <= threshold


def best_of_rows(
    rows: Iterable[Mapping[str, Any]], threshold: float = DEFAULT_THRESHOLD
) -> Mapping[str, Any] | None:
    """The best candidate among plain rows, by the same rule and ties as `best_clean`:
    highest accuracy with ASR <= threshold, then lower ASR, earlier epoch, first trial.

    The one definition of success for whatever reports a best model while a sweep runs
    (progress lines, `sweeper status`, a trial's Optuna objective); epoch 0, the start
    model, is never a candidate.
    """
    ok = [r for r in rows if is_success(r, threshold)]
    if not ok:
        return None
    return min(
        ok,
        key=lambda r: (
            -float(r["clean_acc"]),
            float(r["asr"]),
            int(r["epoch"]),
            str(r.get("sweep_id") or ""),
            str(r.get("trial_id") or ""),
        ),
    )


def best_row(cands: Candidates, rows: np.ndarray, threshold: float) -> int | None:
    """Row of the best candidate among `rows` with ASR <= threshold, or None."""
    ok = rows[cands.is_candidate[rows] & (cands.asr[rows] <= threshold)]
    if ok.size == 0:
        return None
    first = np.lexsort((ok, cands.epoch[ok], cands.asr[ok], -cands.clean_acc[ok]))[0]
    return int(ok[first])


def start_point(cands: Candidates, rows: np.ndarray, trial: int | None) -> StartPoint | None:
    """Epoch 0 of `trial` if it has one, else the mean of the epoch-0 rows in `rows`."""
    zero = rows[(cands.epoch[rows] == 0) & np.isfinite(cands.clean_acc[rows])]
    own = zero[cands.trial[zero] == trial] if trial is not None else zero[:0]
    chosen = own[:1] if own.size else zero
    if chosen.size == 0:
        return None
    trial_id = cands.table["trial_id"][int(chosen[0])].as_py() if chosen.size == 1 else None
    return StartPoint(
        clean_acc=float(np.mean(cands.clean_acc[chosen])),
        asr=float(np.mean(cands.asr[chosen])),
        trial_id=trial_id,
        n_rows=int(chosen.size),
    )


def relative_change(best: float, start: float) -> float | None:
    """(best - start) / start, or None when the start accuracy is 0."""
    return None if start == 0 else (best - start) / start


ORIGIN_SUFFIX = "-origin"
Origins = Mapping[tuple[str, Any], StartPoint]


def screen_origins(data: Any) -> dict[tuple[str, Any], StartPoint]:
    """(sweep_id, objective) -> the unperturbed start model a shrink-and-perturb screen
    evaluated alongside its grid (its trial id ends in "-origin")."""
    table = as_table(data)
    if table.num_rows == 0 or "stage" not in table.column_names:
        return {}
    cols = ["sweep_id", "trial_id", "stage", "objective", "epoch", "clean_acc", "asr"]
    out = {}
    for r in table.select([c for c in cols if c in table.column_names]).to_pylist():
        if r["stage"] == "screen" and r["trial_id"].endswith(ORIGIN_SUFFIX) and r["epoch"] == 0:
            key = (r["sweep_id"], r.get("objective"))
            out[key] = StartPoint(float(r["clean_acc"]), float(r["asr"]), r["trial_id"], 1)
    return out


def group_best(
    cands: Candidates, g: int, threshold: float, origins: Origins | None = None
) -> BestClean:
    rows = cands.rows(g)
    row = best_row(cands, rows, threshold)
    best = None if row is None else candidate_at(cands, row)
    start = start_point(cands, rows, None if row is None else int(cands.trial[row]))
    origin = None
    if best is not None and origins and "shrink" in best.params:
        origin = origins.get((best.sweep_id, best.objective))
    reference = origin or start
    change = None
    if best is not None and reference is not None:
        change = relative_change(best.clean_acc, reference.clean_acc)
    return BestClean(
        group=cands.groups[g],
        threshold=threshold,
        start=start,
        best=best,
        relative_change=change,
        n_candidates=int(np.count_nonzero(cands.is_candidate[rows])),
        n_trials=int(np.unique(cands.trial[rows]).size),
        origin=origin,
    )


def best_clean(
    data: Any,
    threshold: float = DEFAULT_THRESHOLD,
    by: Sequence[str] = DEFAULT_GROUP,
    stage: str | None = "clean",
) -> list[BestClean]:
    """Each group's best cleaned model: highest accuracy with ASR <= `threshold` (%)."""
    threshold = check_threshold(threshold)
    origins = screen_origins(data) if not isinstance(data, Candidates) else None
    cands = candidates(data, by, stage)
    return [group_best(cands, g, threshold, origins) for g in range(len(cands.groups))]
