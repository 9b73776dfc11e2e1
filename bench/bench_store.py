"""Rows per second appended to one sweep by many concurrent writers, no row lost.

    python bench/bench_store.py [--procs 8] [--appends 200] [--rows 1]
    python bench/bench_store.py --via-tune [--procs 32] [--appends 100]

Default: each process opens its own `StoreWriter` on the same sweep and makes `--appends`
appends of `--rows` rows (rows=1: one epoch per append). A reader runs alongside, reading
the sweep in a loop as the sweeper's status command would.

--via-tune: the path a sweep's rows really take. `--procs` concurrent Ray Tune trials each
report `--appends` epoch records through `ray.tune.report` as fast as they can; the
sweeper's own driver side (`ray_backend.EventForwarder` -> `events.StoreEvents` ->
`StoreWriter`) writes them while the trials run. No training: this is the ceiling of the
reporting path, far above what real trials (an epoch every few seconds) ask of it.

Either way the store must end holding every (trial, epoch) key exactly once. Not a test: it
prints figures.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also runs without the project installed


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


def _reporting_trial(config: dict) -> None:
    """A Tune trial that reports epoch records as fast as it can (no training)."""
    from ray import tune

    from trainers.reporter import EpochRecord

    for e in range(config["epochs"]):
        record = EpochRecord(epoch=e, clean_acc=16.0, clean_top5=40.0, asr=50.0, wall_s=e)
        tune.report({"_kind": "epoch", "host": "bench", **record.to_dict()})
    tune.report({"_kind": "outcome", "status": "completed", "epochs_done": config["epochs"]})


def run_via_tune(args: argparse.Namespace, root: Path) -> float:
    """Rows through Tune -> the driver's callback -> the store; returns the seconds it took."""
    import ray
    from ray import tune

    from results.store import StoreWriter
    from sweeper.events import StoreEvents
    from sweeper.ray_backend import EventForwarder

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=args.procs, include_dashboard=False, logging_level="error")
    payloads = [
        {
            "trial_id": f"p{i:03d}",
            "stage": "clean",
            "method": "cleanclip",
            "objective": "mmcl",
            "params": {"lr": 1e-5 * (i + 1)},
            "config": {"model": {}},
        }
        for i in range(args.procs)
    ]
    events = StoreEvents(StoreWriter(root, "bench"), "clean", args.procs, out=io.StringIO())
    tuner = tune.Tuner(
        tune.with_resources(_reporting_trial, {"cpu": 1}),
        param_space={"trial": tune.grid_search(payloads), "epochs": args.appends},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=str(root / ".tune"), callbacks=[EventForwarder(events)], verbose=0
        ),
    )
    t0 = time.perf_counter()
    tuner.fit()
    events.flush()
    took = time.perf_counter() - t0
    ray.shutdown()
    return took


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
    ap.add_argument(
        "--via-tune", action="store_true", help="report through Ray Tune and the sweeper's driver"
    )
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
    if args.via_tune:
        args.rows, args.no_reader = 1, True
        took, reads = run_via_tune(args, root), 0
    else:
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
    if args.via_tune:
        print(
            f"{args.procs} concurrent Ray Tune trials x {args.appends} epoch reports "
            f"= {total:,} rows, through tune.report -> EventForwarder -> StoreEvents -> store"
        )
        stamps = sorted(t.timestamp() for t in table["written_at"].to_pylist())
        span = stamps[-1] - stamps[0]
        print(
            f"stored in {took:.2f} s (Tune start to last row written): {total / took:,.0f} "
            f"rows/s; first to last row reaching the driver {span:.2f} s: "
            f"{(len(stamps) - 1) / span:,.0f} rows/s once the trials run"
        )
    else:
        print(
            f"{args.procs} writer processes x {args.appends} appends x {args.rows} rows "
            f"= {total:,} rows; merge every {args.compact_every or 'never'} appends per "
            f"writer; reader alongside: {'no' if args.no_reader else 'yes'}"
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
