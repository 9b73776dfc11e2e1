"""Faults during a real sweep: a killed trial worker, a killed driver, a lost node, a store
that stops taking writes, a trial that runs out of memory.

Each test runs the real CLI against a real Ray cluster with the seconds-long sweep of
tests/sweeper/test_launch.py, makes the fault happen for real while the sweep runs (a
thread watches the store and strikes once a trial is mid-way), then checks three things:
the sweep finishes or stops with a clear message, the store's reader returns exactly one
row per (trial, epoch), and the trials table says what happened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from results.errors import ResultsError
from results.store import read_epochs, read_trials
from sweeper.cli import main
from tests.sweeper.test_launch import sweep_of, tiny_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# Every worker of the local cluster runs under this data-segment limit, as a container's
# memory limit bounds a real node. The tiny trials peak under 3 GiB of data segment; the
# memory test's teacher model (ViT-bigG-14, ~10 GB of weights) cannot fit in it.
WORKER_DATA_LIMIT = 5 * 2**30
BIG_MODEL = "ViT-bigG-14"
# Epochs of a trial that a fault strikes once it reported epoch 1: far more than any machine
# runs in the moment between the trigger and the fault, so a fast machine cannot finish first.
MIDWAY = 12
# The waits for a store state are bounded only to end a hung test, not to pace it.
PATIENCE = 900


# ------------------------------------------------------------------------------ helpers


def fault_spec(
    tmp: Path,
    *,
    grid: dict[str, list[Any]],
    clean_epochs: int = 2,
    max_failures: int = 1,
    method: str | None = None,
    pretrain_epochs: int | None = None,
    embedded: dict[str, Any] | None = None,
    name: str = "faults",
) -> Path:
    """tiny_spec with a top-level `max_failures` and a clean grid of our choosing.

    The pre-training section is tiny_spec's own, so the sweeps of one store share one
    cached pre-training (and the first test to need it pays for it).
    """
    clean: dict[str, Any] = {
        "grid": grid,
        "trial": {"optim": {"epochs": clean_epochs, "warmup_steps": 2}, "data": {"batch_size": 32}},
    }
    if method:
        clean["method"] = method
    path = tiny_spec(tmp, clean=clean, name=name)
    spec = yaml.safe_load(path.read_text())
    spec["max_failures"] = max_failures
    spec["embedded"].update(embedded or {})
    if pretrain_epochs is not None:
        spec["pretrain"]["trial"]["optim"]["epochs"] = pretrain_epochs
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> set[int]:
    """Every process under `pid` (children, their children, ...)."""
    kids, out, todo = _children(), set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def ray_workers(prefix: str, root: int | None = None) -> list[int]:
    """Pids of the Ray workers under `root` (this process) whose title starts with `prefix`
    (Ray names a worker after what it runs). Only this process's own cluster is searched:
    other Ray clusters may share the machine."""
    kids = _children()
    out, todo = [], [root or os.getpid()]
    while todo:
        for child in kids.get(todo.pop(), []):
            todo.append(child)
            if _cmdline(child).startswith(prefix):
                out.append(child)
    return sorted(out)


def busy_trial_workers(root: int | None = None) -> list[int]:
    """Pids of the Ray workers under `root` (this process) running a Tune trial."""
    return ray_workers("ray::ImplicitFunc.train", root)


def sweeps_in(store: Path) -> set[str]:
    if not store.is_dir():
        return set()
    return {p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")}


def new_sweep(store: Path, before: set[str]) -> str | None:
    new = sweeps_in(store) - before
    return next(iter(new)) if len(new) == 1 else None


def stored_epochs(store: Path, sweep: str | None) -> list[dict[str, Any]]:
    """The reader's rows of `sweep`, or none while it has not written any yet."""
    if sweep is None:
        return []
    try:
        return read_epochs(store, [sweep]).to_pylist()
    except ResultsError:
        return []


