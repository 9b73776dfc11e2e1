"""A local sweep's cluster serves nothing on a public interface; a wrong token is named.

The cluster is started by `sweeper.ray_backend.connect` in a child process, as `sweeper
launch` starts it, and its listening sockets are read with `ss` (iproute2).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.test_fault_injection import ROOT, descendants, fault_spec

pytestmark = pytest.mark.slow

HEAD = """
import sys, ray
from sweeper import ray_backend
ray_backend.connect(None)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes it
ray_backend.shutdown()
"""


TOKEN = secrets.token_hex(32)  # the head's, handed to drivers that should get in


@pytest.fixture(scope="module")
def head() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HEAD],
        cwd=ROOT,
        env={**os.environ, "RAY_AUTH_TOKEN": TOKEN},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert re.fullmatch(r"[\d.]+:\d+", address), address
        yield proc, address
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_every_port_of_a_local_cluster_binds_loopback(
    head: tuple[subprocess.Popen[str], str],
) -> None:
    proc, _ = head
    ours = descendants(proc.pid) | {proc.pid}
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    mine = []
    for line in listening.splitlines():
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            mine.append(line.split()[3])  # the local address:port
    assert len(mine) >= 5, listening  # GCS, raylet, dashboard, agent, metrics
    public = [
        a for a in mine if not re.match(r"(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):", a)
    ]
    assert not public, f"listening beyond loopback: {public}"


def test_a_wrong_token_is_named(head: tuple[subprocess.Popen[str], str], tmp_path: Path) -> None:
    _, address = head
    spec = fault_spec(tmp_path, grid={"lr": [1e-3]}, name="token")
    env = {
        **os.environ,
        "RAY_AUTH_TOKEN": "0" * 64,
        # The head runs in Ray's single-machine mode (loopback node IP); a driver joining it
        # from this machine needs the same mode to reach 127.0.0.1.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    r = subprocess.run(
        [sys.executable, "-m", "sweeper", "launch", str(spec), "--store", str(tmp_path / "s"),
         "--address", address],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert r.returncode == 2, r
    assert "RAY_AUTH_TOKEN is set and must hold the cluster's token" in r.stderr, r.stderr
    assert address in r.stderr
