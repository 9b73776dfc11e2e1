"""Time and memory of the analyzer on a store of one million epoch rows.

    PYTHONPATH=. python bench/bench_analyzer.py [--rows 1000000] [--epochs 21] [--parts 20]

A child process writes a synthetic store with the real `StoreWriter` (many trials of
`--epochs` epochs each, a few `p_` columns, `--parts` part files), so the parent's peak RSS
(resource.getrusage) is the analyzer's alone. The parent then times each step: read,
grouping, frontiers, best cleaned model, hypervolume, stopping analysis, the whole summary,
and (unless --no-report) the HTML report. Not a test: it prints figures to compare.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBJECTIVES = ("mmcl", "mmcl_ssl")
METHODS = ("cleanclip", "mmcl", "ssl")
LRS = (1e-9, 5e-9, 1e-8, 5e-8, 1e-7, 3e-7, 7e-7, 1e-6, 3e-6, 7e-6, 1e-5, 3e-5, 1e-4)
SSL_WEIGHTS = (1, 2, 4, 8)


def _trial_rows(t: int, epochs: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    obj, method = OBJECTIVES[t % 2], METHODS[(t // 2) % 3]
    lr, w = LRS[(t // 6) % len(LRS)], SSL_WEIGHTS[(t // 78) % len(SSL_WEIGHTS)]
    acc = 16.0 + rng.normal(0, 0.2, epochs).cumsum() - np.arange(epochs) * rng.uniform(0, 0.4)
    asr = 99.0 * np.cumprod(rng.uniform(0.5, 1.05, epochs))
    loss = rng.uniform(0.5, 3.0, epochs)
    return [
        {
            "stage": "clean",
            "trial_id": f"t{t:07d}",
            "method": method,
            "objective": obj,
            "epoch": e,
            "clean_acc": float(acc[e]) if e else 16.0,
            "clean_top5": 40.0,
            "asr": float(min(asr[e], 100.0)) if e else 99.0,
            "loss": float(loss[e]) if e else None,
            "lr": lr,
            "samples_seen": e * 100_000,
            "wall_s": e * 60.0,
            "checkpoint": f"/ckpt/t{t:07d}/epoch_{e}.pt",
            "p_lr": lr,
            "p_ssl_weight": w,
            "p_optimizer": "adamw",
        }
        for e in range(epochs)
    ]


def write_store(store: str, rows: int, epochs: int, parts: int) -> None:
    from results.store import StoreWriter

    writer = StoreWriter(store, "bench")
    rng = np.random.default_rng(0)
    n_trials = rows // epochs
    per_part = -(-n_trials // parts)
    start = time.perf_counter()
    for p in range(parts):
        batch = []
        for t in range(p * per_part, min(n_trials, (p + 1) * per_part)):
            batch += _trial_rows(t, epochs, rng)
        writer.append_epochs(batch)
    took = time.perf_counter() - start
    print(f"wrote {n_trials * epochs:,} rows ({n_trials:,} trials) in {parts} parts: {took:.1f} s")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def step(name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    out = fn()
    print(f"  {name:<38} {time.perf_counter() - start:7.2f} s   peak RSS {peak_mib():7.0f} MiB")
    return out


def conditions(store: Path) -> None:
    import pandas
    import plotly
    import pyarrow

    size = sum(p.stat().st_size for p in store.rglob("*.parquet"))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; load average {os.getloadavg()[0]:.1f} "
        "before the analysis (other jobs share the machine)"
    )
    print(
        f"python {platform.python_version()}, pyarrow {pyarrow.__version__}, numpy "
        f"{np.__version__}, pandas {pandas.__version__}, plotly {plotly.__version__}"
    )
    print(f"store: {size / 2**20:.1f} MiB of Parquet at {store}")


def analyse(store: Path, report: bool) -> None:
    from results.best import best_clean
    from results.candidates import candidates
    from results.hypervolume import hypervolume
    from results.pareto import pareto_fronts
    from results.stopping import stopping_analysis, summarize_stopping
    from results.summary import summarize

    print(f"baseline after imports: peak RSS {peak_mib():.0f} MiB")
    table = step("read_epochs (dedup, sorted)", lambda: read(store))
    print(
        f"  -> {table.num_rows:,} rows, {table.num_columns} columns, "
        f"{table.nbytes / 2**20:.0f} MiB in Arrow"
    )
    cands = step("group (sweep, objective, method)", lambda: candidates(table))
    fronts = step("pareto_fronts", lambda: pareto_fronts(cands))
    step("best_clean (ASR <= 5)", lambda: best_clean(cands))
    step("hypervolume of each frontier", lambda: [hypervolume(f.points) for f in fronts])
    trials = step("stopping_analysis (per trial)", lambda: stopping_analysis(cands))
    step("summarize_stopping (per group)", lambda: summarize_stopping(trials))
    print(f"  -> {len(cands.groups)} groups, {len(trials):,} trials")
    step("summarize (all of it, from the table)", lambda: summarize(table))
    fine = step(
        "group by (objective, method, p_lr, p_ssl_weight)",
        lambda: candidates(table, ("objective", "method", "p_lr", "p_ssl_weight")),
    )
    step("summarize those groups", lambda: summarize(fine))
    print(f"  -> {len(fine.groups)} groups")
    if report:
        from results.report import build_report, load_report_data, render_html

        data = step(
            "load_report_data (epochs + trials)", lambda: load_report_data(store, ["bench"])
        )
        rep = step("build_report (analyses + figures)", lambda: build_report(data))
        page = step("render_html", lambda: render_html(rep))
        print(f"  -> report.html would be {len(page.encode()) / 2**20:.0f} MiB")


def read(store: Path) -> Any:
    from results.store import read_epochs

    return read_epochs(store, ["bench"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=21)
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--dir", default=None, help="where to write the store (default: a temp dir)")
    ap.add_argument("--no-report", action="store_true", help="skip the HTML report step")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_analyzer_"))
    try:
        child = mp.get_context("spawn").Process(
            target=write_store, args=(str(root), args.rows, args.epochs, args.parts)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing the store failed (exit {child.exitcode})")
        conditions(root)
        analyse(root, not args.no_report)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