def every_clean_trial_at(store: Path, before: set[str], n_trials: int, epoch: int) -> bool:
    """All `n_trials` clean trials of the new sweep have reported `epoch` (so are mid-way)."""
    rows = stored_epochs(store, new_sweep(store, before))
    reached = {r["trial_id"] for r in rows if r["stage"] == "clean" and r["epoch"] >= epoch}
    return len(reached) >= n_trials


def resume_states(store: Path, before: set[str]) -> int:
    """How many trials of the new sweep have saved a resume state (completed an epoch)."""
    sweep = new_sweep(store, before)
    return len(list((store / sweep / "resume").glob("*.pt"))) if sweep else 0


def raw_rows(sweep_dir: Path, kind: str) -> list[dict[str, Any]]:
    """Every row ever appended (superseded ones too), bypassing the reader's one-per-key."""
    return pq.read_table(sweep_dir / kind).to_pylist()


def assert_one_row_per_key(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    keys = Counter((r["trial_id"], r["epoch"]) for r in rows)
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    per_trial: dict[str, list[int]] = {}
    for trial, epoch in sorted(keys):
        per_trial.setdefault(trial, []).append(epoch)
    return per_trial


def wait_for(
    pred: Callable[[], bool],
    timeout: float,
    what: str,
    cancelled: threading.Event | None = None,
) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        if cancelled is not None and cancelled.is_set():
            raise AssertionError(f"the sweep ended before {what}")
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Meanwhile(threading.Thread):
    """Does `act` once `ready` holds, while the sweep runs in the main thread."""

    def __init__(
        self,
        ready: Callable[[], bool],
        act: Callable[[], Any],
        what: str,
        timeout: float = PATIENCE,
    ) -> None:
        super().__init__(daemon=True)
        self.ready, self.act, self.what, self.timeout = ready, act, what, timeout
        self.result: Any = None
        self.error: BaseException | None = None
        self.sweep_ended = threading.Event()

    def run(self) -> None:
        try:
            wait_for(self.ready, self.timeout, self.what, self.sweep_ended)
            self.result = self.act()
        except BaseException as err:  # reported by check() in the test's thread
            self.error = err

    def check(self) -> Any:
        """Call once the sweep has returned: the act's result, or why it never happened."""
        self.sweep_ended.set()
        self.join(timeout=30)
        assert not self.is_alive(), f"still waiting for {self.what}"
        if self.error is not None:
            raise self.error
        return self.result


def _limit_memory_hook(limit: int) -> Callable[[], None]:
    # A local function: cloudpickle ships it by value, since the workers cannot import
    # the tests package.
    def limit_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return limit_memory


@pytest.fixture(scope="module", autouse=True)
def _ray_down_after_module() -> Iterator[None]:
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def local_ray() -> Iterator[None]:
    """A private local Ray cluster of 2 CPUs, shared by the tests of this module.

    `address="local"` always starts a new cluster: a bare `ray.init()` joins the cluster
    that another process on the machine last started (`ray start`, `cluster_utils`).
    The driver finds Ray initialised and uses it (and leaves it running).
    """
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.WARNING,
            runtime_env={"worker_process_setup_hook": _limit_memory_hook(WORKER_DATA_LIMIT)},
        )
    yield


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the module: its sweeps share the cached synthetic data and pretraining."""
    return tmp_path_factory.mktemp("faults") / "store"


def launch(spec: Path, store: Path, *extra: str) -> int:
    return main(["launch", str(spec), "--store", str(store), *extra])


# ------------------------------------------------------------------- a killed worker


def _kill_one_trial_worker() -> int:
    pids = busy_trial_workers()
    assert pids, "no Ray worker is running a trial"
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def _launch_killing_one_worker(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *, max_failures: int
) -> tuple[int, str]:
    """Two long clean trials; one trial's worker is SIGKILLed once both report epoch 1."""
    spec = fault_spec(
        tmp_path, grid={"lr": [1e-4, 1e-3]}, clean_epochs=MIDWAY, max_failures=max_failures
    )
    before = sweeps_in(store)
    killer = Meanwhile(
        lambda: (
            every_clean_trial_at(store, before, 2, 1)
            and resume_states(store, before) >= 2
            and bool(busy_trial_workers())
        ),
        _kill_one_trial_worker,
        "both clean trials to report epoch 1",
    )
    killer.start()
    rc = launch(spec, store)
    killer.check()
    return rc, capsys.readouterr().out


