"""Bad input to a trial is a clear error naming what to fix, never a crash deep in torch."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from trainers import ListReporter, clean, pretrain
from trainers.checkpoint import load_checkpoint
from trainers.errors import CheckpointError, ConfigError, DataError, ModelError


def _cfg(synthetic: Any, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval)},
        "model": {"name": "tiny-rn"},
        "optim": {"epochs": 1},
    }
    cfg.update(over)
    return cfg


def test_missing_data_path(synthetic: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "shards"
    with pytest.raises(DataError, match=str(missing)):
        pretrain(
            _cfg(synthetic, data={"train": str(missing), "eval": str(synthetic.eval)}),
            ListReporter(),
        )


def test_unknown_model_name(synthetic: Any) -> None:
    with pytest.raises(ModelError, match="RN5O"):
        pretrain(_cfg(synthetic, model={"name": "RN5O"}), ListReporter())


def test_unknown_config_key_names_the_field(synthetic: Any) -> None:
    with pytest.raises(ConfigError, match=r"optim\.learning_rate"):
        pretrain(_cfg(synthetic, optim={"learning_rate": 1e-3}), ListReporter())


def test_checkpoint_of_another_architecture(poisoned: Any, synthetic: Any) -> None:
    _, outcome, _ = poisoned
    cfg = _cfg(synthetic, model={"name": "tiny-vit", "checkpoint": outcome.final_checkpoint})
    with pytest.raises(CheckpointError, match="tiny-rn.*tiny-vit"):
        clean(cfg, ListReporter())


def test_bare_state_dict_of_another_architecture(
    poisoned: Any, synthetic: Any, tmp_path: Path
) -> None:
    _, outcome, _ = poisoned
    bare = tmp_path / "openclip_style.pt"
    torch.save({"state_dict": load_checkpoint(outcome.final_checkpoint).state_dict}, bare)
    assert load_checkpoint(bare).model_name is None  # loads as an open_clip state dict
    cfg = _cfg(synthetic, model={"name": "tiny-vit", "checkpoint": str(bare)})
    with pytest.raises(CheckpointError, match="another architecture"):
        clean(cfg, ListReporter())


def test_truncated_checkpoint(poisoned: Any, tmp_path: Path) -> None:
    _, outcome, _ = poisoned
    data = Path(outcome.final_checkpoint).read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


class _NotWeights:
    pass


def test_pickle_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump(_NotWeights(), f)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(evil)


def test_missing_checkpoint(synthetic: Any, tmp_path: Path) -> None:
    cfg = _cfg(synthetic, model={"name": "tiny-rn", "checkpoint": str(tmp_path / "no.pt")})
    with pytest.raises(CheckpointError, match="does not exist"):
        clean(cfg, ListReporter())
