"""Monitoring: while a sweep runs, the dashboard `sweeper launch` printed lists its trials.

A real sweep runs in its own process (as a user would start it); the test reads the
`dashboard:` line as it is printed and then asks the dashboard's HTTP API, on loopback, for
the sweep's driver and its running trials.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sweeper.test_launch import tiny_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 180.0
# The per-trial request the spec below makes (embedded profile: `embedded.resources`). Half a
# CPU, so a match cannot be Ray's default of one CPU per actor.
RESOURCES = {"cpu": 0.5}


class Sweep:
    """`python -m sweeper launch ...` in its own session, its output collected as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the local Ray cluster it starts shares its group
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def wait_for_line(self, pattern: str, until: float) -> re.Match[str]:
        while time.monotonic() < until:
            exited = self.proc.poll() is not None
            if exited:
                self._reader.join(timeout=5)  # everything it printed, then one last look
            for line in list(self.lines):
                if m := re.match(pattern, line):
                    return m
            if exited:
                break
            time.sleep(0.2)
        pytest.fail(f"no line matching {pattern!r} from sweeper launch:\n{self.output}")

    def stop(self) -> None:
        """Ends the driver and the Ray processes it started (they share its process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        # Ray's own processes may outlive the driver by a moment; none may outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)


@pytest.fixture
def ray_env() -> Iterator[dict[str, str]]:
    """An environment that gives the sweep a Ray cluster of its own, and its token.

    A sweep without --address starts a local cluster, but Ray first looks for one recorded in
    <tmp>/ray/ray_current_cluster (any `ray start` on this machine): a private RAY_TMPDIR keeps
    the test on its own cluster. Ray 2.60 guards the dashboard's API with a token; setting
    RAY_AUTH_TOKEN hands the cluster one the test knows. The directory name is short because
    Ray's socket paths live under it (AF_UNIX paths are limited to ~107 bytes).
    """
    tmp = tempfile.mkdtemp(prefix="sw-ray-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=tmp, RAY_AUTH_TOKEN=secrets.token_hex(32), PYTHONPATH=str(ROOT))
    try:
        yield env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def get(url: str, token: str | None) -> tuple[int, bytes]:
    assert url.startswith(("http://127.0.0.1:", "http://localhost:")), url  # loopback only
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def requested(actor: dict[str, Any]) -> dict[str, float]:
    """An actor's request with Ray's placement-group naming folded back to plain names.

    Tune places each trial in a placement group, so the state API lists `CPU_group_<pg>` and
    `CPU_group_0_<pg>` (the same half CPU, twice) plus Ray's `bundle_group_*` markers.
    """
    out: dict[str, float] = {}
    for key, value in actor["required_resources"].items():
        name = key.split("_group_")[0]
        if name != "bundle":
            out[name] = float(value)
    return out


def running_trials(url: str, token: str, job_id: str) -> list[dict[str, Any]]:
    status, body = get(f"{url}/api/v0/actors?detail=true&limit=1000", token)
    if status != 200:
        return []  # the state API answers once the cluster's GCS is up; keep polling
    actors = json.loads(body)["data"]["result"]["result"]
    return [a for a in actors if a["job_id"] == job_id and a["state"] == "ALIVE"]


def sweep_driver(url: str, token: str, pid: int) -> dict[str, Any] | None:
    status, body = get(f"{url}/api/jobs/", token)
    if status != 200:
        return None
    drivers = [
        j
        for j in json.loads(body)
        if j["type"] == "DRIVER" and str(j["driver_info"]["pid"]) == str(pid)
    ]
    return drivers[0] if drivers else None


def test_dashboard_lists_the_running_trials_of_a_sweep(
    tmp_path: Path, ray_env: dict[str, str]
) -> None:
    until = time.monotonic() + DEADLINE_S
    # Six clean epochs keep two trials running for tens of seconds; pre-training runs first.
    spec = tiny_spec(
        tmp_path,
        clean={"trial": {"optim": {"epochs": 6, "warmup_steps": 2}, "data": {"batch_size": 32}}},
        resources=RESOURCES,
    )
    argv = [sys.executable, "-m", "sweeper", "launch", str(spec), "--store", str(tmp_path / "s")]
    sweep = Sweep(argv, ray_env)
    token = ray_env["RAY_AUTH_TOKEN"]
    try:
        url = sweep.wait_for_line(r"dashboard: (http://\S+)", until).group(1)
        assert re.match(r"http://127\.0\.0\.1:\d+$", url), url  # bound to loopback by default
        status, page = get(url, None)  # the page itself: the browser then asks for the token
        assert status == 200 and b"<html" in page.lower()
        assert get(f"{url}/api/v0/actors", None)[0] == 401  # the API needs the token

        driver = None
        while driver is None and time.monotonic() < until and sweep.proc.poll() is None:
            driver = sweep_driver(url, token, sweep.proc.pid)
            time.sleep(0.5)
        assert driver is not None, f"no driver job for pid {sweep.proc.pid}\n{sweep.output}"
        assert driver["status"] == "RUNNING"
        assert f"sweeper launch {spec}" in driver["entrypoint"]  # Jobs page: the sweep's driver

        seen: list[dict[str, Any]] = []
        while not seen and time.monotonic() < until and sweep.proc.poll() is None:
            seen = running_trials(url, token, driver["job_id"])
            time.sleep(1)
        assert seen, f"no running trial of job {driver['job_id']} on the dashboard\n{sweep.output}"
        assert sweep.proc.poll() is None  # seen while the sweep runs, not after
        for actor in seen:
            assert actor["class_name"] == "ImplicitFunc" and actor["repr_name"] == "_trial_fn"
            assert requested(actor) == {"CPU": RESOURCES["cpu"]}, actor["required_resources"]
            assert actor["pid"] > 0 and actor["node_id"]
        # The README names what the Actors page shows; it must be what Ray really shows.
        section = (ROOT / "README.md").read_text().split("## Run on a cluster", 1)[1]
        assert f"`{seen[0]['class_name']}`" in section and f"`{seen[0]['repr_name']}`" in section
        print(json.dumps({k: seen[0][k] for k in ("class_name", "repr_name", "state")}))
    finally:
        sweep.stop()
