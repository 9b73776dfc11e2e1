"""`report.html`: one self-contained page (plotly.js embedded, opens offline) per set of sweeps.

Sections: the summary table (best cleaned model, relative change, hypervolume, stopping
loss), accuracy vs ASR of every cleaning epoch, frontiers overlaid across sweeps, cleaning
trajectories, search efficiency (hypervolume against epochs spent), and the pre-training
curves with the selected checkpoint.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc
from plotly.offline import get_plotlyjs

from results.best import DEFAULT_THRESHOLD, check_threshold, screen_origins
from results.candidates import DEFAULT_GROUP, Candidates, candidates
from results.errors import StoreError
from results.parts import atomic_write
from results.plots import (
    frontiers_figure,
    frontiers_info,
    pretrain_figure,
    pretrain_info,
    scatter_figure,
    scatter_info,
    search_efficiency_figure,
    search_efficiency_info,
    trajectories_figure,
    trajectories_info,
)
from results.report_table import summary_table
from results.store import read_epochs, read_trials, resolve_sweeps
from results.summary import Summary, summarize


@dataclass(frozen=True)
class ReportData:
    """The rows a report is built from."""

    epochs: pa.Table
    trials: pa.Table
    sweeps: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    caption: str
    figure: go.Figure | None


@dataclass(frozen=True)
class Report:
    summary: Summary
    sections: tuple[Section, ...]
    sweeps: tuple[str, ...]


def load_report_data(store: str | Path, sweeps: Sequence[str | Path] | None = None) -> ReportData:
    """Epochs and trials of the sweeps, the objective filled in from trials where missing."""
    # A sweep that has not reported an epoch yet still gets a report (that says so).
    epochs = read_epochs(store, sweeps, missing_ok=True)
    trials = read_trials(store, sweeps, missing_ok=True)
    epochs = _fill_objective(epochs, trials)
    names = tuple(pc.unique(epochs["sweep_id"]).to_pylist()) or tuple(
        d.name for d in resolve_sweeps(store, sweeps)
    )
    return ReportData(epochs, trials, names)


def _fill_objective(epochs: pa.Table, trials: pa.Table) -> pa.Table:
    if epochs["objective"].null_count == 0 or trials.num_rows == 0:
        return epochs
    known = trials.select(["sweep_id", "trial_id", "objective"]).rename_columns(
        ["sweep_id", "trial_id", "objective_"]
    )
    joined = epochs.join(known, ["sweep_id", "trial_id"], join_type="left outer")
    filled = pc.coalesce(joined["objective"], joined["objective_"])
    i = joined.column_names.index("objective")
    return joined.set_column(i, "objective", filled).drop_columns(["objective_"])


def build_report(
    data: ReportData,
    threshold: float = DEFAULT_THRESHOLD,
    by: Sequence[str] = DEFAULT_GROUP,
    trajectories_per_group: int = 3,
) -> Report:
    """Every analysis and figure of the report."""
    threshold = check_threshold(threshold)
    cands = candidates(data.epochs, by, "clean")
    summary = summarize(cands, threshold, origins=screen_origins(data.epochs))
    pre = pretrain_info(data.epochs, data.trials)
    search = search_efficiency_info(data.epochs)
    sections = _cleaning_sections(cands, summary, trajectories_per_group) + (
        Section(
            "fig-search",
            "Search efficiency",
            "Hypervolume of the frontier found so far against the cost spent, per sweep and "
            "stage: training epochs for cleaning (every epoch >= 1 is a candidate; a trial "
            "an early-stopping scheduler stopped spends no more), perturbed models evaluated "
            "for a screen."
            if search.curves
            else "No cleaning or screening epochs in these sweeps yet.",
            search_efficiency_figure(search) if search.curves else None,
        ),
        Section(
            "fig-pretrain",
            "Pre-training",
            "Accuracy and ASR per pre-training epoch; the star marks the checkpoint the "
            "selection rule picked."
            if pre.curves
            else "No pre-training stage in these sweeps.",
            pretrain_figure(pre) if pre.curves else None,
        ),
    )
    return Report(summary, sections, data.sweeps)


def _cleaning_sections(cands: Candidates, summary: Summary, per_group: int) -> tuple[Section, ...]:
    ids_titles = (
        ("fig-scatter", "Accuracy vs ASR of every cleaning epoch"),
        ("fig-frontiers", "Frontiers across sweeps"),
        ("fig-trajectories", "Cleaning trajectories"),
    )
    if cands.table.num_rows == 0:
        none = "No cleaning epochs in these sweeps yet."
        return tuple(Section(i, t, none, None) for i, t in ids_titles)
    captions = (
        "One point per epoch of every cleaning trial; the star is the starting model, the "
        f"shaded band the success region (ASR ≤ {summary.threshold:g}%), the lines each "
        "group's Pareto frontier.",
        "Each group's frontier; the legend gives its hypervolume (share of the accuracy-ASR "
        "square dominated, reference accuracy 0%, ASR 100%).",
        f"Up to {per_group} trials per group (best oracle pick first), epochs joined in "
        "order, markers growing with the epoch.",
    )
    figures = (
        scatter_figure(scatter_info(cands, summary)),
        frontiers_figure(frontiers_info(summary)),
        trajectories_figure(trajectories_info(cands, summary.trials, summary.threshold, per_group)),
    )
    return tuple(
        Section(i, t, c, f) for (i, t), c, f in zip(ids_titles, captions, figures, strict=True)
    )


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
p.meta, p.caption { color: #555; font-size: 0.9rem; }
table.summary { border-collapse: collapse; font-size: 0.85rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
table.summary th { background: #f3f3f3; } table.summary td.label { text-align: left; }
td.none { color: #a33; font-style: italic; }
"""

