"""`report.html`: one self-contained page (plotly.js embedded, opens offline) per set of sweeps.

Sections: the summary table (best cleaned model, relative change, hypervolume, stopping
loss), accuracy vs ASR of every cleaning epoch, frontiers overlaid across sweeps, cleaning
trajectories, an Optuna search's sampled values and hypervolume (when a sweep ran one),
search efficiency (hypervolume against epochs spent), and the pre-training curves with the selected checkpoint.

One sweep's report is `<sweep>/report.html`; a report of several sweeps is its own file,
`<store>/reports/<A>+<B>.html`, so it never replaces one sweep's report.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc
from plotly.offline import get_plotlyjs

from results.baselines import BaselinePoint, baseline_points
from results.best import DEFAULT_THRESHOLD, check_threshold, screen_origins
from results.candidates import DEFAULT_GROUP, Candidates, candidates
from results.errors import StoreError
from results.parts import atomic_write
from results.plots import (
    frontiers_figure,
    frontiers_info,
    optuna_figure,
    optuna_info,
    pretrain_figure,
    pretrain_info,
    scatter_figure,
    scatter_info,
    search_efficiency_figure,
    search_efficiency_info,
    trajectories_figure,
    trajectories_info,
)
from results.plots.optuna import describe
from results.report_sections import (
    baselines_html,
    finding_html,
    seeds_caption_and_figure,
    study_name,
    warnings_html,
)
from results.report_table import summary_table
from results.store import read_epochs, read_trials, resolve_sweeps
from results.study import PlannedStudies, planned_studies
from results.study_warnings import StudyWarning, study_warnings
from results.summary import Summary, summarize

REPORTS_DIR = "reports"
# Longest file name (bytes) a multi-sweep report gets before its sweeps are abbreviated;
# most file systems allow 255.
_MAX_NAME = 200


@dataclass(frozen=True)
class ReportData:
    """The rows a report is built from."""

    epochs: pa.Table
    trials: pa.Table
    sweeps: tuple[str, ...]
    # The Optuna searches the sweeps' plan files describe (budget, seed, space).
    studies: PlannedStudies = field(default_factory=lambda: PlannedStudies({}, ()))


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
    # Why a figure of this study may not answer its question (results.study_warnings).
    warnings: tuple[StudyWarning, ...] = ()
    # BN-only points beside the cleaning trials (results.baselines).
    baselines: tuple[BaselinePoint, ...] = ()


def load_report_data(store: str | Path, sweeps: Sequence[str | Path] | None = None) -> ReportData:
    """Epochs and trials of the sweeps, the objective filled in from trials where missing."""
    # A sweep that has not reported an epoch yet still gets a report (that says so).
    epochs = read_epochs(store, sweeps, missing_ok=True)
    trials = read_trials(store, sweeps, missing_ok=True)
    epochs = _fill_objective(epochs, trials)
    dirs = resolve_sweeps(store, sweeps)
    names = tuple(pc.unique(epochs["sweep_id"]).to_pylist()) or tuple(d.name for d in dirs)
    return ReportData(epochs, trials, names, planned_studies(dirs))


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
    sections = _cleaning_sections(cands, summary, trajectories_per_group)
    sections += _optuna_section(cands, data, summary.threshold)
    sections += (
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
    if len(data.sweeps) > 1 and len({study_name(s) for s in data.sweeps}) == 1:
        # Sweeps of one search space (ids `<name>-<date>-<time>-<hex>`): repeats, one seed each.
        sections += (_seeds_section(data, threshold),)
    warned = tuple(study_warnings(data.epochs, threshold=threshold))
    return Report(summary, sections, data.sweeps, warned, tuple(baseline_points(data.epochs)))


def _seeds_section(data: ReportData, threshold: float) -> Section:
    caption, figure = seeds_caption_and_figure(data.epochs, len(data.sweeps), threshold)
    return Section("fig-seeds", "Across seeds", caption, figure)


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
        "One point per epoch of every cleaning trial (one colour per group); each star is a "
        "starting model (one colour each), the "
        f"shaded band the success region (ASR ≤ {summary.threshold:g}%), the lines each "
        "group's Pareto frontier.",
        "Each group's frontier; the legend gives its hypervolume (share of the accuracy-ASR "
        "square dominated, reference accuracy 0%, ASR 100%).",
        f"Up to {per_group} trials per group (best oracle pick first), epochs joined in "
        "order from the start model (white diamond), markers growing with the epoch; colour "
        "is the swept value, one legend entry per trial (a click hides it, a click on a "
        "group's title hides the group).",
    )
    figures = (
        scatter_figure(scatter_info(cands, summary)),
        frontiers_figure(frontiers_info(summary)),
        trajectories_figure(trajectories_info(cands, summary.trials, summary.threshold, per_group)),
    )
    return tuple(
        Section(i, t, c, f) for (i, t), c, f in zip(ids_titles, captions, figures, strict=True)
    )


def _statuses(trials: pa.Table) -> dict[tuple[str, str], str]:
    if trials.num_rows == 0 or "status" not in trials.column_names:
        return {}
    rows = trials.select(["sweep_id", "trial_id", "status"]).to_pydict()
    keys = zip(rows["sweep_id"], rows["trial_id"], strict=True)
    return {k: s for k, s in zip(keys, rows["status"], strict=True) if s is not None}


def _optuna_section(cands: Candidates, data: ReportData, threshold: float) -> tuple[Section, ...]:
    """The Optuna section, only for sweeps that ran a search."""
    planned = data.studies
    info = optuna_info(cands, planned.studies, threshold, _statuses(data.trials))
    if not info.studies:
        return ()
    caption = (
        " ".join(describe(s) for s in info.studies)
        + " Each point is one trial at the point the search optimised: its most accurate "
        f"epoch with ASR ≤ {threshold:g}% (dashed line), else its epoch of lowest ASR; colour "
        "is the order trials started in. Hypervolume (right) after each trial: of every "
        "cleaning epoch so far (solid; the summary table's figure at the end) and of the "
        "trials' points (dotted)."
    )
    if planned.problems:
        caption += " Study settings unknown for " + "; ".join(planned.problems) + "."
    return (Section("fig-optuna", "Optuna search", caption, optuna_figure(info)),)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
p.meta, p.caption { color: #555; font-size: 0.9rem; }
table.summary { border-collapse: collapse; font-size: 0.85rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
table.summary th { background: #f3f3f3; } table.summary td.label { text-align: left; }
td.none { color: #a33; font-style: italic; }
section.warnings { border-left: 4px solid #c77; background: #fff5f3; padding: 0.2rem 1rem; }
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
        *finding_html(report.summary),
        *warnings_html(report.warnings),
        "<h2>Summary</h2>",
        summary_table(report.summary),
        *baselines_html(report.baselines),
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
    """`<sweep dir>/report.html` for one sweep; for several, `<store>/reports/<A>+<B>.html`
    (the store of the first sweep), its name cut to a digest if the names are too long."""
    dirs = resolve_sweeps(store, sweeps)
    names = list(dict.fromkeys(d.name for d in dirs))
    if len(names) == 1:
        return dirs[0] / "report.html"
    name = "+".join(names)
    if len(name.encode("utf-8")) > _MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
        name = f"{names[0][:100]}+{len(names) - 1}-more-{digest}"
    return dirs[0].parent / REPORTS_DIR / f"{name}.html"


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
