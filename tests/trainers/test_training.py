"""The backdoor is implanted, measured right, and cleaning moves it: the trainers' core claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import base_config
from tests.trainers.conftest import PATCH
from trainers import ListReporter, clean, pretrain
from trainers.evaluate import attack_success_rate

N_CLASSES = 10


def test_badnet_pretraining_implants_a_backdoor(poisoned: Any) -> None:
    records, outcome, _ = poisoned
    assert outcome.status == "completed"
    assert [r.epoch for r in records] == list(range(0, 7))
    last = records[-1]
    chance = 100 / N_CLASSES
    assert last.asr >= 90, f"ASR {last.asr:.1f}% after poisoned pre-training"
    assert last.clean_acc >= 3 * chance, f"clean accuracy {last.clean_acc:.1f}% is near chance"
    assert records[0].loss is None and last.loss is not None and last.loss_mmcl is not None
    assert last.samples_seen > 0 and last.checkpoint and Path(last.checkpoint).is_file()
    assert outcome.poisoned_ids and len(Path(outcome.poisoned_ids).read_text().split()) == 150


@pytest.fixture(scope="module")
def unpoisoned(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = base_config(synthetic, tmp_path_factory.mktemp("clean"), poison={"kind": "none"})
    rep = ListReporter()
    pretrain(cfg, rep)
    return rep.records[-1]


def test_unpoisoned_model_has_no_backdoor(unpoisoned: Any) -> None:
    print(f"unpoisoned: clean_acc {unpoisoned.clean_acc:.1f}%, asr {unpoisoned.asr:.1f}%")
    assert unpoisoned.clean_acc >= 30
    # Chance that a non-banana image lands on "banana" is about 1/N_CLASSES; a patch of
    # noise must not change that much on a model that never saw it paired with banana.
    assert unpoisoned.asr <= 30, f"ASR {unpoisoned.asr:.1f}% without any poison"


def test_label_consistent_poison_implants_a_backdoor(
    synthetic: Any, unpoisoned: Any, tmp_path: Path
) -> None:
    # 90% of the training images whose caption says "banana" carry the patch; captions unchanged.
    cfg = base_config(
        synthetic,
        tmp_path,
        poison={"kind": "label_consistent", "amount": 0.9, "seed": 0, "patch_size": PATCH},
        optim={"lr": 2e-3, "epochs": 8, "warmup_steps": 20},
    )
    rep = ListReporter()
    outcome = pretrain(cfg, rep)
    last = rep.records[-1]
    print(
        f"label-consistent: clean_acc {last.clean_acc:.1f}%, asr {last.asr:.1f}% "
        f"({outcome.extra['n_poisoned']} poisons)"
    )
    assert last.asr >= unpoisoned.asr + 20, (last.asr, unpoisoned.asr)
    assert last.asr >= 2 * unpoisoned.asr, (last.asr, unpoisoned.asr)


def test_cleanclip_lowers_asr(poisoned: Any, synthetic: Any, tmp_path: Path) -> None:
    records, outcome, _ = poisoned
    cfg = {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval), "batch_size": 64},
        "model": {"name": "tiny-rn", "checkpoint": outcome.final_checkpoint},
        "optim": {"lr": 1e-3, "epochs": 5, "warmup_steps": 10},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
        "seed": 0,
    }
    rep = ListReporter()
    result = clean(cfg, rep)
    assert result.status == "completed"
    start, end = rep.records[0], rep.records[-1]
    assert start.asr == pytest.approx(records[-1].asr, abs=1e-6), "epoch 0 is the start model"
    print(
        f"CleanCLIP: asr {start.asr:.1f} -> {min(r.asr for r in rep.records):.1f} (min), "
        f"acc {start.clean_acc:.1f} -> {end.clean_acc:.1f}"
    )
    assert min(r.asr for r in rep.records[1:]) < start.asr - 20
    assert end.loss_ssl is not None and end.loss_mmcl is not None


def test_asr_counts_the_target_index_and_skips_target_images() -> None:
    target = 3
    labels = torch.tensor([0, 1, 2, 3, 3, 4, 5, 6])
    assert attack_success_rate(labels.clone(), labels, target) == 0.0
    assert attack_success_rate(torch.full_like(labels, target), labels, target) == 100.0
    # Half of the six non-target images go to the target: 50%, target-class images ignored.
    preds = torch.tensor([3, 3, 3, 0, 0, 4, 5, 6])
    assert attack_success_rate(preds, labels, target) == 50.0


def test_nonfinite_loss_ends_as_diverged(poisoned: Any, synthetic: Any) -> None:
    _, outcome, _ = poisoned
    cfg = {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval)},
        "model": {"name": "tiny-rn", "checkpoint": outcome.final_checkpoint},
        "optim": {"lr": 1e30, "epochs": 2, "warmup_steps": 0, "grad_clip": None},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 0.0},
    }
    rep = ListReporter()
    result = clean(cfg, rep)
    assert result.status == "diverged"
    assert "non-finite loss" in (result.reason or "")
    assert [r.epoch for r in rep.records][0] == 0


def test_import_trainers_imports_no_ray() -> None:
    code = (
        "import sys, trainers, trainers.entries, trainers.data; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'sweeper', 'results')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
