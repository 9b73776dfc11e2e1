"""An Optuna search at a glance: each sampled parameter against both objectives (one column
per parameter, accuracy above, ASR below) and the hypervolume as trials accumulate.

A trial's point is what the search optimised (`sweeper.trialrun.best_point`): its best
cleaning epoch by the success rule, else its cleaning epoch of lowest ASR. Trials are
numbered in the order they started (their first row's `written_at`) and named by their
sampled values, never by their Tune ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import plotly.graph_objects as go
import pyarrow.compute as pc
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from results.best import best_row
from results.candidates import Candidates
from results.hypervolume import hypervolume
from results.labels import format_value
from results.plots._style import PALETTE, SEQUENTIAL, SEQUENTIAL_SPAN, TEMPLATE
from results.plots._trials import TrialKey, trial_labels, trial_spans
from results.study import StudyKey, StudySpec, is_search_trial

SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")


class StudyTrial(NamedTuple):
    trial_id: str
    label: str  # its sampled values: "lr=0.000161"
    params: dict[str, Any]
    number: int  # 1 = the first trial to start
    clean_acc: float  # the trial's objective point (NaN: no cleaning epoch yet)
    asr: float
    status: str | None  # its last state in the trials table (None: no row there)


class Study(NamedTuple):
    sweep_id: str
    stage: str
    group: str  # the group label of its trials
    params: tuple[str, ...]
    log: tuple[bool, ...]  # per parameter: drawn on a log axis
    trials: tuple[StudyTrial, ...]  # by number
    # After trial k: the hypervolume of every cleaning epoch of trials 1..k (the summary
    # table's figure once all have run), and of the trials' objective points.
    hv_epochs: tuple[float, ...]
    hv_points: tuple[float, ...]
    planned: StudySpec | None


class OptunaInfo(NamedTuple):
    studies: tuple[Study, ...]
    threshold: float


def _objective_point(cands: Candidates, rows: np.ndarray, threshold: float) -> tuple[float, float]:
    """The trial's best epoch under the threshold, else its lowest-ASR candidate epoch."""
    best = best_row(cands, rows, threshold)
    if best is None:
        ok = rows[cands.is_candidate[rows]]
        if ok.size == 0:
            return float("nan"), float("nan")
        best = int(ok[np.lexsort((cands.epoch[ok], -cands.clean_acc[ok], cands.asr[ok]))[0]])
    return float(cands.clean_acc[best]), float(cands.asr[best])


def _is_log(name: str, values: list[Any], planned: StudySpec | None) -> bool:
    """The planned domain's `log`, else whether the positive samples span two decades."""
    if planned is not None and name in planned.params:
        return bool(planned.params[name].get("log"))
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return bool(nums) and min(nums) > 0 and max(nums) / min(nums) >= 100


def _started(cands: Candidates, spans: Mapping[TrialKey, tuple[int, int]]) -> dict[TrialKey, Any]:
    if "written_at" not in cands.table.column_names:
        return {k: 0 for k in spans}
    written = cands.table["written_at"].cast("int64")
    return {k: pc.min(written.slice(a, b - a)).as_py() or 0 for k, (a, b) in spans.items()}


def _study(
    cands: Candidates,
    key: StudyKey,
    members: list[TrialKey],
    spans: Mapping[TrialKey, tuple[int, int]],
    planned: StudySpec | None,
    threshold: float,
    statuses: Mapping[TrialKey, str],
) -> Study:
    started = _started(cands, {k: spans[k] for k in members})
    members = sorted(members, key=lambda k: (started[k], k[1]))
    named = trial_labels(cands, members, dict(spans))
    trials, seen = [], []
    hv_epochs, hv_points = [], []
    for n, k in enumerate(members, start=1):
        rows = np.arange(*spans[k])
        acc, asr = _objective_point(cands, rows, threshold)
        label, params = named[k]
        trials.append(StudyTrial(k[1], label, params, n, acc, asr, statuses.get(k)))
        ok = rows[cands.is_candidate[rows]]
        seen += list(zip(cands.clean_acc[ok].tolist(), cands.asr[ok].tolist(), strict=True))
        hv_epochs.append(hypervolume(seen))
        hv_points.append(hypervolume([(t.clean_acc, t.asr) for t in trials if np.isfinite(t.asr)]))
    names = tuple(sorted({p for t in trials for p in t.params}))
    if planned is not None and planned.params:
        names = tuple(n for n in planned.params if any(n in t.params for t in trials)) or names
    group = cands.groups[int(np.searchsorted(cands.bounds, spans[members[0]][0], "right")) - 1]
    return Study(
        sweep_id=key[0],
        stage=key[1],
        group=group.label,
        params=names,
        log=tuple(_is_log(n, [t.params.get(n) for t in trials], planned) for n in names),
        trials=tuple(trials),
        hv_epochs=tuple(hv_epochs),
        hv_points=tuple(hv_points),
        planned=planned,
    )


