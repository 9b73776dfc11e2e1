"""BN-only rows are a baseline: shown beside each start, never a cleaned candidate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from results.baselines import baseline_points
from results.best import best_clean, best_of_rows, is_success
from results.candidates import candidates
from results.report import build_report, load_report_data, render_html
from results.store import read_epochs
from tests.results.conftest import trajectory


def rows() -> list[dict]:
    # The BN-only point (58 / 1) beats the one cleaning trial (50 / 4): were it a candidate,
    # it would be the "best cleaned model".
    return trajectory("clean-mmcl-0", [60, 55, 50], [95, 30, 4], lr=1e-4) + trajectory(
        "clean-mmcl-bn-only", [60, 58], [95, 1], method="bn_only"
    )


def test_a_bn_only_row_is_never_a_success_or_a_candidate(
    write_sweep: Callable[..., Path],
) -> None:
    store = write_sweep("s", [dict(r, sweep_id="s") for r in rows()])
    table = read_epochs(store)
    bn_row = {"method": "bn_only", "epoch": 1, "clean_acc": 58.0, "asr": 1.0}
    assert not is_success(bn_row) and is_success({**bn_row, "method": "cleanclip"})
    assert best_of_rows(table.to_pylist())["trial_id"] == "clean-mmcl-0"
    cands = candidates(table)
    assert "clean-mmcl-bn-only" not in set(cands.table["trial_id"].to_pylist())
    (best,) = best_clean(table)
    assert best.best is not None and best.best.trial_id == "clean-mmcl-0"
    assert best.best.clean_acc == pytest.approx(50.0)


def test_the_baseline_point_and_its_place_on_the_report(
    write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from sweeper.cli import main

    store = write_sweep("s", [dict(r, sweep_id="s") for r in rows()])
    (p,) = baseline_points(read_epochs(store))
    assert (p.trial_id, p.objective, p.start_acc, p.start_asr, p.clean_acc, p.asr) == (
        "clean-mmcl-bn-only",
        "mmcl",
        60.0,
        95.0,
        58.0,
        1.0,
    )
    page = render_html(build_report(load_report_data(store)))
    assert 'id="baselines"' in page and "58.00 / 1.00" in page
    assert main(["report", "s", "--store", str(store)]) == 0
    assert "BN only (no weight update) 58.00% at ASR 1.00% (start 60.00% / 95.00%)" in (
        capsys.readouterr().out
    )
