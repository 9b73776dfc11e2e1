"""The report's summary table: one row per group, in the paper's words."""

from __future__ import annotations

import html

from results.labels import trial_label
from results.summary import GroupSummary, Summary, no_candidate_note

_HEADERS = (
    "group",
    "start acc / ASR (%)",
    "best cleaned acc (%)",
    "its ASR (%)",
    "trial (swept values), epoch",
    "relative change",
    "hypervolume",
    "stopping loss: last epoch (pts)",
    "stopping loss: lowest loss (pts)",
    "jaggedness",
    "trials",
)


def _num(value: float | None, fmt: str = "{:.2f}", none: str = "–") -> str:
    return none if value is None else fmt.format(value)


def _loss_cell(loss: float | None, threshold: float, found: bool) -> str:
    if loss is not None:
        return f"<td>{loss:.2f}</td>"
    if not found:
        return "<td>–</td>"
    return f'<td class="none">no pick with ASR ≤ {threshold:g}%</td>'


def _row(gs: GroupSummary, threshold: float) -> str:
    b, st = gs.best, gs.stopping
    start = "–" if b.start is None else f"{b.start.clean_acc:.2f} / {b.start.asr:.2f}"
    if b.origin is not None:
        # Shrink and perturb: the poisoned model, then the perturbed one cleaning began from.
        start = (
            f"{b.origin.clean_acc:.2f} / {b.origin.asr:.2f}<br><small>perturbed: {start}</small>"
        )
    cells = [f'<td class="label">{html.escape(gs.group.label)}</td>', f"<td>{start}</td>"]
    if b.best is None:
        cells.append(
            f'<td class="none" colspan="4">{html.escape(no_candidate_note(threshold))}</td>'
        )
    else:
        # The trial by its swept values (an Optuna trial's id says nothing), its id below.
        params = trial_label(b.best.params, sorted(b.best.params))
        where = html.escape(f"{params or b.best.trial_id}, epoch {b.best.epoch}")
        if params:
            where += f"<br><small>{html.escape(b.best.trial_id)}</small>"
        cells += [
            f"<td>{b.best.clean_acc:.2f}</td>",
            f"<td>{b.best.asr:.2f}</td>",
            f"<td>{where}</td>",
            f"<td>{_num(b.relative_change, '{:+.1%}')}</td>",
        ]
    cells.append(f"<td>{gs.hypervolume:.4f}</td>")
    if st is None:
        cells += ["<td>–</td>"] * 3
    else:
        cells.append(_loss_cell(st.last.loss_vs_oracle, threshold, b.found))
        cells.append(_loss_cell(st.min_loss.loss_vs_oracle, threshold, b.found))
        cells.append(f"<td>{_num(st.mean_jaggedness)}</td>")
    cells.append(f"<td>{b.n_trials}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def summary_table(summary: Summary) -> str:
    """An HTML table of the summary; a line of text when there is nothing to summarise."""
    if not summary.groups:
        return '<p class="caption">No cleaning epochs to summarise.</p>'
    head = "".join(f"<th>{h}</th>" for h in _HEADERS)
    rows = "\n".join(_row(gs, summary.threshold) for gs in summary.groups)
    note = (
        '<p class="caption">Relative change is against the best trial\'s own starting model '
        "(its epoch 0); after shrink and perturb, against the poisoned model before the "
        "perturbation (the perturbed start is shown below it). Stopping loss: accuracy the oracle pick leads by over the best pick "
        "under the threshold when stopping at the last epoch, or at the lowest cleaning loss. "
        "Jaggedness: 0 for a monotone trajectory, near 1 for one that wanders.</p>"
    )
    return (
        f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{note}'
    )
