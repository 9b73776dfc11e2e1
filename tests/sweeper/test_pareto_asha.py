"""The Pareto-aware rung decision on hand-made rung sets (no Ray): who goes on, who stops."""

from __future__ import annotations

import math

import pytest

from results.pareto_rank import NO_LAYER, nondominated_layers, rank_trials
from sweeper.pareto_asha import ParetoASHA, milestones


def test_layers_peel_one_frontier_at_a_time() -> None:
    # (20, 40) twice dominates every other point; (15, 45) dominates (10, 50) and (5, 60);
    # (10, 50) dominates (5, 60). The NaN point is on no layer.
    pts = [(10, 50), (20, 40), (15, 45), (5, 60), (20, 40), (math.nan, 1)]
    assert nondominated_layers(pts).tolist() == [2, 0, 1, 3, 0, NO_LAYER]


def test_rungs_grow_by_the_reduction() -> None:
    assert milestones(2, 3)[:4] == (2, 6, 18, 54)
    assert milestones(1, 2.5)[:4] == (1, 2, 6, 16)  # 2.5 and 15.6 rounded
    with pytest.raises(ValueError, match="grace"):
        milestones(0, 3)


def test_a_dominating_newcomer_is_never_stopped() -> None:
    asha = ParetoASHA(grace=1, reduction=3)
    assert asha.report("a", 0, 80, 90) is None  # epoch 0: the start model, no rung
    first, second = asha.report("a", 1, 50, 50), asha.report("b", 1, 60, 40)
    assert first is not None and not first.stop  # the first at a rung goes on
    assert second is not None and not second.stop  # 2 at the rung keep the best 1: b
    d = asha.report("c", 1, 70, 10)
    assert d is not None and (d.position, d.n_at_rung, d.keep, d.layer) == (0, 3, 1, 0)
    assert d.stop is False


def test_a_dominated_newcomer_is_stopped_with_its_reason() -> None:
    asha = ParetoASHA(grace=1, reduction=3)
    asha.report("a", 1, 70, 10)
    d = asha.report("b", 1, 50, 50)
    assert d is not None and d.stop and (d.position, d.n_at_rung, d.keep) == (1, 2, 1)
    assert d.reason == (
        "stopped by pareto_asha at epoch 1: its candidate set ranks 2 of 2 trials at this "
        "rung (non-dominated layer 1); the rung keeps the best 1"
    )
    assert asha.stopped() == {"b": d}


def test_the_standing_is_every_epoch_not_the_last() -> None:
    # b's epoch 1 dominates all of a's points; its epoch 2 is bad. Ranked by its last
    # epoch alone b would be stopped; by its candidate set it leads.
    asha = ParetoASHA(grace=2, reduction=3)
    for epoch, (acc, asr) in enumerate([(60, 30), (65, 30)], start=1):
        asha.report("a", epoch, acc, asr)
    asha.report("b", 1, 80, 5)
    d = asha.report("b", 2, 40, 90)
    assert d is not None and d.position == 0 and not d.stop


def test_hypervolume_contribution_keeps_the_spread() -> None:
    # One frontier of four trials: the two ends b (50, 5) and a (90, 80), and two near
    # duplicates in the middle, c (70, 30) and d (70.1, 30.1). Exclusive areas, by hand, of
    # the 100 x 100 square (reference accuracy 0, ASR 100):
    #   b: (0, 50] x (5, 30)                    = 50 * 25          = 1250
    #   a: (70.1, 90] x (80, 100)               = 19.9 * 20        = 398
    #   d: (70, 70.1] x (30.1, 80)              = 0.1 * 49.9       = 4.99
    #   c: (50, 70] x (30, 30.1)                = 20 * 0.1         = 2
    sets: dict[str, list[tuple[float, float]]] = {
        "a": [(90, 80)],
        "b": [(50, 5)],
        "c": [(70, 30)],
        "d": [(70.1, 30.1)],
    }
    ranking = rank_trials(sets)
    assert [s.trial for s in ranking] == ["b", "a", "d", "c"]
    assert {s.layer for s in ranking} == {0}
    got = {s.trial: s.contribution * 10_000 for s in ranking}
    assert got == pytest.approx({"b": 1250, "a": 398, "d": 4.99, "c": 2}, abs=1e-6)
    # Through the rung: with reduction 2 the four keep two, so the middle newcomer stops.
    asha = ParetoASHA(grace=1, reduction=2)
    for trial in ("a", "b", "d"):
        asha.report(trial, 1, *sets[trial][0])
    d = asha.report("c", 1, *sets["c"][0])
    assert d is not None and d.stop and d.layer == 0 and d.position == 3


def test_an_exact_duplicate_loses_the_tie_to_the_earlier_trial() -> None:
    asha = ParetoASHA(grace=1, reduction=2)
    asha.report("a", 1, 60, 20)
    d = asha.report("twin", 1, 60, 20)
    assert d is not None and d.position == 1 and d.stop


def test_a_trial_without_a_finite_point_ranks_last() -> None:
    ranking = rank_trials({"nan": [(math.nan, 3.0)], "ok": [(1.0, 99.0)]})
    assert [s.trial for s in ranking] == ["ok", "nan"]
    assert ranking[1].layer == NO_LAYER


def test_the_last_epoch_is_recorded_but_never_stopped() -> None:
    asha = ParetoASHA(grace=1, reduction=3)
    asha.report("a", 1, 70, 10)
    d = asha.report("b", 1, 10, 90, last_epoch=1)
    assert d is not None and d.position == 1 and not d.stop
    # ... and later arrivals are ranked against it.
    assert asha.report("c", 1, 5, 95).n_at_rung == 3  # type: ignore[union-attr]
