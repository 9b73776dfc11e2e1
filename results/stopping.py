"""When to stop cleaning (the paper's Figure 5): what a practitioner loses without an oracle.

Per trial, three picks of an epoch among its candidates (epochs >= 1):

- `oracle`: the best candidate with ASR <= threshold (needs the attack to be known);
- `last`: the last epoch;
- `min_loss`: the epoch with the lowest cleaning loss (what one would pick without it).

`acc_lost` of a pick is the oracle's accuracy minus the pick's (None when the trial has no
candidate under the threshold); `success` says whether the pick itself is under it.
Jaggedness measures how far the trajectory (epoch 0 onward, in the accuracy-ASR plane) is
from monotone: 1 - |net change| / path length, both in L1, so 0 when accuracy and ASR each
move one way only and near 1 when the run wanders back and forth. `asr_reversals` counts
consecutive epochs where ASR turns from falling to rising or back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from results.best import DEFAULT_THRESHOLD, check_threshold
from results.candidates import DEFAULT_GROUP, Candidates, Group, candidates


@dataclass(frozen=True)
class EpochPick:
    epoch: int
    clean_acc: float
    asr: float
    success: bool
    acc_lost: float | None


@dataclass(frozen=True)
class TrialStopping:
    group: Group
    sweep_id: str
    trial_id: str
    n_epochs: int
    oracle: EpochPick | None
    last: EpochPick
    min_loss: EpochPick | None
    jaggedness: float
    path_length: float
    asr_reversals: int


@dataclass(frozen=True)
class RuleSummary:
    """One stopping rule over a group's trials."""

    rule: str
    # Share of the trials with an oracle whose pick is also under the threshold.
    success_rate: float | None
    # Mean oracle-minus-pick accuracy (points) over those successful picks.
    mean_acc_lost: float | None
    # Best accuracy among the rule's picks under the threshold, and the group oracle's lead
    # over it: what one loses by using this rule instead of the oracle (None: no pick under).
    best_acc: float | None
    loss_vs_oracle: float | None


@dataclass(frozen=True)
class GroupStopping:
    group: Group
    n_trials: int
    n_with_oracle: int
    oracle_acc: float | None
    last: RuleSummary
    min_loss: RuleSummary
    mean_jaggedness: float | None
    mean_asr_reversals: float | None


def _first_per_segment(
    seg: np.ndarray, n_seg: int, mask: np.ndarray, *keys: np.ndarray
) -> np.ndarray:
    """Per segment, the masked row that sorts first by `keys` (first key primary); -1 if none.

    The last key should be the epoch: unique within a trial, so there are no ties left.
    """
    idx = np.flatnonzero(mask)
    idx = idx[np.lexsort((*(k[idx] for k in reversed(keys)), seg[idx]))]
    first = np.r_[True, seg[idx][1:] != seg[idx][:-1]] if idx.size else np.zeros(0, bool)
    out = np.full(n_seg, -1, dtype=np.int64)
    out[seg[idx[first]]] = idx[first]
    return out


