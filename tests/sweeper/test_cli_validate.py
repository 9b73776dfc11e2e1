"""`sweeper validate`, `sweeper ls` and `sweeper launch --dry-run`, driven in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweeper.cli import main

ROOT = Path(__file__).resolve().parents[2] / "search_spaces"
MAIN_JOB = str(ROOT / "shrink_perturb.yaml")

GOOD = """\
name: t
pretrain:
  trial: {poison: {kind: badnet, amount: 1500}, optim: {lr: 1e-3, epochs: 64}}
  jobs: {mmcl: {objective: mmcl}}
clean:
  grid: {lr: [1e-5, 2e-5]}
  resources: {gpu: 0.25, cpu: 2}
"""

# The bad specs of the issue, each with the field its message must name.
BAD = {
    "syntax error": (GOOD.replace("[1e-5, 2e-5]}", "[1e-5, 2e-5}"), "6:"),
    "unknown key": (GOOD.replace("  grid:", "  gird: {}\n  grid:"), "clean.gird: unknown key"),
    "wrong type": (GOOD.replace("epochs: 64", "epochs: many"), "pretrain.trial.optim.epochs"),
    "empty grid": (GOOD.replace("{lr: [1e-5, 2e-5]}", "{}"), "clean.grid: must not be empty"),
    "empty values": (GOOD.replace("[1e-5, 2e-5]", "[]"), "clean.grid.lr: must not be empty"),
    "lambda 0": (
        GOOD + "screen: {grid: {shrink: [0.5, 0]}}\n",  # and no shrink_perturb method
        "screen.grid.shrink[1]: must be > 0",
    ),
    "lambda above 1": (
        GOOD + "screen: {grid: {shrink: [1.5]}}\n",
        "screen.grid.shrink[0]: must be <= 1",
    ),
    "negative lr": (GOOD.replace("[1e-5, 2e-5]", "[1e-5, -2e-5]"), "clean.grid.lr[1]: must be > 0"),
    "missing checkpoint": (
        "name: t\nstart: {checkpoint: gone.pt, objective: mmcl}\nclean: {grid: {lr: [1e-5]}}\n",
        "start.checkpoint: no such file 'gone.pt'",
    ),
    "zero cpu": (GOOD.replace("cpu: 2", "cpu: 0"), "clean.resources.cpu: must be > 0"),
    "negative cpu": (GOOD.replace("cpu: 2", "cpu: -2"), "clean.resources.cpu: must be > 0"),
    "split gpus": (GOOD.replace("gpu: 0.25", "gpu: 1.5"), "clean.resources.gpu: 1.5"),
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_every_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in ROOT.rglob("*.yaml"))
    code, out, err = run_cli(["validate", *files], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == len(files)
    assert f"ok {MAIN_JOB}: 266 trials in stages pretrain (2), screen (255), clean (9)" in out


def test_validate_reports_the_bad_file_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD["negative lr"][0])
    code, out, err = run_cli(["validate", str(bad), MAIN_JOB], capsys)
    assert code == 2
    assert out.startswith(f"ok {MAIN_JOB}")
    assert f"{bad}: clean.grid.lr[1]: must be > 0 (got -2e-05)" in err


def test_validate_applies_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["validate", MAIN_JOB, "clean.grid.lr=[1e-5, 2e-5]"], capsys)
    assert code == 0 and "clean (2)" in out


def test_dry_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    code, out, _ = run_cli(
        ["launch", MAIN_JOB, "--dry-run", "--json", "--store", str(store)], capsys
    )
    assert code == 0
    plan = json.loads(out)
    disk = plan.pop("disk")
    # Checkpoints before -> after retention: 2 pre-training jobs of 16 epochs (64 x 0.25) write
    # 17 each and keep their selected one; 255 screen points keep the pick; 9 cleaning trials
    # of 5 epochs write 6 each and keep the best plus (frontier) an estimated one per trial.
    counts = {d["name"]: (d["checkpoints_before"], d["checkpoints_after"]) for d in disk["stages"]}
    assert counts == {"pretrain": (34, 2), "screen": (255, 1), "clean": (54, 10)}
    per = {d["checkpoint_bytes"] for d in disk["stages"]}
    assert len(per) == 1 and disk["bytes_after"] == 13 * per.pop()
    assert plan == {
        "sweep": "shrink_perturb",
        "paper": "D.13",
        "profile": "embedded",
        "stages": [
            {"name": "pretrain", "trials": 2, "resources": {"cpu": 1.0, "gpu": 0.0}},
            {"name": "screen", "trials": 255, "resources": {"cpu": 1.0, "gpu": 0.0}},
            {"name": "clean", "trials": 9, "resources": {"cpu": 1.0, "gpu": 0.0}},
        ],
    }
    assert not store.exists()


def test_dry_run_with_overrides_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["launch", MAIN_JOB, "profile=real", "--dry-run", "clean.grid.lr=[1e-4]", "--json"]
    code, out, _ = run_cli(argv, capsys)
    plan = json.loads(out)
    assert code == 0 and plan["profile"] == "real"
    assert [(s["name"], s["trials"], s["resources"]) for s in plan["stages"]] == [
        ("pretrain", 2, {"cpu": 8.0, "gpu": 1.0}),
        ("screen", 255, {"cpu": 2.0, "gpu": 0.25}),
        ("clean", 1, {"cpu": 2.0, "gpu": 0.25}),
    ]


def test_dry_run_optuna_counts_its_budget(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["launch", str(ROOT / "optuna_cc6m_mmcl_ssl.yaml"), "--dry-run", "--json"]
    code, out, _ = run_cli(argv, capsys)
    clean = json.loads(out)["stages"][-1]
    assert code == 0 and (clean["trials"], clean["search"]) == (40, "optuna")


def test_dry_run_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["launch", MAIN_JOB, "--dry-run"], capsys)
    assert code == 0
    assert out.splitlines()[0] == "sweep shrink_perturb (paper D.13, profile embedded)"
    assert "screen         255  cpu 1" in out and "total          266" in out


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_spec_exits_2_naming_file_and_field(
    case: str, dry_run: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, field = BAD[case]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    store = tmp_path / "store"
    argv = ["launch", str(path), "--store", str(store), *(["--dry-run"] if dry_run else [])]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert f"{path}:" in err and field in err
    assert not store.exists()  # nothing written, not even the store folder


def test_json_needs_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["launch", MAIN_JOB, "--json", "--store", str(tmp_path / "s")], capsys)
    assert code == 2 and "--dry-run" in err and not (tmp_path / "s").exists()


def test_bad_override_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["launch", MAIN_JOB, "--dry-run", "clean.grid.lr=[-1]"], capsys)
    assert code == 2 and "clean.grid.lr[0]: must be > 0" in err
    code, _, err = run_cli(["launch", MAIN_JOB, "--dry-run", "clean.trial.optim.epoch=3"], capsys)
    assert code == 2 and "clean.trial.optim.epoch: unknown key" in err


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("methods", "shrink_perturb"),
        ("params", "perturb_sigma   shrink_perturb.perturb_sigma"),
        ("triggers", "label_consistent"),
        ("spaces", "shrink_perturb.yaml"),
    ],
)
def test_ls(kind: str, expect: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ls", kind, "--dir", str(ROOT)], capsys)
    assert code == 0 and expect in out


def test_ls_spaces_shows_paper_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(["ls", "spaces", "--dir", str(ROOT)], capsys)
    line = next(x for x in out.splitlines() if x.startswith("d11_deep_clustering.yaml"))
    assert "D.11" in line and "clean (144)" in line


def test_ls_models_lists_tiny_and_open_clip(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ls", "models"], capsys)
    names = [x.split()[0] for x in out.splitlines()]
    assert code == 0 and names[:2] == ["tiny-rn", "tiny-vit"] and "RN50" in names


def test_a_closed_pipe_ends_quietly_with_141() -> None:
    """`sweeper ls params | head -0`: the reader is gone before the first write."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sweeper", "ls", "params"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
