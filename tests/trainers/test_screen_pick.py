"""A screen keeps no checkpoints; the sweeper rebuilds its pick's model from the pick's
config. The rebuilt file must be the model the screen trial evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers import ListReporter, screen
from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.entries import perturbed_checkpoint
from trainers.models import create_model


def test_the_rebuilt_pick_is_the_model_the_screen_evaluated(synthetic: Any, tmp_path: Path) -> None:
    start, _ = create_model("tiny-rn", seed=3)
    start_path = save_checkpoint(
        tmp_path / "start.pt", start, model_name="tiny-rn", config={}, meta={"target": "banana"}
    )
    cfg = {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval)},
        "model": {"name": "tiny-rn", "checkpoint": str(start_path)},
        "shrink_perturb": {"shrink": 0.7, "perturb_sigma": 0.05, "noise": "init"},
        "checkpoint_dir": str(tmp_path / "screened"),
        "seed": 11,
    }
    rep = ListReporter()
    out = screen(cfg, rep)  # save "every": this trial keeps the model it evaluated
    assert out.final_checkpoint is not None
    evaluated = load_checkpoint(out.final_checkpoint)

    rebuilt = load_checkpoint(
        perturbed_checkpoint(
            {**cfg, "save": "none"},
            tmp_path / "pick.pt",
            clean_acc=rep.records[0].clean_acc,
            asr=rep.records[0].asr,
        )
    )
    assert evaluated.state_dict.keys() == rebuilt.state_dict.keys()
    assert all(
        torch.equal(evaluated.state_dict[k], rebuilt.state_dict[k]) for k in rebuilt.state_dict
    )
    assert rebuilt.meta == evaluated.meta
    # The start model is not the pick: the perturbation was applied.
    assert not torch.equal(
        rebuilt.state_dict["visual.conv1.weight"], start.state_dict()["visual.conv1.weight"]
    )


def test_a_screen_told_to_save_none_writes_nothing(synthetic: Any, tmp_path: Path) -> None:
    cfg = {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval)},
        "model": {"name": "tiny-rn"},
        "checkpoint_dir": str(tmp_path / "screened"),
        "save": "none",
    }
    start, _ = create_model("tiny-rn", seed=0)
    cfg["model"]["checkpoint"] = str(
        save_checkpoint(tmp_path / "s.pt", start, model_name="tiny-rn", config={}, meta={})
    )
    out = screen(cfg, ListReporter())
    assert out.final_checkpoint is None
    assert not (tmp_path / "screened").exists()
