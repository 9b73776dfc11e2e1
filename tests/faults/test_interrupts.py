"""Signals, damaged stores and moved stores end in a true status (issue: every fault ends in
a true status).

Each test runs the real CLI against a real Ray cluster; a fault is struck once the store
shows the sweep mid-way (never after a fixed sleep), and the trials are long enough that no
machine finishes them before the fault lands.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from results.store import read_epochs, read_trials
from sweeper.cli import main
from tests.faults.test_fault_injection import (
    ROOT,
    Meanwhile,
    assert_one_row_per_key,
    fault_spec,
    local_ray,  # noqa: F401  (a fixture)
    new_sweep,
    raw_rows,
    stored_epochs,
    sweeps_in,
    wait_for,
)
from tests.sweeper.test_launch import sweep_of

pytestmark = pytest.mark.slow
LONG = 40  # epochs: far more than any machine runs between a trigger and the signal
# The resumed sweep runs every epoch to the end, so its trials are shorter: the signal
# still comes right after epoch 1 is stored, and the stop needs seconds, not 11 epochs.
RESUMED = 12


@pytest.fixture(scope="module", autouse=True)
def _ray_down_after_module() -> Any:
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interrupts") / "store"


def _clean_at(store: Path, before: set[str], epoch: int, n: int = 2) -> bool:
    rows = stored_epochs(store, new_sweep(store, before))
    return len({r["trial_id"] for r in rows if r["stage"] == "clean" and r["epoch"] >= epoch}) >= n


def _parts(sweep_dir: Path) -> set[Path]:
    return {p for kind in ("epochs", "trials") for p in (sweep_dir / kind).glob("*.parquet")}


# ------------------------------------------------------------- a graceful SIGTERM, resumed


def test_sigterm_records_interrupted_trials_and_a_moved_copy_resumes(
    local_ray: None,  # noqa: F811
    store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = fault_spec(tmp_path, grid={"lr": [1e-4, 1e-3]}, clean_epochs=RESUMED, name="term")
    before = sweeps_in(store)
    strike = Meanwhile(
        lambda: _clean_at(store, before, 1),
        lambda: os.kill(os.getpid(), signal.SIGTERM),
        "both clean trials to report epoch 1",
    )
    strike.start()
    rc = main(["launch", str(spec), "--store", str(store)])
    strike.check()
    out, err = capsys.readouterr()
    sweep = sweep_of(out)
    assert rc == 143, (out, err)
    assert "done:" not in out and "report:" not in out, out
    assert f"sweeper resume {sweep} --store {store}" in err, err
    assert "interrupted by SIGTERM during the clean stage" in err, err

    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    clean = {t: r for t, r in trials.items() if r["stage"] == "clean"}
    assert {r["status"] for r in clean.values()} == {"interrupted"}, clean
    assert all(r["ended_at"] is not None for r in clean.values())
    assert trials["pretrain-mmcl"]["status"] == "completed"
    assert not (store / sweep / "report.html").exists()

    # The store moves (and is copied): the copy resumes on its own, the original is untouched.
    copy = tmp_path / "copy"
    shutil.copytree(store, copy, symlinks=True)
    moved = tmp_path / "moved"
    store.rename(moved)
    original_parts = _parts(moved / sweep)
    try:
        assert main(["resume", sweep, "--store", str(copy)]) == 0
        out = capsys.readouterr().out
        assert "done:" in out
        assert _parts(moved / sweep) == original_parts  # nothing written into the original
    finally:
        moved.rename(store)

    trials = {r["trial_id"]: r for r in read_trials(copy, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}, trials
    per_trial = assert_one_row_per_key(read_epochs(copy, [sweep]).to_pylist())
    assert all(
        eps == list(range(RESUMED + 1)) for t, eps in per_trial.items() if t.startswith("clean-")
    )
    # Resume appends no rows for the pre-training that had finished (cached or not).
    raw_pre = [r for r in raw_rows(copy / sweep, "epochs") if r["stage"] == "pretrain"]
    assert len(raw_pre) == len({r["epoch"] for r in raw_pre}), raw_pre
    for r in trials.values():
        assert r["start_checkpoint"] is None or r["start_checkpoint_sha256"], r

    # Resuming the finished sweep says so and writes nothing.
    parts = _parts(copy / sweep)
    assert main(["resume", sweep, "--store", str(copy)]) == 0
    assert "is finished: nothing to resume" in capsys.readouterr().out
    assert _parts(copy / sweep) == parts

    # A damaged trials part: resume, status, report and check name it; resume writes nothing.
    victim = sorted((copy / sweep / "trials").glob("part-*.parquet"))[-1]
    victim.write_bytes(victim.read_bytes()[:100])
    parts = _parts(copy / sweep)
    for argv in (["resume"], ["status"], ["report"], ["check"]):
        assert main([*argv, sweep, "--store", str(copy)]) == 2, argv
        said = "".join(capsys.readouterr())
        assert str(victim) in said, (argv, said)
    assert _parts(copy / sweep) == parts
    assert not (copy / sweep / "report.html").exists()


# --------------------------------------------- a second signal: forced, and no Ray left


def _ray_processes_under(pid: int) -> set[int]:
    from tests.faults.test_fault_injection import _cmdline, descendants

    return {p for p in descendants(pid) if "ray" in _cmdline(p) or "gcs_server" in _cmdline(p)}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_sigterm_then_sigint_forces_the_stop_during_pretraining(tmp_path: Path) -> None:
    # Through the real CLI in its own process: ray.init installs a SIGTERM handler of its
    # own, so this also shows that the sweeper's handlers are the ones in force.
    store = tmp_path / "store"
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, pretrain_epochs=LONG, name="int")
    err_file = tmp_path / "stderr.txt"
    with err_file.open("w") as err_sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeper", "launch", str(spec), "--store", str(store)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err_sink,
            text=True,
        )
    try:

        def pretrain_at_epoch_1() -> bool:
            rows = stored_epochs(store, new_sweep(store, set()))
            return any(r["stage"] == "pretrain" and r["epoch"] >= 1 for r in rows)

        wait_for(pretrain_at_epoch_1, 300, "pre-training to report epoch 1")
        ray_pids = _ray_processes_under(proc.pid)
        assert ray_pids, "the sweep started no Ray processes of its own"
        proc.send_signal(signal.SIGTERM)
        # Two signals pending at once are delivered lowest number first (SIGINT): wait for
        # the sweeper to have taken the first one.
        wait_for(lambda: "SIGTERM: stopping the sweep" in err_file.read_text(), 120,
                 "the sweeper to take SIGTERM")  # fmt: skip
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err_file.read_text()
    assert proc.returncode == 143, (out, err)  # 128 + the signal that asked first
    sweep = sweep_of(out)
    assert f"sweeper resume {sweep} --store {store.resolve()}" in err, err
    assert "done:" not in out and "did not complete" not in err, (out, err)
    trial = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}["pretrain-mmcl"]
    assert trial["status"] == "interrupted", trial
    # No Ray process of the sweep's cluster outlives it.
    wait_for(lambda: not any(_alive(p) for p in ray_pids), 60, "the sweep's Ray processes to end")


# ------------------------------------------------------------------ no silent states


def _cli(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_unreachable_address_fails_fast_naming_it(tmp_path: Path) -> None:
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, name="addr")
    t0 = time.monotonic()
    r = _cli("launch", str(spec), "--store", str(tmp_path / "s"), "--address", "127.0.0.1:1")
    assert r.returncode == 2, r
    assert time.monotonic() - t0 < 60  # Ray alone would retry for minutes
    assert "127.0.0.1:1" in r.stderr and "no Ray cluster answers" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()


def test_infeasible_stages_are_refused_together_before_ray_starts(tmp_path: Path) -> None:
    spec = fault_spec(
        tmp_path, grid={"lr": [1e-3]}, name="big", embedded={"resources": {"cpu": 512}}
    )
    r = _cli("launch", str(spec), "--store", str(tmp_path / "s"))
    assert r.returncode == 2, r
    assert "2 stage(s) ask for more" in r.stderr, r.stderr
    assert "'pretrain'" in r.stderr and "'clean'" in r.stderr, r.stderr
    assert "dashboard:" not in r.stdout and not (tmp_path / "s").exists()
    # --dry-run names the same, as a warning: the plan may be meant for a bigger cluster.
    r = _cli("launch", str(spec), "--dry-run")
    assert r.returncode == 0, r
    assert "warning: a local launch on this machine would refuse it: 2 stage(s)" in r.stderr


# ------------------------------------------------------------- errors a retry cannot fix


def test_an_unloadable_start_checkpoint_fails_at_once_without_retries(
    local_ray: None,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml

    bad = tmp_path / "not_a_model.pt"
    bad.write_bytes(b"this is not a checkpoint" * 100)
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, max_failures=3, name="bad")
    raw = yaml.safe_load(spec.read_text())
    raw.pop("pretrain")
    raw["start"] = {"checkpoint": str(bad), "objective": "mmcl", "trigger": "badnet"}
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    store = tmp_path / "store"
    assert main(["launch", str(spec), "--store", str(store)]) == 1
    out, err = capsys.readouterr()
    sweep = sweep_of(out)
    (trial,) = read_trials(store, [sweep]).to_pylist()
    assert trial["status"] == "failed"
    assert "CheckpointError" in trial["error"] and "not retried" in trial["error"], trial
    assert str(bad) in trial["error"]
    history = raw_rows(store / sweep, "trials")
    assert not [r for r in history if (r["error"] or "").startswith("retrying after:")], history
    assert f"{trial['trial_id']} (failed)" in err, err


# -------------------------------------------------------------- the pre-training cache


def _cache_record(store: Path) -> Path:
    (done,) = (store / ".cache" / "pretrain").glob("*/done.json")
    return done


def test_cache_records_are_relative_hashed_and_checked(
    local_ray: None,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    store = tmp_path / "store"
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, clean_epochs=1, name="cache")
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    capsys.readouterr()
    done = _cache_record(store)
    record = json.loads(done.read_text())
    ckpt = record["selected"]["checkpoint"]
    assert not Path(ckpt).is_absolute() and (store / ckpt).is_file(), record["selected"]
    assert all(
        r["checkpoint"] is None or not Path(r["checkpoint"]).is_absolute() for r in record["rows"]
    )

    # A damaged record is a cache miss (the job runs again and rewrites it), not a crash.
    done.write_text(done.read_text()[:40])
    assert main(["launch", str(spec), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "ignoring damaged cache record" in out and "reusing cached" not in out, out
    assert json.loads(done.read_text())["selected"]["sha256"]

    # A cached model that changed since it was selected is refused, naming the file.
    with open(store / ckpt, "ab") as f:
        f.write(b"\0")
    assert main(["launch", str(spec), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert str(store / ckpt) in err and "something changed the cached model" in err, err


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill up here: {r.stderr.strip()}")


def test_a_full_disk_during_synthetic_generation_is_one_line_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    store = tmp_path / "full"
    _tmpfs(store, "300k")  # room for the store's folders, not for the synthetic images
    try:
        spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, name="full")
        # Without --ignore-disk, launch refuses first: the checkpoints would not fit.
        r = _cli("launch", str(spec), "--store", str(store), timeout=300)
        assert r.returncode == 2 and "--ignore-disk to launch anyway" in r.stderr, r
        r = _cli("launch", str(spec), "--store", str(store), "--ignore-disk", timeout=300)
        assert r.returncode == 2, r
        (line,) = [ln for ln in r.stderr.splitlines() if "error:" in ln]
        assert "cannot write the synthetic dataset into" in line, r.stderr
        assert "No space left on device" in line and "Traceback" not in r.stderr
        data = store / ".cache" / "data"
        assert not list(data.iterdir()), list(data.iterdir())  # nothing half-written
    finally:
        subprocess.run(["umount", str(store)], check=False)


def test_a_full_disk_writing_the_cache_record_leaves_no_truncated_file(tmp_path: Path) -> None:
    from sweeper.errors import SweeperError
    from sweeper.plan import TrialPlan
    from sweeper.pretrain_cache import write_cache

    store = tmp_path / "full"
    _tmpfs(store, "64k")
    try:
        cache = store / ".cache" / "pretrain" / "k"
        cache.mkdir(parents=True)
        (cache / "epoch_1.pt").write_bytes(b"x" * 1000)
        rows = [
            {"epoch": e, "checkpoint": str(cache / "epoch_1.pt"), "pad": "y" * 2000}
            for e in range(100)
        ]
        trial = TrialPlan("pretrain-mmcl", "pretrain", "pretrain", "mmcl", "mmcl", {}, {}, None)
        with pytest.raises(SweeperError, match=r"cannot write .*done.json: No space left"):
            write_cache(trial, rows, {"epoch": 1, "checkpoint": str(cache / "epoch_1.pt")}, store)
        assert sorted(p.name for p in cache.iterdir()) == ["epoch_1.pt"]
    finally:
        subprocess.run(["umount", str(store)], check=False)