class _Trajectories:
    """Finite rows of `cands` cut into one segment per trial, with per-segment figures."""

    def __init__(self, cands: Candidates) -> None:
        group = np.repeat(np.arange(len(cands.groups)), np.diff(cands.bounds))
        rows = np.flatnonzero(np.isfinite(cands.clean_acc) & np.isfinite(cands.asr))
        self.rows, self.group = rows, group[rows]
        self.trial, self.epoch = cands.trial[rows], cands.epoch[rows]
        self.acc, self.asr, self.loss = cands.clean_acc[rows], cands.asr[rows], cands.loss[rows]
        # No rows (a sweep that holds only pre-training so far): no segments, not one empty one.
        new = (
            np.r_[True, (self.trial[1:] != self.trial[:-1]) | (self.group[1:] != self.group[:-1])]
            if rows.size
            else np.zeros(0, dtype=bool)
        )
        self.seg = np.cumsum(new) - 1
        self.starts = np.flatnonzero(new)
        self.n = self.starts.size
        self.ends = np.r_[self.starts[1:], rows.size] - 1

    def path(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per segment: L1 path length, jaggedness and ASR reversals."""
        same = self.seg[1:] == self.seg[:-1]
        d_acc, d_asr = np.diff(self.acc), np.diff(self.asr)
        step = np.where(same, np.abs(d_acc) + np.abs(d_asr), 0.0)
        length = np.bincount(self.seg[1:], weights=step, minlength=self.n)
        net = np.abs(self.acc[self.ends] - self.acc[self.starts]) + np.abs(
            self.asr[self.ends] - self.asr[self.starts]
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            jagged = np.where(length > 0, 1.0 - net / length, 0.0)
        sign = np.sign(np.where(same, d_asr, 0.0))
        turn = (sign[1:] * sign[:-1] < 0) & same[1:] & same[:-1]
        reversals = (
            np.bincount(self.seg[2:][turn], minlength=self.n)
            if turn.size
            else np.zeros(self.n, int)
        )
        return length, np.clip(jagged, 0.0, 1.0), reversals


class _Picker:
    """Builds `EpochPick`s from plain lists (indexing NumPy scalars one by one is slow)."""

    def __init__(self, t: _Trajectories, threshold: float) -> None:
        self.epoch, self.acc, self.asr = t.epoch.tolist(), t.acc.tolist(), t.asr.tolist()
        self.threshold = threshold

    def __call__(self, i: int, oracle_acc: float | None) -> EpochPick | None:
        if i < 0:
            return None
        acc = self.acc[i]
        return EpochPick(
            epoch=self.epoch[i],
            clean_acc=acc,
            asr=self.asr[i],
            success=self.asr[i] <= self.threshold,
            acc_lost=None if oracle_acc is None else oracle_acc - acc,
        )


def stopping_analysis(
    data: Any,
    threshold: float = DEFAULT_THRESHOLD,
    by: Sequence[str] = DEFAULT_GROUP,
    stage: str | None = "clean",
) -> list[TrialStopping]:
    """The stopping figures of every trial with at least one epoch after the start."""
    threshold = check_threshold(threshold)
    cands = candidates(data, by, stage)
    t = _Trajectories(cands)
    if t.n == 0:
        return []
    cand = t.epoch >= 1
    # Rows are in epoch order within a trial: its last row is its last epoch.
    last = np.where(cand[t.ends], t.ends, -1)
    ok = cand & (t.asr <= threshold)
    oracle = _first_per_segment(t.seg, t.n, ok, -t.acc, t.asr, t.epoch).tolist()
    min_loss = _first_per_segment(t.seg, t.n, cand & np.isfinite(t.loss), t.loss, t.epoch).tolist()
    n_epochs = np.bincount(t.seg[cand], minlength=t.n).tolist()
    length, jagged, reversals = (a.tolist() for a in t.path())
    names = cands.table.select(["sweep_id", "trial_id"]).take(t.rows[t.starts]).to_pydict()
    group = t.group[t.starts].tolist()
    pick = _Picker(t, threshold)
    out = []
    for s in np.flatnonzero(last >= 0).tolist():
        ref = None if oracle[s] < 0 else pick.acc[oracle[s]]
        out.append(
            TrialStopping(
                group=cands.groups[group[s]],
                sweep_id=names["sweep_id"][s],
                trial_id=names["trial_id"][s],
                n_epochs=n_epochs[s],
                oracle=pick(oracle[s], ref),
                last=pick(int(last[s]), ref),  # type: ignore[arg-type]
                min_loss=pick(min_loss[s], ref),
                jaggedness=jagged[s],
                path_length=length[s],
                asr_reversals=reversals[s],
            )
        )
    return out


def _rule(rule: str, picks: list[EpochPick | None], oracle_acc: float | None) -> RuleSummary:
    judged = [p for p in picks if p is not None and p.acc_lost is not None]
    wins = [p for p in judged if p.success]
    under = [p.clean_acc for p in picks if p is not None and p.success]
    best = max(under) if under else None
    return RuleSummary(
        rule=rule,
        success_rate=len(wins) / len(judged) if judged else None,
        mean_acc_lost=float(np.mean([p.acc_lost for p in wins])) if wins else None,
        best_acc=best,
        loss_vs_oracle=None if best is None or oracle_acc is None else oracle_acc - best,
    )


def summarize_stopping(trials: Sequence[TrialStopping]) -> list[GroupStopping]:
    """Per group: how the last-epoch and lowest-loss rules fare against the oracle."""
    by_group: dict[Group, list[TrialStopping]] = {}
    for t in trials:
        by_group.setdefault(t.group, []).append(t)
    out = []
    for group, rows in by_group.items():
        oracles = [t.oracle.clean_acc for t in rows if t.oracle is not None]
        oracle_acc = max(oracles) if oracles else None
        out.append(
            GroupStopping(
                group=group,
                n_trials=len(rows),
                n_with_oracle=len(oracles),
                oracle_acc=oracle_acc,
                last=_rule("last", [t.last for t in rows], oracle_acc),
                min_loss=_rule("min_loss", [t.min_loss for t in rows], oracle_acc),
                mean_jaggedness=float(np.mean([t.jaggedness for t in rows])),
                mean_asr_reversals=float(np.mean([t.asr_reversals for t in rows])),
            )
        )
    return out
