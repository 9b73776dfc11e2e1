"""The study's finding in one line: per group, where cleaning started and where it got.

What `sweeper launch` prints when a sweep ends and the report shows above its summary table,
from the same `Summary` (so the two can never disagree):

    finding (ASR <= 5%): MMCL · CleanCLIP: 37.0% acc / 86.7% ASR -> 20.5% at ASR <= 5 (-44.6%);
    MMCL+SSL · CleanCLIP: 35.0% / 30.6% -> no candidate at ASR <= 5

The relative change is the best accuracy at ASR <= threshold against the start model's
accuracy, as a percentage of it (`results.best`: the paper's "-45%"). For shrink and perturb
the start is the unperturbed model the screen perturbed (`BestClean.origin`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from results.best import BestClean
from results.labels import group_label
from results.summary import Summary, summarize


def group_finding(best: BestClean, *, with_sweep: bool = True) -> str:
    """ "MMCL · CleanCLIP: 37.0% acc / 86.7% ASR -> 20.5% at ASR <= 5 (-44.6%)"."""
    key = best.group.as_dict()
    if not with_sweep:
        key.pop("sweep_id", None)
    label = group_label(key)
    start = best.origin or best.start
    where = f"{start.clean_acc:.1f}% acc / {start.asr:.1f}% ASR" if start else "no start model"
    t = f"{best.threshold:g}"
    if best.best is None:
        return f"{label}: {where} -> no candidate at ASR <= {t}"
    got = f"{best.best.clean_acc:.1f}% at ASR <= {t}"
    if best.relative_change is not None:
        got += f" ({best.relative_change * 100:+.1f}%)"
    return f"{label}: {where} -> {got}"


def finding_parts(summary: Summary) -> tuple[str, list[str]] | None:
    """The line's head ("finding (success: ASR <= 5%)") and one part per group of
    `summary`; None when it has no cleaning group."""
    if not summary.groups:
        return None
    sweeps = {g.group.as_dict().get("sweep_id") for g in summary.groups}
    parts = [group_finding(g.best, with_sweep=len(sweeps) > 1) for g in summary.groups]
    return f"finding (success: ASR <= {summary.threshold:g}%)", parts


def finding_line(summary: Summary) -> str | None:
    """One line over every group of `summary`; None when it has no cleaning group."""
    found = finding_parts(summary)
    return None if found is None else f"{found[0]}: " + "; ".join(found[1])


def study_finding(store: str | Path, sweeps: Sequence[str], threshold: float) -> str | None:
    """The finding line of finished sweeps in `store` (None: nothing cleaned yet)."""
    from results.report import load_report_data  # report shows the line: it imports this

    data = load_report_data(store, sweeps)
    if data.epochs.num_rows == 0:
        return None
    return finding_line(summarize(data.epochs, threshold))
