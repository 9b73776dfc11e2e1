"""The one-line finding: start, best accuracy at ASR <= threshold and relative change, by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from results.finding import finding_line, study_finding
from results.report import build_report, load_report_data, render_html
from results.summary import summarize
from tests.results.conftest import trajectory

SWEEP = "demo-20261201-170000-00a0"


def _store(write_sweep: Callable[..., Path]) -> Path:
    # MMCL: start 40 / 90; epochs (38, 20) (36, 4) (30, 1): the best under 5 is 36 -> -10.0%.
    # MMCL+SSL: start 50 / 95; never under 5 (its lowest ASR is 12).
    rows = trajectory("a", [40, 38, 36, 30], [90, 20, 4, 1], lr=1e-4) + trajectory(
        "b", [50, 45, 44], [95, 30, 12], lr=1e-4, objective="mmcl_ssl"
    )
    return write_sweep(SWEEP, [dict(r, sweep_id=SWEEP) for r in rows])


def test_finding_line_by_hand(write_sweep: Callable[..., Path]) -> None:
    store = _store(write_sweep)
    line = study_finding(store, [SWEEP], 5.0)
    assert line == (
        "finding (success: ASR <= 5%): MMCL · CleanCLIP: 40.0% acc / 90.0% ASR -> 36.0% at "
        "ASR <= 5 (-10.0%); MMCL+SSL · CleanCLIP: 50.0% acc / 95.0% ASR -> no candidate at "
        "ASR <= 5"
    )
    # Another threshold moves the best: at ASR <= 20, MMCL's 38 (-5.0%), MMCL+SSL's 44 (-12.0%).
    at20 = study_finding(store, [SWEEP], 20.0)
    assert at20 is not None and "38.0% at ASR <= 20 (-5.0%)" in at20
    assert "44.0% at ASR <= 20 (-12.0%)" in at20


def test_the_report_shows_the_same_line_on_top(write_sweep: Callable[..., Path]) -> None:
    store = _store(write_sweep)
    data = load_report_data(store, [SWEEP])
    page = render_html(build_report(data, 5.0))
    assert page.index('id="finding"') < page.index("<h2>Summary</h2>")
    assert finding_line(summarize(data.epochs, 5.0)) is not None
    # The heading carries the threshold whole; one item per objective, as the line has them.
    assert "<h2>Finding (success: ASR &lt;= 5%)</h2>" in page
    assert (
        "<li>MMCL · CleanCLIP: 40.0% acc / 90.0% ASR -&gt; 36.0% at ASR &lt;= 5 (-10.0%)</li>"
        "<li>MMCL+SSL · CleanCLIP: 50.0% acc / 95.0% ASR -&gt; no candidate at ASR &lt;= 5</li>"
    ) in page, page[page.index('id="finding"') :][:700]


def test_no_cleaning_rows_no_finding(write_sweep: Callable[..., Path]) -> None:
    rows = trajectory("pretrain-mmcl", [10, 20], [5, 80], stage="pretrain")
    store = write_sweep(SWEEP, [dict(r, sweep_id=SWEEP) for r in rows])
    assert study_finding(store, [SWEEP], 5.0) is None