def test_killed_worker_is_retried_within_max_failures(
    local_ray: None, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = _launch_killing_one_worker(store, tmp_path, capsys, max_failures=1)
    assert rc == 0, out
    sweep = sweep_of(out)

    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}, trials
    history = raw_rows(store / sweep, "trials")
    retried = {r["trial_id"] for r in history if (r["error"] or "").startswith("retrying after:")}
    assert len(retried) == 1 and next(iter(retried)).startswith("clean-"), history
    (victim,) = retried
    retry_error = next(r["error"] for r in history if r["trial_id"] == victim and r["error"])
    assert "its worker process has died" in retry_error, retry_error

    per_trial = assert_one_row_per_key(read_epochs(store, [sweep]).to_pylist())
    assert all(
        eps == list(range(MIDWAY + 1)) for t, eps in per_trial.items() if t.startswith("clean-")
    )
    # The retry continued from the victim's resume state (after its last completed epoch,
    # >= 1 when it was killed) instead of starting over, and the store holds each epoch once.
    resumed = re.search(rf"\[clean\] {re.escape(victim)} resumed after epoch (\d+)", out)
    assert resumed and 1 <= int(resumed.group(1)) < MIDWAY, out
    raw = Counter((r["trial_id"], r["epoch"]) for r in raw_rows(store / sweep, "epochs"))
    assert set(raw.values()) == {1}, raw
    assert not list((store / sweep / "resume").iterdir())  # deleted as each trial ended


