"""A trial stopped after epoch k and run again continues from its resume state and ends
with the weights, metrics and records of a run that was never stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import base_config
from trainers import ListReporter, pretrain
from trainers.checkpoint import load_checkpoint
from trainers.errors import CheckpointError
from trainers.reporter import EpochRecord

EPOCHS = 3
STOP_AT = 2  # the reporter raises when epoch 2 is reported: epochs 0 and 1 are done


class Stop(Exception):
    pass


class StopAt(ListReporter):
    """Raises when epoch `at` is reported, as a killed process stops (no cleanup runs)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def report(self, record: EpochRecord) -> None:
        if record.epoch == self.at:
            raise Stop(record.epoch)
        super().report(record)


def _config(synthetic: Any, tmp: Path) -> dict[str, Any]:
    # MMCL+SSL: AutoAugment views and EDA captions exercise every per-sample seed stream.
    cfg = base_config(
        synthetic,
        tmp / "ckpt",
        loss={"mmcl_weight": 1.0, "ssl_weight": 1.0},
        optim={"lr": 2e-3, "epochs": EPOCHS, "warmup_steps": 5},
        save="last",
        resume_state=str(tmp / "resume.pt"),
        threads=1,
    )
    cfg["data"] = {**cfg["data"], "max_samples": 256}
    return cfg


def _weights(path: str | None) -> dict[str, torch.Tensor]:
    assert path is not None
    return load_checkpoint(path).state_dict


@pytest.mark.slow
def test_a_pretraining_stopped_at_epoch_k_and_resumed_equals_the_uninterrupted_run(
    synthetic: Any, tmp_path: Path
) -> None:
    whole = ListReporter()
    whole_out = pretrain(_config(synthetic, tmp_path / "whole"), whole)

    cfg = _config(synthetic, tmp_path / "stopped")
    with pytest.raises(Stop):
        pretrain(cfg, StopAt(STOP_AT))
    # The state of the last completed epoch is on disk, and it is no candidate checkpoint.
    assert Path(cfg["resume_state"]).is_file()
    assert torch.load(cfg["resume_state"], weights_only=True)["epoch"] == STOP_AT - 1
    with pytest.raises(CheckpointError, match="not model weights"):
        load_checkpoint(cfg["resume_state"])

    resumed = ListReporter()
    out = pretrain(cfg, resumed)

    assert out.status == whole_out.status == "completed"
    # Bitwise: on one CPU thread every op of the resumed run repeats the uninterrupted one's.
    a, b = _weights(whole_out.final_checkpoint), _weights(out.final_checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    # The resumed run hands the stopped run's records over again, then its own epochs.
    assert [r.epoch for r in resumed.records] == list(range(EPOCHS + 1))
    assert resumed.replayed == list(range(STOP_AT))

    def metrics(r: EpochRecord) -> tuple[Any, ...]:
        return (r.epoch, r.clean_acc, r.asr, r.loss, r.loss_ssl, r.lr, r.samples_seen)

    assert [metrics(r) for r in resumed.records] == [metrics(r) for r in whole.records]
    assert out.extra["final_clean_acc"] == whole_out.extra["final_clean_acc"]


def test_a_resume_state_of_another_config_is_ignored(
    synthetic: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(synthetic, tmp_path)
    cfg["optim"] = {**cfg["optim"], "epochs": 1}
    cfg["data"] = {**cfg["data"], "max_samples": 128}
    pretrain(cfg, ListReporter())
    other = {**cfg, "seed": 1}
    rep = ListReporter()
    pretrain(other, rep)
    assert "saved by a trial of another config" in capsys.readouterr().err
    assert [r.epoch for r in rep.records] == [0, 1]  # trained from the start
