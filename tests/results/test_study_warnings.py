"""The report's warnings fire on hand-made stores that deserve them, and not on a healthy one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from results.store import read_epochs
from results.study_warnings import binomial_se, study_warnings
from tests.results.conftest import Rows, trajectory

N_EVAL, N_ASR, CLASSES = 10_000, 9_000, 100


def sized(rows: Rows, n_eval: int = N_EVAL, n_asr: int = N_ASR, n_classes: int = CLASSES) -> Rows:
    return [
        dict(r, sweep_id="s", n_eval=n_eval, n_asr_eval=n_asr, n_classes=n_classes) for r in rows
    ]


def healthy() -> Rows:
    # A backdoored start (60% / 95%), cleaned at three learning rates, the middle one best.
    return sized(
        trajectory("lr1", [60, 59, 58], [95, 60, 30], lr=1e-5)
        + trajectory("lr2", [60, 57, 55], [95, 10, 3], lr=1e-4)
        + trajectory("lr3", [60, 40, 30], [95, 2, 1], lr=1e-3)
    )


def kinds(rows: Rows, **kw: Any) -> list[str]:
    return [w.kind for w in study_warnings(rows, **kw)]


def test_binomial_standard_error_by_hand() -> None:
    # sqrt(0.5 * 0.5 / 100) = 0.05: 5 points.
    assert binomial_se(50.0, 100) == pytest.approx(5.0)
    assert binomial_se(10.0, 900) == pytest.approx(100 * (0.1 * 0.9 / 900) ** 0.5)


def test_a_healthy_study_gets_no_warning(write_sweep: Callable[..., Path]) -> None:
    store = write_sweep("s", healthy())
    assert study_warnings(read_epochs(store).to_pylist()) == []


def test_a_start_without_backdoor() -> None:
    rows = sized(trajectory("a", [60, 58], [16, 2], lr=1e-4))
    (w,) = study_warnings(rows)
    assert w.kind == "no_backdoor" and "16.0%" in w.message
    assert kinds(rows, min_start_asr=10) == []


def test_a_start_at_chance_accuracy() -> None:
    # 10 classes on 200 images: chance 10%, 2 SE = 2 * sqrt(.1 * .9 / 200) = 4.2 points.
    near = sized(trajectory("a", [14.0, 13.0], [95, 2], lr=1e-4), 200, 180, 10)
    far = sized(trajectory("a", [14.5, 13.0], [95, 2], lr=1e-4), 200, 180, 10)
    assert "chance" in kinds(near)
    assert "chance" not in kinds(far)


def test_cleaning_that_raises_the_asr() -> None:
    rows = healthy() + sized(trajectory("up", [60, 59], [95, 99], lr=1e-6))
    (w,) = study_warnings(rows)
    assert w.kind == "asr_rises" and "1 of 4" in w.message and "(up)" in w.message
    # A rise inside the noise of the eval set is not a warning: 95 -> 96 on 180 images.
    noisy = sized(trajectory("a", [60, 59], [95, 96], lr=1e-4), 200, 180, 100)
    assert "asr_rises" not in kinds(noisy)


def test_an_eval_set_too_small_for_the_threshold_and_the_difference() -> None:
    # 100 non-target images: ASR <= 5 lets 5 flip. Best 57 vs start 60 on 100 images: the
    # difference -3 is inside 2 SE (2 * hypot(4.9, 4.95) = 13.9).
    rows = sized(trajectory("a", [60, 57], [95, 3], lr=1e-4), 111, 100, 100)
    found = study_warnings(rows)
    assert [w.kind for w in found] == ["small_eval", "small_eval"]
    assert "only 5 of 100" in found[0].message
    assert "-3.0 points" in found[1].message


def test_candidates_only_at_one_edge_of_the_grid() -> None:
    rows = sized(
        trajectory("lr1", [60, 59], [95, 60], lr=1e-5)
        + trajectory("lr2", [60, 57], [95, 30], lr=1e-4)
        + trajectory("lr3", [60, 30], [95, 2], lr=1e-3)
    )
    (w,) = study_warnings(rows)
    assert w.kind == "edge_of_grid" and "lr=0.001" in w.message and "largest" in w.message
    # Two values are not a grid with an inside; no warning.
    assert "edge_of_grid" not in kinds(rows[:2] + rows[4:])


def test_the_bn_only_baseline_is_no_cleaning_to_warn_about() -> None:
    # Re-estimating BatchNorm raised this start's ASR (95 -> 97): a baseline, not a trial.
    rows = healthy() + sized(trajectory("bn", [60, 61], [95, 97], method="bn_only"))
    assert kinds(rows) == []
    assert "asr_rises" in kinds(healthy() + sized(trajectory("x", [60, 61], [95, 97])))


def test_a_model_biased_toward_the_target_without_the_trigger() -> None:
    """asr_untriggered at half the threshold (2.5 of 5) or more, at the start or at the best
    candidate, warns; below it, and in stores without the column, nothing."""

    def floors(start: float | None, rest: float | None) -> Rows:
        rows = healthy()
        for r in rows:
            r["asr_untriggered"] = start if r["epoch"] == 0 else rest
        return rows

    assert "asr_floor" in kinds(floors(8.6, 1.0))
    (w,) = [w for w in study_warnings(floors(1.0, 2.5)) if w.kind == "asr_floor"]
    assert "best candidate sends 2.5%" in w.message
    assert "asr_floor" not in kinds(floors(2.4, 2.4))
    assert "asr_floor" not in kinds(floors(None, None))


def test_a_shrink_perturb_study_is_judged_from_the_unperturbed_model() -> None:
    # The perturbed epoch 0 has ASR 1 (no backdoor left); the origin, 95, carries one.
    origin = trajectory("screen-mmcl-origin", [60], [95], stage="screen")
    rows = sized(origin + trajectory("c", [20, 40], [1, 2], lr=1e-4, shrink=0.5))
    assert "no_backdoor" not in kinds(rows)
    assert "no_backdoor" in kinds(sized(trajectory("c", [20, 40], [1, 2], lr=1e-4, shrink=0.5)))


def test_the_report_and_its_command_carry_the_warnings(
    write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from results.report import build_report, load_report_data, render_html
    from sweeper.cli import main

    store = write_sweep("s", sized(trajectory("a", [60, 58], [16, 2], lr=1e-4)))
    page = render_html(build_report(load_report_data(store)))
    assert 'id="warnings"' in page and 'data-kind="no_backdoor"' in page
    assert main(["report", "s", "--store", str(store)]) == 0
    err = capsys.readouterr().err
    assert "warning [no_backdoor] s mmcl: the start model's ASR is 16.0%" in err
    # A healthy study's page has no warnings section.
    other = write_sweep("h", [dict(r, sweep_id="h") for r in healthy()])
    assert 'id="warnings"' not in render_html(build_report(load_report_data(other, ["h"])))