def test_killed_worker_without_retries_fails_its_trial_only(
    local_ray: None, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = _launch_killing_one_worker(store, tmp_path, capsys, max_failures=0)
    assert rc == 1, out  # the sweep went on (the other trial finished) and says one failed
    sweep = sweep_of(out)
    assert "1 failed trial(s)" in out

    clean = [r for r in read_trials(store, [sweep]).to_pylist() if r["stage"] == "clean"]
    by_status = {r["status"]: r for r in clean}
    assert sorted(r["status"] for r in clean) == ["completed", "failed"], clean
    failed = by_status["failed"]
    assert "its worker process has died" in failed["error"], failed["error"]
    assert failed["ended_at"] is not None

    per_trial = assert_one_row_per_key(read_epochs(store, [sweep]).to_pylist())
    assert per_trial[by_status["completed"]["trial_id"]] == list(range(MIDWAY + 1))
    # What the killed trial reported before it died is kept, once.
    assert per_trial[failed["trial_id"]][:2] == [0, 1]
    assert main(["status", sweep, "--store", str(store)]) == 0
    assert f"failed {failed['trial_id']}" in capsys.readouterr().out


# ------------------------------------------------------------------ out of memory


def assert_workers_memory_limited() -> None:
    """The workers really run under the limit (else a too-big model would fill the machine)."""
    import ray

    @ray.remote(num_cpus=0)
    def data_limit() -> int:
        import resource

        return resource.getrlimit(resource.RLIMIT_DATA)[0]

    assert ray.get(data_limit.remote()) == WORKER_DATA_LIMIT


def test_trial_out_of_memory_fails_and_the_sweep_goes_on(
    local_ray: None, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_workers_memory_limited()
    # Deep clustering with pseudo-labels from a teacher: the teacher trial builds a
    # ViT-bigG-14, whose weights do not fit in the worker's memory; the k-means trial fits.
    spec = fault_spec(
        tmp_path,
        grid={"lr": [1e-3], "cluster_source": ["kmeans", "teacher"]},
        method="deep_cluster",
        max_failures=0,
        embedded={"teacher_model": BIG_MODEL},
    )
    assert launch(spec, store) == 1  # one trial failed
    out = capsys.readouterr().out
    sweep = sweep_of(out)
    assert "1 failed trial(s)" in out

    clean = {
        json.loads(r["params"])["cluster_source"]: r
        for r in read_trials(store, [sweep]).to_pylist()
        if r["stage"] == "clean"
    }
    assert clean["kmeans"]["status"] == "completed"
    assert clean["teacher"]["status"] == "failed"
    assert "can't allocate memory" in clean["teacher"]["error"], clean["teacher"]["error"]
    per_trial = assert_one_row_per_key(read_epochs(store, [sweep]).to_pylist())
    assert per_trial[clean["kmeans"]["trial_id"]] == [0, 1, 2]
    # The teacher is built before epoch 1: the start model's evaluation was kept.
    assert per_trial[clean["teacher"]["trial_id"]] == [0]


def test_pretraining_out_of_memory_stops_the_sweep_with_a_clear_message(
    local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_workers_memory_limited()
    store = tmp_path / "store"
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, max_failures=0, embedded={"model": BIG_MODEL})
    # The disk check counts ViT-bigG-14's 10 GB checkpoints and may refuse the plan on a
    # fuller disk; the worker runs out of memory long before it writes one.
    rc = launch(spec, store, "--ignore-disk")
    out, err = capsys.readouterr()
    sweep = sweep_of(out)
    # No model to clean: the sweep stops, and says why and where to look (before the fix
    # it blamed the store: "epochs has no part files: is this a sweeper store?").
    assert rc == 1, out + err
    assert "pre-training job(s) ['mmcl'] produced no model to clean (mmcl: failed" in err, err
    assert f"sweeper status {sweep} --store {store}" in err and "part files" not in err
    trials = read_trials(store, [sweep]).to_pylist()
    assert [(t["trial_id"], t["status"]) for t in trials] == [("pretrain-mmcl", "failed")]
    assert "can't allocate memory" in trials[0]["error"]
    assert main(["status", sweep, "--store", str(store)]) == 0
    status = capsys.readouterr().out
    assert "0 epoch rows" in status and "failed pretrain-mmcl" in status, status


# ------------------------------------------------------------ a store that stops writing


def _lock(directory: Path) -> None:
    """Make `directory` refuse new files, for real, also to root.

    chmod stops a normal user; root ignores permission bits, so as root the directory is
    made immutable (chattr +i, which ext4/xfs honour even for root).
    """
    if os.geteuid() != 0:
        directory.chmod(0o500)
    else:
        subprocess.run(["chattr", "+i", str(directory)], check=True, capture_output=True)


def _unlock(directory: Path) -> None:
    if os.geteuid() != 0:
        directory.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(directory)], check=True, capture_output=True)