# After the plots are drawn, record how many markers each section rendered, so a headless
# browser (the tests) can check the page and not only the file.
_COUNT_JS = """
window.addEventListener("load", function () {
  setTimeout(function () {
    document.querySelectorAll("section.figure").forEach(function (s) {
      s.setAttribute("data-rendered-points", s.querySelectorAll("path.point").length);
    });
    document.body.setAttribute("data-plots-ready", "1");
  }, 0);
});
"""


def render_html(report: Report, generated: datetime | None = None) -> str:
    """The whole page as one string, plotly.js inline."""
    when = (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    sweeps = ", ".join(report.sweeps)
    body = [
        f"<h1>Backdoor cleaning report: {html.escape(sweeps)}</h1>",
        f'<p class="meta">Generated {when}; success threshold ASR ≤ '
        f"{report.summary.threshold:g}%; groups by {html.escape(', '.join(report.summary.by))}.</p>",
        "<h2>Summary</h2>",
        summary_table(report.summary),
    ]
    for s in report.sections:
        body.append(f'<section class="figure" id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        body.append(f'<p class="caption">{html.escape(s.caption)}</p>')
        if s.figure is not None:
            body.append(
                s.figure.to_html(
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=f"{s.id}-plot",
                    config={"displaylogo": False, "responsive": True},
                )
            )
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>sweeper report: {html.escape(sweeps)}</title>"
        f"<style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        "</head><body>" + "\n".join(body) + f"<script>{_COUNT_JS}</script></body></html>"
    )


def default_report_path(store: str | Path, sweeps: Sequence[str | Path]) -> Path:
    """`<first sweep dir>/report.html`."""
    return resolve_sweeps(store, sweeps[:1])[0] / "report.html"


def write_report(
    store: str | Path,
    sweeps: Sequence[str | Path],
    out: str | Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    by: Sequence[str] = DEFAULT_GROUP,
) -> tuple[Path, Report]:
    """Read the sweeps, build the report and write it to `out`; returns the path and report."""
    report = build_report(load_report_data(store, sweeps), threshold, by)
    path = Path(out) if out is not None else default_report_path(store, sweeps)
    save_html(report, path)
    return path, report


def save_html(report: Report, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot write report {path}: {err.strerror}; pass --out FILE") from None
    atomic_write(path, render_html(report).encode("utf-8"))  # a StoreError names the path