def optuna_info(
    cands: Candidates,
    planned: Mapping[StudyKey, StudySpec],
    threshold: float,
    statuses: Mapping[TrialKey, str] | None = None,
) -> OptunaInfo:
    """One study per (sweep, stage) whose trials came from an Optuna search; empty without.
    `statuses`: each trial's last state (`trials.status`), for the study's description."""
    spans = trial_spans(cands)
    stages = cands.table["stage"].to_pylist() if cands.table.num_rows else []
    members: dict[StudyKey, list[TrialKey]] = {}
    for k, (a, _) in spans.items():
        if is_search_trial(k[1], stages[a]):
            members.setdefault((k[0], stages[a]), []).append(k)
    studies = tuple(
        _study(cands, key, ks, spans, planned.get(key), threshold, statuses or {})
        for key, ks in sorted(members.items())
    )
    return OptunaInfo(studies, threshold)


def describe(study: Study) -> str:
    """The study in one sentence: budget, seed, space, and what each trial's point is."""
    ran = len(study.trials)
    p = study.planned
    budget = f"{ran} trials"
    counts: dict[str, int] = {}
    for t in study.trials:
        if t.status is not None:
            counts[t.status] = counts.get(t.status, 0) + 1
    if counts:
        budget += " (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
    if p and p.n_trials:
        budget += f" of {p.n_trials} planned"
    seed = f", seed {p.seed}" if p and p.seed is not None else ""
    space = []
    for n in study.params:
        d = p.params.get(n, {}) if p else {}
        if "choices" in d:
            space.append(f"{n} from {{{', '.join(format_value(c) for c in d['choices'])}}}")
        elif "low" in d and "high" in d:
            scale = " (log)" if d.get("log") else ""
            space.append(f"{n} in [{format_value(d['low'])}, {format_value(d['high'])}]{scale}")
        else:
            space.append(n)
    hv = study.hv_epochs[-1] if study.hv_epochs else 0.0
    return (
        f"{study.group} ({study.stage} stage): {budget}{seed}, sampling {', '.join(space)}; "
        f"hypervolume {hv:.4f}."
    )


def _trial_colours() -> list[list[Any]]:
    a, b = SEQUENTIAL_SPAN
    stops = sample_colorscale(SEQUENTIAL, [a + (b - a) * i / 10 for i in range(11)])
    return [[i / 10, c] for i, c in enumerate(stops)]


def _domain_range(study: Study, name: str, log: bool) -> list[float] | None:
    """The planned range of a numeric parameter as an axis range (log10 on a log axis),
    padded 3%, so the axis shows where in its space the search sampled; None without one."""
    d = study.planned.params.get(name, {}) if study.planned else {}
    low, high = d.get("low"), d.get("high")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low >= high:
        return None
    if log:
        if low <= 0:
            return None
        low, high = math.log10(low), math.log10(high)
    pad = 0.03 * (high - low)
    return [low - pad, high + pad]


def _param_x(study: Study, name: str) -> list[Any]:
    return [t.params.get(name) for t in study.trials]


