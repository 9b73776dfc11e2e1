"""The paper's rules for choosing the model a stage hands to the next one.

Pre-training (PAPER_NOTES, "Model selection after pre-training"): an MMCL run keeps its epoch
of highest zero-shot accuracy (early stopping); an MMCL+SSL run keeps the epoch whose
accuracy is closest to the selected MMCL model's, so the two start cleaning from equally
accurate models. Screening (shrink and perturb, D.13): the highest accuracy among perturbed
models with ASR below a threshold (15%).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]


def _candidates(rows: Sequence[Row]) -> list[Row]:
    # Epoch 0 is the model before pre-training (random init): never a candidate.
    return [r for r in rows if r["epoch"] >= 1 and r.get("checkpoint")]


def select_pretrained(
    runs: Mapping[str, Sequence[Row]], rules: Mapping[str, Mapping[str, Any]]
) -> dict[str, Row]:
    """For each pre-training job, the epoch row its rule selects.

    `runs` maps a job name to its epoch rows; `rules[job]` is `{"rule": "max_acc"}` or
    `{"rule": "closest_acc", "reference": other_job}` (the plan's `select["jobs"]`). A job
    whose reference did not produce a model falls back to the highest accuracy.
    """
    chosen: dict[str, Row] = {}
    for job, rows in runs.items():
        cands = _candidates(rows)
        if cands and rules.get(job, {}).get("rule", "max_acc") == "max_acc":
            chosen[job] = max(cands, key=lambda r: (r["clean_acc"], -r["epoch"]))
    for job, rows in runs.items():
        cands = _candidates(rows)
        if job in chosen or not cands:
            continue
        reference = chosen.get(rules.get(job, {}).get("reference") or "")
        if reference is None:
            chosen[job] = max(cands, key=lambda r: (r["clean_acc"], -r["epoch"]))
        else:
            ref = reference["clean_acc"]
            chosen[job] = min(cands, key=lambda r: (abs(r["clean_acc"] - ref), r["epoch"]))
    return chosen


def pick_screened(rows: Sequence[Row], *, max_asr: float) -> Row | None:
    """Highest clean accuracy among screened models with ASR < `max_asr` (None if none).

    The unperturbed origin trials are never picked. A screen may keep no checkpoints: the
    pick's is written from its recipe (`sweeper.stages.pick_screen`)."""
    ok = [r for r in rows if r["asr"] < max_asr and not str(r["trial_id"]).endswith("-origin")]
    if not ok:
        return None
    return max(ok, key=lambda r: (r["clean_acc"], -r["asr"], r["trial_id"]))
