"""What the loop does around each epoch, on the real tiny models and data files: the
logit-scale clamp, a fresh optimiser state for the deep-clustering head, the skipped-pair
count in every epoch record, and the teacher seeing images through its own transform."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from trainers import ListReporter, clean, pretrain
from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.config import load_config
from trainers.deep_cluster import DeepClusterObjective, embed_images, load_teacher, teacher_view
from trainers.loop import make_optimizer, make_scheduler, run_epoch, start_epoch
from trainers.losses import ContrastiveLoss
from trainers.models import create_model
from trainers.regularize import Regularizer
from trainers.trial import build_context, load_start, train_data_for


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny-rn, saved as a start model."""
    model, _ = create_model("tiny-rn", seed=0)
    path = tmp_path_factory.mktemp("start") / "start.pt"
    return save_checkpoint(path, model, model_name="tiny-rn", config={}, meta={})


def _cfg(synthetic: Any, checkpoint: Path | str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data": {
            "train": str(synthetic.clean),
            "eval": str(synthetic.eval),
            "batch_size": 32,
            "max_samples": 128,
        },
        "model": {"name": "tiny-rn", "checkpoint": str(checkpoint)},
        "optim": {"lr": 1e-4, "epochs": 1, "warmup_steps": 0},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 0.0},
        "seed": 0,
    }
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(("logit_scale", "bound"), [(7.0, math.log(100)), (-2.0, 0.0)])
def test_training_clamps_the_logit_scale_after_each_step(
    synthetic: Any, tmp_path: Path, logit_scale: float, bound: float
) -> None:
    model, _ = create_model("tiny-rn", seed=0)
    with torch.no_grad():
        model.logit_scale.fill_(logit_scale)
    begin = save_checkpoint(tmp_path / "s.pt", model, model_name="tiny-rn", config={}, meta={})
    cfg = _cfg(synthetic, begin, checkpoint_dir=str(tmp_path / "run"))
    outcome = clean(cfg, ListReporter())
    end = float(load_checkpoint(outcome.final_checkpoint).state_dict["logit_scale"])
    # Clamped after the first step, then moved by at most lr per step (Adam): 4 steps.
    assert 0.0 <= end <= math.log(100) + 1e-6
    assert abs(end - bound) <= 4 * 1e-4 + 1e-6


def test_deep_clustering_head_gets_a_fresh_optimiser_state_each_epoch(
    synthetic: Any, start: Path
) -> None:
    loss_cfg = {"mmcl_weight": 1.0, "cluster_weight": 1.0, "n_clusters": 8}
    cfg = load_config(_cfg(synthetic, start, loss=loss_cfg, optim={"lr": 1e-3, "epochs": 2}))
    ctx = build_context(cfg, start=load_start(cfg))
    data = train_data_for(ctx, ssl=False)
    extra = DeepClusterObjective(ctx, train_data_for(ctx, ssl=False, plain=True))
    regularizer = Regularizer(ctx.model, cfg.loss, cfg.optim)
    opt = make_optimizer(ctx.model, regularizer, extra, cfg.optim)
    sched = make_scheduler(opt, cfg.optim, total_steps=8)
    loss = ContrastiveLoss(1.0, 0.0)
    head = list(extra.parameters())
    encoder = ctx.model.visual.conv1.weight

    start_epoch(ctx, data, extra, opt, 1)
    stats = run_epoch(ctx, data, loss, extra, opt, sched, regularizer, 1)
    assert stats.diverged is None and "loss_cluster" in stats.means
    assert all(float(opt.state[p]["step"]) == 4 for p in [*head, encoder])
    first_labels = extra.labels.clone()

    start_epoch(ctx, data, extra, opt, 2)
    assert not torch.equal(first_labels, extra.labels)  # new clusters, new numbering
    assert all(p not in opt.state for p in head)  # the new head's moments start at zero
    assert float(opt.state[encoder]["step"]) == 4  # the encoder's are kept