def _param_trace(s: Study, i: int, name: str, row: int, legend: str | None) -> go.Scatter:
    """One study's trials at their values of `name`: accuracy (row 1) or ASR (row 2)."""
    metric = "accuracy" if row == 1 else "ASR"
    return go.Scatter(
        x=_param_x(s, name),
        y=[t.clean_acc if row == 1 else t.asr for t in s.trials],
        mode="markers",
        name=legend or "",
        legendgroup=f"study-{i}",
        showlegend=legend is not None,
        marker={
            "symbol": SYMBOLS[i % len(SYMBOLS)],
            "size": 10,
            "color": [t.number for t in s.trials],
            "coloraxis": "coloraxis",
            "line": {"width": 0.5, "color": "black"},
        },
        customdata=[[t.label, t.number, t.trial_id, t.status or "?"] for t in s.trials],
        hovertemplate="trial %{customdata[1]} (%{customdata[3]}): %{customdata[0]}<br>"
        f"{metric} %{{y:.2f}}%<extra>%{{customdata[2]}}</extra>",
    )


def _add_params(fig: go.Figure, s: Study, i: int, names: list[str], several: bool) -> None:
    legend: str | None = s.group if several else "trials (colour: trial number)"
    for c, name in enumerate(names, start=1):
        if name not in s.params:
            continue
        log = s.log[s.params.index(name)]
        span = _domain_range(s, name, log)
        for row in (1, 2):
            fig.add_trace(_param_trace(s, i, name, row, legend), row=row, col=c)
            legend = None  # one legend entry per study
            if log:
                # 1e-05, as the trial labels write it, not plotly's SI "10µ".
                fig.update_xaxes(type="log", exponentformat="e", row=row, col=c)
            if span is not None:
                fig.update_xaxes(range=span, row=row, col=c)


def _add_hypervolume(fig: go.Figure, s: Study, i: int, col: int, several: bool) -> None:
    colour = PALETTE[i % len(PALETTE)]
    x = list(range(1, len(s.trials) + 1))
    tag = f" · {s.group}" if several else ""
    for ys, name, mode, dash in (
        (s.hv_epochs, f"HV, every epoch{tag}", "lines+markers", "solid"),
        (s.hv_points, f"HV, trial objectives{tag}", "lines", "dot"),
    ):
        line = {"color": colour, "width": 2, "dash": dash, "shape": "hv"}
        trace = go.Scatter(x=x, y=ys, mode=mode, name=name, line=line, legendgroup=f"hv-{i}")
        fig.add_trace(trace, row=1, col=col)


def optuna_figure(info: OptunaInfo) -> go.Figure:
    """Render `optuna_info`: parameter columns, then the hypervolume column."""
    names = list(dict.fromkeys(n for s in info.studies for n in s.params))
    cols = len(names) + 1
    fig = make_subplots(
        rows=2,
        cols=cols,
        specs=[[{} for _ in names] + [{"rowspan": 2}], [{} for _ in names] + [None]],
        subplot_titles=[*names, "hypervolume over trials", *([""] * len(names))],
        vertical_spacing=0.1,
        horizontal_spacing=0.07,
    )
    n_max = max((len(s.trials) for s in info.studies), default=1)
    several = len(info.studies) > 1
    for i, s in enumerate(info.studies):
        _add_params(fig, s, i, names, several)
        _add_hypervolume(fig, s, i, cols, several)
    for c in range(1, len(names) + 1):
        fig.add_hline(y=info.threshold, line_dash="dash", line_color="green", row=2, col=c)
        fig.update_xaxes(title_text=names[c - 1], row=2, col=c)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="ASR (%)", row=2, col=1)
    # Whole trial numbers: a tick per trial up to 10 trials, then every n-th.
    dtick = max(1, math.ceil(n_max / 10))
    fig.update_xaxes(title_text="trial number", dtick=dtick, row=1, col=cols)
    fig.update_yaxes(title_text="hypervolume", row=1, col=cols)
    fig.update_layout(
        template=TEMPLATE,
        height=620,
        title="Optuna search: sampled values against accuracy and ASR",
        coloraxis={
            "colorscale": _trial_colours(),
            "cmin": 1,
            "cmax": max(2, n_max),
            "colorbar": {"title": {"text": "trial #"}, "len": 0.45, "y": 0.25, "thickness": 12},
        },
    )
    return fig
