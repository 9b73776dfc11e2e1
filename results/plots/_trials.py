"""Trials by their swept values: what a legend or hover names a trial by, in place of its id."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from results.candidates import Candidates
from results.labels import swept_names, trial_label, unique_labels

TrialKey = tuple[str, str]  # (sweep_id, trial_id)


def trial_spans(cands: Candidates) -> dict[TrialKey, tuple[int, int]]:
    """Rows `a:b` of each (sweep, trial): rows are sorted by group, trial and epoch."""
    if cands.trial.size == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, cands.trial[1:] != cands.trial[:-1]])
    ends = np.r_[starts[1:], cands.trial.size]
    names = cands.table.select(["sweep_id", "trial_id"]).take(pa.array(starts)).to_pydict()
    keys = zip(names["sweep_id"], names["trial_id"], strict=True)
    return {key: (int(a), int(b)) for key, a, b in zip(keys, starts, ends, strict=True)}


def trial_params(cands: Candidates, rows: Sequence[int]) -> list[dict[str, Any]]:
    """The swept values (`p_` columns, by parameter name) of the trials holding `rows`."""
    p_cols = [c for c in cands.table.column_names if c.startswith("p_")]
    if not p_cols:
        return [{} for _ in rows]
    recs = cands.table.select(p_cols).take(pa.array(rows, type=pa.int64())).to_pylist()
    return [{k[2:]: v for k, v in rec.items() if v is not None} for rec in recs]


def trial_labels(
    cands: Candidates,
    keys: Sequence[TrialKey],
    spans: dict[TrialKey, tuple[int, int]],
    scopes: Sequence[Hashable] | None = None,
) -> dict[TrialKey, tuple[str, dict[str, Any]]]:
    """Each trial's label and its swept values.

    A label gives the trial's values of the parameters that differ within its scope (a
    legend section: a group), or, where none does (one trial), of those that differ among
    all `keys`; a parameter a trial does not have is left out. Where labels do not tell two
    trials of one scope apart (repeats), their ids are added.
    """
    params = trial_params(cands, [spans[k][0] for k in keys])
    everywhere = swept_names(params)
    scope = list(scopes) if scopes is not None else [None] * len(keys)
    members: dict[Hashable, list[int]] = {}
    for i, x in enumerate(scope):
        members.setdefault(x, []).append(i)
    out: dict[TrialKey, tuple[str, dict[str, Any]]] = {}
    for idx in members.values():
        names = swept_names([params[i] for i in idx]) or everywhere
        labels = [trial_label(params[i], [n for n in names if n in params[i]]) for i in idx]
        fixed = unique_labels(labels, [keys[i][1] for i in idx])
        out.update({keys[i]: (label, params[i]) for i, label in zip(idx, fixed, strict=True)})
    return out
