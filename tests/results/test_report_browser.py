"""The report opens in a real headless browser with no network, and its plots hold the
store's points: counted in the page chromium rendered, not in the file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from results.report import write_report
from results.store import StoreWriter, read_epochs

OBJECTIVES = ("mmcl", "mmcl_ssl")
METHODS = ("cleanclip", "mmcl", "ssl")
START = {"mmcl": (23.76, 99.98), "mmcl_ssl": (23.86, 99.45)}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "chromium is not installed: this test opens the report in a real headless browser. "
        "Install Debian's: apt-get update && apt-get install -y chromium"
    )


def run_browser(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # No network: any request for a CDN copy of plotly.js would fail, so plots that
        # render prove the page is self-contained.
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=15000",
        "--window-size=1400,4200",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def write_store(store: Path) -> None:
    rng = np.random.default_rng(7)
    for sweep in ("cc6m", "cc6m_200k"):
        w = StoreWriter(store, sweep)
        rows, trials = [], []
        for obj in OBJECTIVES:
            for method in METHODS:
                for t, lr in enumerate((1e-5, 3e-5, 1e-4)):
                    acc, asr = START[obj]
                    for epoch in range(11):
                        if epoch:
                            acc = float(np.clip(acc + rng.normal(-0.4, 1.2), 0, 100))
                            asr = float(np.clip(asr * rng.uniform(0.3, 1.1), 0, 100))
                        rows.append(
                            {
                                "stage": "clean",
                                "trial_id": f"{obj}-{method}-{t}",
                                "method": method,
                                "objective": obj,
                                "epoch": epoch,
                                "clean_acc": round(acc, 3),
                                "clean_top5": 50.0,
                                "asr": round(asr, 3),
                                "loss": None if epoch == 0 else float(rng.uniform(1, 3)),
                                "p_lr": lr,
                            }
                        )
            for epoch in range(9):
                rows.append(
                    {
                        "stage": "pretrain",
                        "trial_id": f"pre-{obj}",
                        "method": obj,
                        "objective": obj,
                        "epoch": epoch,
                        "clean_acc": 3.0 * epoch,
                        "clean_top5": 0.0,
                        "asr": min(100.0, 14.0 * epoch),
                    }
                )
            trials.append(
                {
                    "trial_id": f"pre-{obj}",
                    "stage": "pretrain",
                    "method": obj,
                    "objective": obj,
                    "status": "completed",
                    "selected_epoch": 7,
                }
            )
        w.append_epochs(rows[: len(rows) // 2])
        w.append_epochs(rows[len(rows) // 2 :])
        w.append_trials(trials)


def frontier_size(acc: np.ndarray, asr: np.ndarray) -> int:
    """Distinct non-dominated points, by brute force."""
    pts = set(zip(acc.tolist(), asr.tolist(), strict=True))
    return sum(not any(b >= a and t <= s and (b, t) != (a, s) for b, t in pts) for a, s in pts)


def expected_points(store: Path) -> dict[str, int]:
    """What each figure must draw, computed from the store alone."""
    df = read_epochs(store).to_pandas()
    clean = df[(df.stage == "clean") & (df.epoch >= 1)]
    starts = df[(df.stage == "clean") & (df.epoch == 0)][["objective", "clean_acc", "asr"]]
    groups = clean.groupby(["sweep_id", "objective", "method"])
    fronts = sum(frontier_size(g.clean_acc.to_numpy(), g.asr.to_numpy()) for _, g in groups)
    n_groups = groups.ngroups
    pre = df[df.stage == "pretrain"]
    return {
        "fig-scatter": len(clean) + len(starts.drop_duplicates()),
        "fig-frontiers": fronts,
        # Three trials per group, every epoch including the start.
        "fig-trajectories": n_groups * 3 * 11,
        # Step lines of hypervolume against epochs, drawn without markers.
        "fig-search": 0,
        # Accuracy and ASR panels, plus the selected checkpoint starred in each.
        "fig-pretrain": 2 * len(pre) + 2 * pre.groupby(["sweep_id", "trial_id"]).ngroups,
    }


def rendered_points(dom: str) -> dict[str, int]:
    """Marker elements plotly drew in each figure section of the rendered page."""
    counts = {}
    for chunk in dom.split('<section class="figure"')[1:]:
        section = re.match(r'\s*id="([^"]+)"', chunk).group(1)  # type: ignore[union-attr]
        counts[section] = len(re.findall(r'<path class="point[" ]', chunk.split("</section>")[0]))
    return counts


def legend_texts(dom: str, section: str) -> list[str]:
    """The legend's entries plotly drew in one figure section of the rendered page."""
    chunk = dom.split(f'id="{section}"')[1].split("</section>")[0]
    return re.findall(r'class="legendtext"[^>]*data-unformatted="([^"]*)"', chunk)


def test_report_renders_offline_with_every_point(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_store(store)
    page, report = write_report(store, ["cc6m", "cc6m_200k"])
    assert page == store / "reports" / "cc6m+cc6m_200k.html"  # not over cc6m/report.html
    text = page.read_text()
    assert not re.search(r"<script[^>]+src=", text), "the page must not load scripts"

    dom = run_browser(page, tmp_path / "profile", "--dump-dom").stdout
    assert 'data-plots-ready="1"' in dom
    assert dom.count('class="main-svg"') >= 8  # plotly drew every figure
    want = expected_points(store)
    assert want["fig-scatter"] == 2 * 2 * 3 * 3 * 10 + 2
    assert rendered_points(dom) == want
    # The page's own count (written after the plots were drawn) agrees.
    for section, n in want.items():
        assert f'id="{section}" data-rendered-points="{n}"' in dom
    # The trajectories' legend, as drawn: one entry per trial, named by its learning rate,
    # under a title per group (2 sweeps x 2 objectives x 3 methods).
    legend = legend_texts(dom, "fig-trajectories")
    assert sorted(legend.count(lr) for lr in ("lr=1e-05", "lr=3e-05", "lr=0.0001")) == [12] * 3
    assert legend.count("MMCL+SSL · CleanCLIP · cc6m_200k") == 1 and len(legend) == 12 * 4
    # The summary table holds the analysis, in the paper's words.
    assert "MMCL+SSL · CleanCLIP · cc6m_200k" in dom and "MMCL only · cc6m" in dom
    best = report.summary.groups[0].best.best
    assert best is not None and f"<td>{best.clean_acc:.2f}</td>" in dom

    shot = tmp_path / "report.png"
    run_browser(page, tmp_path / "profile2", f"--screenshot={shot}")
    assert shot.stat().st_size > 50_000


def test_clean_epochs_only_and_no_pretrain(tmp_path: Path) -> None:
    """A sweep without pre-training rows says so instead of drawing an empty figure."""
    store = tmp_path / "store"
    w = StoreWriter(store, "only_clean")
    w.append_epochs(
        [
            {
                "stage": "clean",
                "trial_id": "t",
                "method": "shrink_perturb",
                "epoch": e,
                "clean_acc": 20.0 - e,
                "clean_top5": 40.0,
                "asr": 90.0 / (e + 1),
            }
            for e in range(3)
        ]
    )
    page, _ = write_report(store, ["only_clean"], out=tmp_path / "r.html")
    dom = run_browser(page, tmp_path / "profile", "--dump-dom").stdout
    assert "No pre-training stage in these sweeps." in dom
    assert "shrink-and-perturb" in dom
    assert rendered_points(dom)["fig-scatter"] == 2 + 1
    assert pc.sum(read_epochs(store)["epoch"]).as_py() == 3
