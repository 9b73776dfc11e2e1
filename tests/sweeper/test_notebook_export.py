"""One real sweep, launched by the README's notebook example, then exported and loaded back.

The module's one Ray sweep (`launched`) is the README's first notebook block run as written
with `spec` and `store` set to a tiny search space: `sweeper.launch`, the README's other
blocks, `sweeper export` and its errors all read it. The exported model is loaded in a
fresh interpreter that imports only open_clip and torch to load it, and measured again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
import yaml

from results.store import list_sweeps, read_epochs, read_trials
from sweeper.cli import main
from sweeper.cli.status import summarise
from tests.sweeper.test_launch import tiny_spec
from trainers.checkpoint import sha256_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def notebook_blocks() -> list[str]:
    """The python blocks between the README's notebook-example markers."""
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- notebook-example: start -->")
    end = text.index("<!-- notebook-example: end -->")
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], re.S)
    assert len(blocks) >= 4, "the README's notebook example lost its blocks"
    return blocks


def set_line(source: str, name: str, value: str) -> str:
    out, n = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", source, count=1, flags=re.M)
    assert n == 1, f"the README's first notebook block sets no `{name} = ...`"
    return out


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The README's launch block on a tiny sweep: pre-training (2 epochs, every checkpoint
    kept) and two one-epoch cleaning trials (their last, and only, epoch kept). Its
    success_asr of 100 makes every cleaned epoch a candidate, so `--best` always has one."""
    tmp = tmp_path_factory.mktemp("notebook")
    clean = {"trial": {"optim": {"epochs": 1, "warmup_steps": 1}, "data": {"batch_size": 32}}}
    path = tiny_spec(tmp, clean=clean)
    spec = yaml.safe_load(path.read_text())
    path.write_text(f"# sweeper launch {path}\n" + yaml.safe_dump({**spec, "success_asr": 100}))
    source = set_line(set_line(notebook_blocks()[0], "spec", str(path)), "store", str(tmp / "s"))
    names: dict[str, Any] = {}
    exec(compile(source, f"{README} (notebook block 1)", "exec"), names)
    return names


def test_sweeper_launch_returns_the_id_of_the_sweep_it_ran(launched: dict[str, Any]) -> None:
    store, sweep = launched["store"], launched["sweep"]
    assert list_sweeps(store) == [sweep]
    trials = read_trials(store, [sweep]).to_pylist()
    # The README's override replaced the tiny spec's grid: two cleaning trials at its lrs.
    clean = {json.loads(t["params"])["lr"] for t in trials if t["stage"] == "clean"}
    assert clean == {5e-4, 2e-3}
    assert {t["status"] for t in trials} == {"completed"}


def test_the_readme_notebook_blocks_run_as_written(
    launched: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the export block writes ./exported/best
    names = dict(launched)
    for i, block in enumerate(notebook_blocks()[1:], start=2):
        exec(compile(block, f"{README} (notebook block {i})", "exec"), names)
    df = names["df"]
    # Pre-training: epochs 0-2 of one job; cleaning: epochs 0-1 of two learning rates.
    assert len(df) == 3 + 2 * 2
    assert not df.duplicated(["sweep_id", "trial_id", "epoch"]).any()
    assert sorted(df.loc[df.stage == "clean", "p_lr"].unique()) == [5e-4, 2e-3]
    assert len(names["raw"]) == len(df)  # nothing was retried: each row appended once
    # One group (mmcl, cleanclip); at the README's default 5% it may or may not have a best.
    assert len(names["best"]) == 1
    assert isinstance(names["fig"], go.Figure) and names["fig"].data
    assert set(names["front"]["trial_id"]) <= set(df.loc[df.stage == "clean", "trial_id"])
    out = Path(names["out"]).resolve()
    assert out == (tmp_path / "exported" / "best").resolve()
    assert (out / "model_card.json").is_file()
    assert names["model"].visual is not None


def test_export_best_loads_with_open_clip_alone_and_measures_the_same(
    launched: dict[str, Any], tmp_path: Path
) -> None:
    store, sweep = launched["store"], launched["sweep"]
    out = tmp_path / "best"
    assert main(["export", sweep, "--best", "--store", store, "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    # The best candidate `sweeper status` reports (results.best.best_of_rows over the rows).
    best = summarise(store, sweep, 100.0)["best_clean"]
    assert (card["trial_id"], card["epoch"]) == (best["trial_id"], best["epoch"])
    assert (card["clean_acc"], card["asr"]) == (best["clean_acc"], best["asr"])
    assert card["model"]["sha256"] == sha256_file(out / "open_clip_model.safetensors")
    start = read_epochs(store, [sweep]).to_pandas()
    start = start[(start.trial_id == card["trial_id"]) & (start.epoch == 0)].iloc[0]
    assert card["relative_change"] == pytest.approx(
        (best["clean_acc"] - start.clean_acc) / start.clean_acc
    )
    assert card["spec"] == (Path(store) / sweep / "spec.yaml").read_text()
    got = json.loads(
        subprocess.run(
            [sys.executable, "-c", LOAD_AND_MEASURE, str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    assert got["imported_at_load"] == []
    assert (got["clean_acc"], got["asr"]) == (card["clean_acc"], card["asr"])


def test_export_errors_are_one_line_exit_2_and_leave_nothing(
    launched: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, sweep = launched["store"], launched["sweep"]
    clean = sorted(
        t["trial_id"] for t in read_trials(store, [sweep]).to_pylist() if t["stage"] == "clean"
    )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    cases = {
        "no sweep 'nope' in store": ["nope", "--best"],
        "has no trial 'clean-x'": [sweep, "--trial", "clean-x", "--epoch", "1"],
        "has no epoch 7": [sweep, "--trial", clean[0], "--epoch", "7"],
        # Retention (keep: frontier) keeps candidates, never a trial's start model.
        f"epoch 0 of sweep {sweep} kept no checkpoint": [
            sweep,
            "--trial",
            clean[0],
            "--epoch",
            "0",
        ],
        "needs --epoch": [sweep, "--trial", clean[0]],
    }
    for expected, argv in cases.items():
        out = tmp_path / "out"
        assert main(["export", *argv, "--store", store, "--out", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (argv, err)
        assert not out.exists(), argv
    assert main(["export", sweep, "--best", "--store", store, "--out", str(busy)]) == 2
    err = capsys.readouterr().err
    assert f"--out {busy} already exists and is not an empty folder" in err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no temporary folder left
    # A kept epoch of a chosen trial exports; into an empty folder too.
    kept = sorted(
        (r["trial_id"], r["epoch"])
        for r in read_epochs(store, [sweep]).to_pylist()
        if r["stage"] == "clean" and r["checkpoint"] and r["epoch"] >= 1
    )
    chosen_trial, chosen_epoch = kept[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        main(
            [
                "export",
                sweep,
                "--trial",
                chosen_trial,
                "--epoch",
                str(chosen_epoch),
                "--store",
                store,
                "--out",
                str(empty),
            ]
        )
        == 0
    )
    card = json.loads((empty / "model_card.json").read_text())
    assert (card["trial_id"], card["epoch"]) == (chosen_trial, chosen_epoch)
    assert card["selected_by"] == f"--trial {chosen_trial} --epoch {chosen_epoch}"


# Loads the export with open_clip and torch only, then measures it with trainers.evaluate on
# the sweep's eval set, trigger and target as the card gives them (one thread, as the trial).
LOAD_AND_MEASURE = """
import json, sys
from pathlib import Path
import open_clip, torch

