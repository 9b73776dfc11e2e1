"""Stage resources as a cluster runs them: the embedded profile's CPU fallback, refusing a
stage no node can hold, and `--fit-resources`, which runs `profile=real` on this GPU-less
machine with real-format data (WebDataset shards, a CleanCLIP CSV, an ImageNet folder)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from results.store import read_epochs, read_trials
from sweeper.cluster import ClusterInfo, fit_request

ROOT = Path(__file__).resolve().parents[2]


def info(*nodes: dict[str, float]) -> ClusterInfo:
    return ClusterInfo(dashboard_url=None, nodes=tuple(nodes), started_here=False)


def test_a_request_some_node_holds_is_kept_as_asked() -> None:
    cpu_box, gpu_box = {"CPU": 16.0, "GPU": 0.0}, {"CPU": 8.0, "GPU": 4.0}
    assert fit_request({"cpu": 8, "gpu": 1}, info(cpu_box, gpu_box)) == {"cpu": 8, "gpu": 1}
    assert fit_request({"cpu": 12}, info(cpu_box, gpu_box)) == {"cpu": 12}


def test_a_request_no_node_holds_is_cut_to_the_biggest_node() -> None:
    laptop = info({"CPU": 2.0, "GPU": 0.0})
    # The real profile's pre-training on a laptop: no GPU, 2 CPUs.
    assert fit_request({"cpu": 8, "gpu": 1}, laptop) == {"cpu": 2}
    assert fit_request({"cpu": 2, "gpu": 0.25}, laptop) == {"cpu": 2}
    # The biggest node is the one with most GPUs: 8 GPUs asked, 4 there, its 8 CPUs kept.
    two = info({"CPU": 32.0, "GPU": 0.0}, {"CPU": 8.0, "GPU": 4.0})
    assert fit_request({"cpu": 8, "gpu": 8}, two) == {"cpu": 8, "gpu": 4}
    # Resources the sweeper does not fit (memory, custom ones) stay as asked.
    assert fit_request({"cpu": 4, "gpu": 1, "memory": 1e9}, laptop) == {"cpu": 2, "memory": 1e9}


def _cli(*argv: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )


def _real_args(synthetic: object) -> list[str]:
    # The demo as profile=real, shrunk to a few steps: the real readers and resources, a
    # 10-class eval folder with its classnames.txt, the tiny model so it runs in CI time.
    return [
        str(ROOT / "search_spaces" / "demo.yaml"),
        "profile=real",
        f"real.pretrain_data={synthetic.train}",  # type: ignore[attr-defined]
        f"real.clean_data={synthetic.clean}",  # type: ignore[attr-defined]
        f"real.eval_data={synthetic.eval}",  # type: ignore[attr-defined]
        f"real.classnames={synthetic.classnames}",  # type: ignore[attr-defined]
        "real.model=tiny-rn",
        "real.trial.poison.patch_size=12",
        "pretrain.jobs={mmcl: {objective: mmcl}}",
        "pretrain.trial.optim.epochs=1",
        "clean.grid.lr=[1e-4]",
        "clean.trial.optim.epochs=1",
    ]


@pytest.mark.slow
def test_real_profile_is_refused_whole_then_runs_fitted_on_this_machine(tmp_path: Path) -> None:
    from trainers.data.synthetic import make_synthetic

    # Real formats, few pairs: 256 shards' pairs, a 128-row CSV, 4 eval images per class.
    data = make_synthetic(
        tmp_path / "data", n_train=256, n_clean=128, n_eval_per_class=4, image_size=32, seed=0
    )
    store = tmp_path / "store"
    args = _real_args(data)
    refused = _cli("launch", *args, "--store", str(store), timeout=300)
    assert refused.returncode == 2, refused
    # Every infeasible stage at once, with the way out, before Ray starts or a file is written.
    assert "2 stage(s) ask for more" in refused.stderr, refused.stderr
    assert "'pretrain'" in refused.stderr and "'clean'" in refused.stderr
    assert "--fit-resources" in refused.stderr
    assert not store.exists()

    dry = _cli("launch", *args, "--dry-run", "--fit-resources", timeout=300)
    assert dry.returncode == 0, dry
    assert "would run with resources fitted" in dry.stderr, dry.stderr

    ran = _cli("launch", *args, "--store", str(store), "--fit-resources")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    cpus = f"{float(os.cpu_count() or 1):g}"
    line = [x for x in ran.stdout.splitlines() if x.startswith("resources fitted")]
    assert line == [
        f"resources fitted to this cluster's biggest node {{cpu: {cpus}, gpu: 0}} "
        f"(--fit-resources): pretrain {{cpu: 8, gpu: 1}} -> {{cpu: {cpus}}}; "
        f"clean {{cpu: 2, gpu: 0.25}} -> {{cpu: {min(2.0, float(cpus)):g}}}"
    ], ran.stdout
    (sweep,) = [p for p in store.iterdir() if not p.name.startswith(".")]
    trials = read_trials(store, [sweep.name]).to_pylist()
    assert {t["status"] for t in trials} == {"completed"}
    assert sorted({t["stage"] for t in trials}) == ["clean", "pretrain"]
    # The trial rows record what the trials really ran on.
    assert all('"gpu"' not in t["resources"] for t in trials)
    epochs = read_epochs(store, [sweep.name]).to_pylist()
    assert {(r["stage"], r["epoch"]) for r in epochs} == {
        ("pretrain", 0),
        ("pretrain", 1),
        ("clean", 0),
        ("clean", 1),
    }