@pytest.fixture
def lockable(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """`_lock`, once shown to work here (a filesystem without chattr skips the test)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _lock(probe)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot make a directory unwritable here: {err}")
    try:
        with pytest.raises(PermissionError):
            (probe / "x").write_bytes(b"")
    finally:
        _unlock(probe)
    locked: list[Path] = []

    def lock(directory: Path) -> None:
        _lock(directory)
        locked.append(directory)

    yield lock
    for d in locked:
        _unlock(d)


def test_store_that_refuses_writes_stops_the_sweep_then_resume_finishes_it(
    local_ray: None,
    store: Path,
    tmp_path: Path,
    lockable: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = fault_spec(tmp_path, grid={"lr": [1e-4, 1e-3]}, clean_epochs=MIDWAY)
    before = sweeps_in(store)

    def lock_epochs() -> list[dict[str, Any]]:
        sweep = str(new_sweep(store, before))
        lockable(store / sweep / "epochs")
        # Nothing can land in the directory from here on: these rows are all there will be.
        return stored_epochs(store, sweep)

    locker = Meanwhile(
        lambda: every_clean_trial_at(store, before, 2, 1), lock_epochs, "clean epoch 1 rows"
    )
    locker.start()
    rc = launch(spec, store)
    kept = locker.check()
    out, err = capsys.readouterr()
    sweep = sweep_of(out)
    epochs_dir = store / sweep / "epochs"

    # A clear stop: exit 2, one message naming the directory and the way to finish.
    assert rc == 2, out + err
    assert "Traceback" not in err
    message = next(line for line in err.splitlines() if line.startswith("sweeper launch: error:"))
    assert f"cannot write part file {epochs_dir}/" in message
    assert "Operation not permitted" in message or "Permission denied" in message
    assert f"sweeper resume {sweep} --store {store}" in message
    # The sweep stopped: no trial of it keeps running on the cluster.
    wait_for(lambda: not busy_trial_workers(), 30, "the trials to stop")
    # Rows written before the failure read back exactly once, unchanged; no half files.
    rows = stored_epochs(store, sweep)
    assert rows == kept and len(kept) >= 4
    assert_one_row_per_key(rows)
    assert not [p.name for p in epochs_dir.iterdir() if not p.name.startswith("part-")]
    # The trials table was writable: the clean trials are left unfinished, so resume
    # runs them again.
    status = {r["trial_id"]: r["status"] for r in read_trials(store, [sweep]).to_pylist()}
    # The write fails while the trials run; one may have reported its last epoch before
    # the stop, the others are left "running" (so resume runs them), none is "failed".
    clean_status = [s for t, s in status.items() if t.startswith("clean-")]
    assert "running" in clean_status and set(clean_status) <= {"running", "completed"}

    _unlock(epochs_dir)
    assert main(["resume", sweep, "--store", str(store)]) == 0
    trials = read_trials(store, [sweep]).to_pylist()
    assert {r["status"] for r in trials} == {"completed"}
    per_trial = assert_one_row_per_key(read_epochs(store, [sweep]).to_pylist())
    assert all(
        eps == list(range(MIDWAY + 1)) for t, eps in per_trial.items() if t.startswith("clean-")
    )


# ---------------------------------------------------------- a killed driver, resumed


def test_driver_killed_during_pretraining_resumes_with_one_row_per_epoch(
    local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"  # its own: the pre-training must not come from a cache
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, pretrain_epochs=MIDWAY)
    with (tmp_path / "launch.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeper", "launch", str(spec), "--store", str(store)],
            cwd=ROOT,
            # A cluster of its own ("local"), in the driver's process group, so that the
            # kill takes the driver and its whole cluster down at once.
            env={**os.environ, "RAY_ADDRESS": "local"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pretraining_mid_way() -> bool:
        rows = stored_epochs(store, new_sweep(store, set()))
        # An epoch is done and its resume state saved: the resume has something to continue.
        return any(r["stage"] == "pretrain" for r in rows) and resume_states(store, set()) > 0

    try:
        wait_for(pretraining_mid_way, PATIENCE, "the first pre-training epoch row")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    sweep = str(new_sweep(store, set()))
    status = {r["trial_id"]: r["status"] for r in read_trials(store, [sweep]).to_pylist()}
    assert status == {"pretrain-mmcl": "running"}, (status, (tmp_path / "launch.log").read_text())
    # A pre-training is cached only once selected, so the killed one left no cache entry.
    assert not list((store / ".cache" / "pretrain").glob("*/done.json"))

    assert main(["resume", sweep, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "reusing cached pre-training" not in out
    trials = {r["trial_id"]: r for r in read_trials(store, [sweep]).to_pylist()}
    assert {r["status"] for r in trials.values()} == {"completed"}, trials
    per_trial = assert_one_row_per_key(read_epochs(store, [sweep]).to_pylist())
    assert per_trial == {
        "pretrain-mmcl": list(range(MIDWAY + 1)),
        "clean-mmcl-lr=0.001-r0": [0, 1, 2],
    }
    # Pre-training ran twice (two "running" rows): the second continued mid-trial from the
    # resume state the killed one left, and the store holds each epoch once.
    history = raw_rows(store / sweep, "trials")
    assert sum(r["trial_id"] == "pretrain-mmcl" and r["status"] == "running" for r in history) == 2
    resumed = re.search(r"\[pretrain\] pretrain-mmcl resumed after epoch (\d+)", out)
    assert resumed and 1 <= int(resumed.group(1)) < MIDWAY, out
    raw = Counter((r["trial_id"], r["epoch"]) for r in raw_rows(store / sweep, "epochs"))
    assert set(raw.values()) == {1}, raw
    # The clean trial started from the resumed run's selected checkpoint, which exists.
    start = trials["clean-mmcl-lr=0.001-r0"]["start_checkpoint"]
    assert start and (store / start).is_file()


# ------------------------------------------------------------------ a node lost mid-sweep


@pytest.fixture
def three_nodes() -> Iterator[Any]:
    """A head that runs no trials and two one-CPU worker nodes (`ray.cluster_utils`)."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the driver joins this cluster, not the module's local one
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            # Notice a dead node within seconds, not the default tens of seconds.
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 500,
                "health_check_failure_threshold": 4,
            },
        },
    )
    _forget_cluster_address(cluster.address)
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _forget_cluster_address(address: str) -> None:
    """`Cluster` records its address for any bare `ray.init()` on the machine to join; other
    Ray users sharing the machine must not land on this test's cluster."""
    try:
        from ray._common.utils import get_ray_address_file
    except ImportError:  # another Ray version: the file stays (a courtesy, not a check)
        return
    path = Path(get_ray_address_file(None))
    with contextlib.suppress(OSError):
        if path.read_text().strip() == address:
            path.unlink()


