"""Report sections about what a study can say: its warnings, the BN-only baseline, repeats.

HTML blocks and captions for `results.report`; the analyses are `results.study_warnings`,
`results.baselines` and `results.seeds`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from results.baselines import BaselinePoint
from results.finding import finding_parts
from results.plots.attainment import attainment_figure, attainment_info
from results.seeds import seed_intervals
from results.study_warnings import StudyWarning
from results.summary import Summary

_SWEEP_STAMP = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}$")


def study_name(sweep_id: str) -> str:
    """The search space's name a sweep id starts with (the id itself if not stamped)."""
    return _SWEEP_STAMP.sub("", sweep_id)


def seed_lines(epochs: Any, threshold: float) -> list[str]:
    """Per objective across the sweeps (one seed each): start, best accuracy at ASR <=
    threshold and relative change, means with 95% t-intervals (what `--seeds` prints)."""
    lines = []
    for sm in seed_intervals(epochs, threshold):
        line = f"{sm.objective}: start {sm.start_acc.mean:.1f}% / ASR {sm.start_asr.mean:.1f}%; "
        if sm.best_acc is None:
            line += f"no candidate at ASR ≤ {threshold:g}% in any of {sm.n_none} sweeps"
        else:
            b, rc = sm.best_acc, sm.relative_change
            line += (
                f"best accuracy at ASR ≤ {threshold:g}% {b.mean:.1f} [{b.low:.1f}, {b.high:.1f}] "
                f"over {b.n} sweep(s)"
            )
            if rc is not None:
                line += f", relative change {rc.mean:+.1%} [{rc.low:+.1%}, {rc.high:+.1%}]"
            if sm.n_none:
                line += f"; {sm.n_none} sweep(s) without a candidate"
        lines.append(line)
    return lines


def seeds_caption_and_figure(
    epochs: Any, n_sweeps: int, threshold: float
) -> tuple[str, go.Figure | None]:
    """The sweeps as repeats of one study (one seed each): intervals and attainment."""
    lines = seed_lines(epochs, threshold)
    info = attainment_info(epochs, n_sweeps)
    caption = (
        "The sweeps as repeats (one seed each); means with 95% t-intervals across them. "
        + " | ".join(lines)
        + ". Lines: empirical attainment surfaces of the cleaning candidates (moocore), the "
        "median bold, the best and worst cases dotted."
    )
    return caption, (attainment_figure(info) if info.surfaces else None)


def finding_html(summary: Summary) -> list[str]:
    """The one-line finding `sweeper launch` prints, above the summary table."""
    found = finding_parts(summary)
    if found is None:
        return []
    head, parts = found
    items = "".join(f"<li>{html.escape(part)}</li>" for part in parts)
    return [f'<section class="finding" id="finding"><h2>{html.escape(head[:1].upper() + head[1:])}</h2>'
            f"<ul>{items}</ul></section>"]  # fmt: skip


def warnings_html(warned: Sequence[StudyWarning]) -> list[str]:
    if not warned:
        return []
    items = "".join(
        f'<li data-kind="{w.kind}"><b>{html.escape(w.sweep_id)} '
        f"{html.escape(w.objective or '')}</b>: {html.escape(w.message)}</li>"
        for w in warned
    )
    return [
        '<section class="warnings" id="warnings"><h2>What this study cannot say</h2>'
        f"<ul>{items}</ul></section>"
    ]


def baselines_html(points: Sequence[BaselinePoint]) -> list[str]:
    if not points:
        return []
    rows = "".join(
        f'<tr><td class="label">{html.escape(p.sweep_id)} {html.escape(p.objective or "")}</td>'
        f"<td>{p.start_acc:.2f} / {p.start_asr:.2f}</td><td>{p.clean_acc:.2f} / {p.asr:.2f}</td></tr>"
        for p in points
    )
    return [
        '<section class="baselines" id="baselines"><h2>BatchNorm-only baseline</h2>'
        '<p class="caption">The start model with BatchNorm re-estimated on the cleaning set and '
        "no weight update. A cleaning result is worth reporting only where it beats this "
        "point: an ASR drop it shows too is BatchNorm statistics, not unlearning.</p>"
        '<table class="summary"><tr><th>start model</th><th>start acc / ASR (%)</th>'
        f"<th>BN only acc / ASR (%)</th></tr>{rows}</table></section>"
    ]