out = Path(sys.argv[1])
card = json.loads((out / "model_card.json").read_text())
open_clip.add_model_config(out / card["model"]["config_file"])
model = open_clip.create_model(card["model"]["name"], pretrained=str(out / card["model"]["weights"]))
loaded_with = sorted({m.split(".")[0] for m in sys.modules} & {"sweeper", "trainers", "results"})

from trainers.config import DataConfig
from trainers.data import load_eval_data, make_trigger
from trainers.evaluate import Prompts, evaluate

torch.set_num_threads(1)
ev, pre = card["evaluation"], card["model"]["preprocess"]
data = load_eval_data(DataConfig.model_validate(ev["data"]), image_size=pre["size"])
trigger = make_trigger(ev["trigger"], image_size=pre["size"], patch_size=ev["patch_size"],
                       blend_alpha=ev["blend_alpha"], seed=ev["trigger_seed"])
mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
prompts = Prompts.build(open_clip.get_tokenizer(card["model"]["name"]), data.classnames)
r = evaluate(model, prompts, data, trigger=trigger, target=ev["target"],
             normalize=lambda x: (x - mean) / std, device=torch.device("cpu"),
             batch_size=ev["data"]["eval_batch_size"], seed=ev["seed"])
print(json.dumps({"imported_at_load": loaded_with, "clean_acc": r.clean_acc, "asr": r.asr}))
"""