def _with_bad_rows(synthetic: Any, root: Path) -> tuple[Path, int]:
    """The first 96 clean pairs plus 3 corrupt images and 2 empty captions."""
    src = Path(synthetic.clean)
    shutil.copytree(src.parent / "images", root / "images")
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:96]
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    rows[5]["image"] = rows[40]["image"] = rows[70]["image"] = "images/broken.jpg"
    rows[10]["caption"] = rows[80]["caption"] = ""
    path = root / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return path, 5


def test_every_epoch_record_counts_its_skipped_pairs(synthetic: Any, tmp_path: Path) -> None:
    data, bad = _with_bad_rows(synthetic, tmp_path)
    cfg = {
        "data": {"train": str(data), "eval": str(synthetic.eval), "batch_size": 16},
        "model": {"name": "tiny-rn"},
        "optim": {"lr": 1e-4, "epochs": 3, "warmup_steps": 0},
        "seed": 0,
    }
    rep = ListReporter()
    outcome = pretrain(cfg, rep)
    assert [r.skipped for r in rep.records] == [0, bad, bad, bad]  # epoch 0 reads no pairs
    assert outcome.skipped == 3 * bad
    assert all(r.samples_seen == 16 * 5 * r.epoch for r in rep.records)  # 91 good: 5 batches


TEACHER = {
    "embed_dim": 48,
    "vision_cfg": {"image_size": 48, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
# The teacher's own preprocessing, kept (as open_clip keeps SigLIP's) with a pretrained tag.
TEACHER_TAG = {
    "url": "",
    "hf_hub": "",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "interpolation": "bicubic",
    "resize_mode": "squash",
}


@pytest.fixture()
def teacher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ViT teacher (the student is a ResNet) with 48 px squashed images, mean/std 0.5."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "test-teacher.json").write_text(json.dumps(TEACHER))
    open_clip.add_model_config(tmp_path / "cfg")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "test-teacher", {"local": TEACHER_TAG})
    model, info = create_model("test-teacher", seed=5)
    assert (info.image_size, info.mean, info.resize_mode) == (48, (0.5, 0.5, 0.5), "squash")
    path = tmp_path / "teacher.pt"
    return save_checkpoint(path, model, model_name="test-teacher", config={}, meta={})


def _by_hand(model: torch.nn.Module, csv_path: Path, size: int, mean: float, std: float) -> Any:
    """Image features computed from the files with PIL: squash to size, (x - mean) / std."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:128]
    batch = []
    for row in rows:
        with Image.open(csv_path.parent / row["image"]) as img:
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        batch.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255).permute(2, 0, 1))
    with torch.no_grad():
        return model.encode_image((torch.stack(batch) - mean) / std, normalize=True)


def test_teacher_sees_its_own_transform(synthetic: Any, start: Path, teacher: Path) -> None:
    loss_cfg = {
        "mmcl_weight": 1.0,
        "cluster_weight": 1.0,
        "cluster_source": "teacher",
        "teacher_checkpoint": str(teacher),
    }
    cfg = load_config(_cfg(synthetic, start, loss=loss_cfg))
    ctx = build_context(cfg, start=load_start(cfg))
    assert (ctx.info.image_size, ctx.info.resize_mode) == (32, "shortest")  # the student's
    model, info, tokenizer = load_teacher(ctx)
    feats, idx = embed_images(model, teacher_view(ctx, info, tokenizer), info, ctx)
    assert idx.tolist() == list(range(128))
    csv_path = Path(synthetic.clean)
    own = _by_hand(model, csv_path, 48, 0.5, 0.5)
    torch.testing.assert_close(feats, own, rtol=1e-4, atol=1e-4)
    # The control: the student's normalisation gives features far from these.
    student_norm = _by_hand(model, csv_path, 48, 0.45, 0.27)
    assert float((feats - student_norm).norm(dim=1).mean()) > 0.05
    # And the whole path runs: pseudo-labels once, a cluster loss every epoch.
    rep = ListReporter()
    assert clean(cfg, rep).status == "completed" and rep.records[-1].loss_cluster is not None