def test_lost_node_trials_are_retried_on_the_other_node(
    three_nodes: Any, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = three_nodes
    workers = {node.node_id[:12]: node for node in cluster.worker_nodes}
    spec = fault_spec(tmp_path, grid={"lr": [1e-4, 1e-3]}, clean_epochs=MIDWAY, max_failures=1)
    before = sweeps_in(store)

    def remove_a_trials_node() -> tuple[str, str]:
        rows = stored_epochs(store, new_sweep(store, before))
        row = next(r for r in rows if r["stage"] == "clean")
        node = row["host"].rsplit("/", 1)[1]  # host column: "<hostname>/<node id[:12]>"
        cluster.remove_node(workers[node], allow_graceful=False)  # as if the machine died
        return node, row["trial_id"]

    remover = Meanwhile(
        lambda: every_clean_trial_at(store, before, 2, 1) and resume_states(store, before) >= 2,
        remove_a_trials_node,
        "both clean trials to report epoch 1",
    )
    remover.start()
    rc = launch(spec, store, "--address", cluster.address)
    lost, victim = remover.check()
    out = capsys.readouterr().out
    assert rc == 0, out
    sweep = sweep_of(out)

    trials = read_trials(store, [sweep]).to_pylist()
    assert {r["status"] for r in trials} == {"completed"}, trials
    history = raw_rows(store / sweep, "trials")
    retries = [r for r in history if (r["error"] or "").startswith("retrying after:")]
    assert [r["trial_id"] for r in retries] == [victim], history
    # Ray reports the loss either as the node's death or, when the actor's socket closes
    # first, as the actor being unavailable; both name the failure, neither is a crash.
    error = retries[0]["error"]
    assert f"its node has died. Node Id: {lost}" in error or (
        "is unavailable" in error and "Socket closed" in error
    ), error
    rows = read_epochs(store, [sweep]).to_pylist()
    per_trial = assert_one_row_per_key(rows)
    assert all(
        eps == list(range(MIDWAY + 1)) for t, eps in per_trial.items() if t.startswith("clean-")
    )
    # The victim continued on the node that is left, from its last completed epoch (its
    # resume state is in the store, which both nodes share here): its epochs before the
    # loss stay the lost node's rows, every later one is the other node's.
    resumed = re.search(rf"\[clean\] {re.escape(victim)} resumed after epoch (\d+)", out)
    assert resumed, out
    after = int(resumed.group(1))
    hosts = {r["epoch"]: r["host"] for r in rows if r["trial_id"] == victim}
    # (Epoch after + 1 may be either's: the lost node may have reported it before it could
    # save its state; the store kept the first report.)
    assert all(hosts[e].endswith(lost) for e in range(after + 1)), hosts
    assert all(not hosts[e].endswith(lost) for e in range(after + 2, MIDWAY + 1)), hosts
