"""Pareto-aware asynchronous successive halving over epochs (no Ray here).

Rungs sit at `grace * reduction**k` epochs. When a trial reaches a rung, its standing is its
candidate set so far (every cleaning epoch's (clean_acc, asr), epochs 1 to the rung; epoch 0
is the start model, the same for every trial, and never a candidate), ranked against the
sets the other trials had at the same rung by `results.pareto_rank.rank_trials`
(non-dominated sorting, then exclusive hypervolume contribution). As in ASHA (Li et al.
2020), the trial goes on when it is among the best `ceil(n / reduction)` of the `n` trials
recorded at the rung, itself included, and is stopped otherwise; a trial is only ever
compared with trials that trained as many epochs, and the first trial at a rung goes on.

The arriving trial is ranked inside the rung's whole set, so one that dominates every other
is first and never stopped, and one dominated by the rung's best is stopped once the rung
keeps fewer than all of them. Every epoch a stopped trial ran stays a candidate: stopping
only ends its training. The Tune scheduler (`sweeper.ray_backend.schedulers`) and the
benchmark's replay of a finished grid (`bench/bench_search.py`) both drive this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from results.pareto_rank import Point, rank_trials

NAME = "pareto_asha"
# Far beyond any epoch count a sweep runs; bounds the list of rungs.
_MAX_MILESTONE = 1_000_000


def milestones(grace: int, reduction: float) -> tuple[int, ...]:
    """The rung epochs: grace, grace * reduction, grace * reduction**2, ... (rounded, distinct)."""
    if grace < 1 or not reduction > 1:
        raise ValueError(f"grace {grace} must be >= 1 and reduction {reduction} > 1")
    out: list[int] = []
    k = 0
    while (m := round(grace * reduction**k)) <= _MAX_MILESTONE:
        if not out or m > out[-1]:
            out.append(m)
        k += 1
    return tuple(out)


@dataclass(frozen=True)
class RungDecision:
    """What happened to one trial at one rung."""

    trial: str
    rung: int  # the rung's epoch
    position: int  # 0 = best of the trials recorded at the rung
    n_at_rung: int  # trials recorded at the rung, this one included
    keep: int  # how many of them go on
    layer: float  # its non-dominated layer at the rung (0 = on the rung's frontier)
    stop: bool

    @property
    def reason(self) -> str:
        """The trial's stop reason, as the store's `error` column records it."""
        layer = "the rung's frontier" if self.layer == 0 else f"non-dominated layer {self.layer:g}"
        return (
            f"stopped by {NAME} at epoch {self.rung}: its candidate set ranks "
            f"{self.position + 1} of {self.n_at_rung} trials at this rung ({layer}); the "
            f"rung keeps the best {self.keep}"
        )


@dataclass
class ParetoASHA:
    """Rungs of candidate sets and the decision for each trial that reaches one."""

    grace: int = 1
    reduction: float = 3.0
    rungs: tuple[int, ...] = ()
    # trial -> its candidate points so far, in epoch order
    points: dict[str, list[Point]] = field(default_factory=dict)
    # rung epoch -> trial -> its candidate set when it reached the rung (arrival order)
    recorded: dict[int, dict[str, tuple[Point, ...]]] = field(default_factory=dict)
    decisions: list[RungDecision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rungs = milestones(self.grace, self.reduction)
        self.recorded = {m: {} for m in self.rungs}

    def report(
        self,
        trial: str,
        epoch: int,
        clean_acc: float | None,
        asr: float | None,
        last_epoch: int | None = None,
    ) -> RungDecision | None:
        """Take one epoch of `trial`; the rung decision when this epoch is a rung.

        `last_epoch` is the trial's planned last epoch: reaching a rung there records the
        trial for later arrivals but never stops it (there is nothing left to save).
        """
        own = self.points.setdefault(trial, [])
        if epoch >= 1 and _finite(clean_acc) and _finite(asr):
            own.append((float(clean_acc), float(asr)))  # type: ignore[arg-type]
        if epoch not in self.recorded or trial in self.recorded[epoch]:
            return None
        at_rung = self.recorded[epoch]
        at_rung[trial] = tuple(own)
        ranking = rank_trials(at_rung)
        position = next(i for i, s in enumerate(ranking) if s.trial == trial)
        keep = math.ceil(len(at_rung) / self.reduction)
        final = last_epoch is not None and epoch >= last_epoch
        decision = RungDecision(
            trial,
            epoch,
            position,
            len(at_rung),
            keep,
            ranking[position].layer,
            stop=position >= keep and not final,
        )
        self.decisions.append(decision)
        return decision

    def stopped(self) -> dict[str, RungDecision]:
        """Each stopped trial's decision."""
        return {d.trial: d for d in self.decisions if d.stop}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
