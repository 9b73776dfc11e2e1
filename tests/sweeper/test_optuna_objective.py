"""What Optuna optimises per trial: its best cleaning epoch, never the start model (epoch 0)."""

from __future__ import annotations

from sweeper.trialrun import NO_POINT, best_point
from trainers.reporter import EpochRecord


def rec(epoch: int, acc: float, asr: float) -> EpochRecord:
    return EpochRecord(epoch=epoch, clean_acc=acc, clean_top5=acc, asr=asr)


def test_the_start_model_is_never_the_objective() -> None:
    # Epoch 0 is more accurate and already under 5%: were it a candidate, every trial whose
    # cleaning does not beat the start would report the same point and Optuna learn nothing.
    records = [rec(0, 80.0, 2.0), rec(1, 60.0, 4.0), rec(2, 65.0, 30.0)]
    assert best_point(records) == (60.0, 4.0)


def test_without_a_success_the_lowest_asr_cleaning_epoch() -> None:
    records = [rec(0, 80.0, 1.0), rec(1, 60.0, 40.0), rec(2, 55.0, 20.0), rec(3, 58.0, 20.0)]
    assert best_point(records) == (58.0, 20.0)


def test_the_threshold_is_the_sweeps() -> None:
    records = [rec(0, 80.0, 1.0), rec(1, 60.0, 4.0), rec(2, 70.0, 8.0)]
    assert best_point(records, threshold=10.0) == (70.0, 8.0)


def test_only_the_start_reported_is_the_worst_point() -> None:
    assert best_point([rec(0, 80.0, 1.0)]) == NO_POINT == (0.0, 100.0)


def test_the_success_threshold_is_a_spec_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sweeper.plan import plan_file
    from tests.sweeper.test_launch import tiny_spec

    _, plan = plan_file(tiny_spec(tmp_path), ["success_asr=7.5"])
    assert plan.success_asr == 7.5
    _, default = plan_file(tiny_spec(tmp_path))
    assert default.success_asr == 5.0
