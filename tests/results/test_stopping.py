"""Stopping analysis (the paper's Figure 5) on hand-made trajectories."""

from __future__ import annotations

import pyarrow as pa
import pytest

from results.stopping import stopping_analysis, summarize_stopping


def table(rows):
    for r in rows:
        r["sweep_id"] = "s"
    return pa.Table.from_pylist(rows)


def test_picks_losses_and_jaggedness(make_trajectory) -> None:
    rows = make_trajectory(
        "zigzag",
        [20, 18, 19, 15, 17],
        [99, 4, 60, 3, 50],
        loss=[None, 2.0, 1.0, 1.5, 1.2],
    ) + make_trajectory("smooth", [20, 19, 18, 17], [99, 50, 10, 2], loss=[None, 3.0, 2.0, 1.0])
    got = {t.trial_id: t for t in stopping_analysis(table(rows))}
    z = got["zigzag"]
    assert z.n_epochs == 4
    assert (z.oracle.epoch, z.oracle.clean_acc, z.oracle.acc_lost) == (1, 18.0, 0.0)
    assert (z.last.epoch, z.last.success, z.last.acc_lost) == (4, False, 1.0)
    assert (z.min_loss.epoch, z.min_loss.success, z.min_loss.acc_lost) == (2, False, -1.0)
    assert z.asr_reversals == 3  # down, up, down, up
    path = (2 + 95) + (1 + 56) + (4 + 57) + (2 + 47)
    assert z.path_length == pytest.approx(path)
    assert z.jaggedness == pytest.approx(1 - (3 + 49) / path)
    s = got["smooth"]
    assert s.jaggedness == pytest.approx(0.0) and s.asr_reversals == 0
    assert s.last.success and s.last.acc_lost == 0.0 and s.min_loss.epoch == 3


def test_group_summary(make_trajectory) -> None:
    rows = (
        make_trajectory("a", [20, 18, 16], [99, 4, 3], loss=[None, 1.0, 2.0])
        + make_trajectory("b", [20, 19, 12], [99, 50, 4], loss=[None, 1.0, 0.5])
        + make_trajectory("c", [20, 19], [99, 80], loss=[None, 1.0])
    )
    (g,) = summarize_stopping(stopping_analysis(table(rows)))
    assert (g.n_trials, g.n_with_oracle, g.oracle_acc) == (3, 2, 18.0)
    # Last epochs: a (16, ok, lost 2), b (12, ok, lost 0): best 16, 2 points behind the oracle.
    assert g.last.success_rate == 1.0 and g.last.mean_acc_lost == pytest.approx(1.0)
    assert (g.last.best_acc, g.last.loss_vs_oracle) == (16.0, 2.0)
    # Lowest loss: a epoch 1 (18, ok), b epoch 2 (12, ok).
    assert (g.min_loss.best_acc, g.min_loss.loss_vs_oracle) == (18.0, 0.0)


def test_no_pick_under_threshold_and_single_epoch(make_trajectory) -> None:
    rows = make_trajectory("x", [20, 19, 18], [99, 4, 40]) + make_trajectory("y", [20], [99])
    trials = stopping_analysis(table(rows))
    assert [t.trial_id for t in trials] == ["x"]  # y has not finished an epoch yet
    (g,) = summarize_stopping(trials)
    assert g.last.success_rate == 0.0 and g.last.best_acc is None and g.last.loss_vs_oracle is None
    assert trials[0].min_loss is None  # no losses reported
