"""Rows per second appended to one sweep by many writer processes at once, no row lost.

    PYTHONPATH=. python bench/bench_store.py [--procs 8] [--appends 200] [--rows 1]

Each process opens its own `StoreWriter` on the same sweep and makes `--appends` appends of
`--rows` rows (rows=1 is the driver's pattern: one epoch report per append). A reader runs
alongside, reading the sweep in a loop as the sweeper's status command would. At the end
the store must hold every (trial, epoch) key exactly once. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def writer(
    store: str,
    proc: int,
    appends: int,
    rows: int,
    compact_every: int,
    start: mp.Event,  # type: ignore[valid-type]
) -> None:
    from results.store import StoreWriter

    w = StoreWriter(store, "bench", compact_every=compact_every or None)
    start.wait()
    for a in range(appends):
        w.append_epochs(
            [
                {
                    "stage": "clean",
                    "trial_id": f"p{proc:02d}-a{a:05d}",
                    "method": "cleanclip",
                    "objective": "mmcl",
                    "epoch": e,
                    "clean_acc": 16.0,
                    "clean_top5": 40.0,
                    "asr": 50.0,
                    "p_lr": 1e-5,
                }
                for e in range(rows)
            ]
        )


def reader(store: str, stop: mp.Event, reads: mp.Value) -> None:  # type: ignore[valid-type]
    from results.errors import StoreError
    from results.store import read_epochs

    while not stop.is_set():
        try:
            read_epochs(store, ["bench"])
        except StoreError:  # no part file yet
            time.sleep(0.01)
            continue
        with reads.get_lock():
            reads.value += 1


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--appends", type=int, default=200, help="appends per process")
    ap.add_argument("--rows", type=int, default=1, help="rows per append")
    ap.add_argument(
        "--compact-every",
        type=int,
        default=100,
        help="appends between merges per writer (0: never)",
    )
    ap.add_argument("--no-reader", action="store_true")
    return ap.parse_args()


def run(args: argparse.Namespace, root: Path) -> tuple[float, int]:
    """Start the writers (and the reader), time the appends; returns (seconds, reads)."""
    ctx = mp.get_context("spawn")
    start, stop, reads = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    procs = [
        ctx.Process(
            target=writer, args=(str(root), p, args.appends, args.rows, args.compact_every, start)
        )
        for p in range(args.procs)
    ]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let every process import pyarrow before the clock starts
    watcher = None if args.no_reader else ctx.Process(target=reader, args=(str(root), stop, reads))
    if watcher:
        watcher.start()
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    took = time.perf_counter() - t0
    stop.set()
    if watcher:
        watcher.join()
    if any(p.exitcode for p in procs):
        raise SystemExit("a writer process failed")
    return took, reads.value


def main() -> None:
    import pyarrow

    from results.store import read_epochs

    args = parse()
    root = Path(tempfile.mkdtemp(prefix="bench_store_"))
    took, reads = run(args, root)
    total = args.procs * args.appends * args.rows
    t1 = time.perf_counter()
    table = read_epochs(root, ["bench"])
    read_s = time.perf_counter() - t1
    keys = set(zip(table["trial_id"].to_pylist(), table["epoch"].to_pylist(), strict=True))
    parts = len(list((root / "bench" / "epochs").glob("part-*.parquet")))
    leftovers = len(list((root / "bench" / "epochs").glob(".*")))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, python {platform.python_version()}, pyarrow "
        f"{pyarrow.__version__}, store on {root}"
    )
    print(
        f"{args.procs} writer processes x {args.appends} appends x {args.rows} rows "
        f"= {total:,} rows; merge every {args.compact_every or 'never'} appends per writer; "
        f"reader alongside: {'no' if args.no_reader else 'yes'}"
    )
    print(
        f"appended in {took:.2f} s: {total / took:,.0f} rows/s, "
        f"{args.procs * args.appends / took:,.0f} appends (part files)/s"
    )
    if not args.no_reader:
        print(f"concurrent full reads of the sweep completed meanwhile: {reads}")
    lost = total - len(keys)
    print(
        f"read back {table.num_rows:,} rows in {read_s:.2f} s: {len(keys):,} distinct keys, "
        f"{parts:,} part files, {leftovers} temp files left; rows lost: {lost}"
    )
    shutil.rmtree(root, ignore_errors=True)
    if lost or table.num_rows != total:
        raise SystemExit("rows were lost or duplicated")


if __name__ == "__main__":
    main()
