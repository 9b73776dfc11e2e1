"""Each cleaning variant does what it says, on the real tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainers import ListReporter, clean, screen
from trainers.checkpoint import load_checkpoint, load_weights
from trainers.config import ShrinkPerturbConfig
from trainers.data.seeding import mix_seed
from trainers.models import create_model
from trainers.shrink_perturb import NOISE_STREAM, shrink_perturb


def _clean_cfg(outcome: Any, synthetic: Any, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data": {"train": str(synthetic.clean), "eval": str(synthetic.eval), "batch_size": 64},
        "model": {"name": "tiny-rn", "checkpoint": outcome.final_checkpoint},
        "optim": {"lr": 1e-3, "epochs": 2, "warmup_steps": 5},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
        "seed": 0,
    }
    cfg.update(over)
    return cfg


def _start_model(outcome: Any) -> torch.nn.Module:
    model, _ = create_model("tiny-rn")
    load_weights(model, load_checkpoint(outcome.final_checkpoint), model_name="tiny-rn")
    return model


@pytest.mark.parametrize("noise", ["gaussian", "init"])
def test_shrink_perturb_follows_the_formula(poisoned: Any, noise: str) -> None:
    _, outcome, _ = poisoned
    before = _start_model(outcome)
    after = _start_model(outcome)
    cfg = ShrinkPerturbConfig(shrink=0.6, perturb_sigma=0.01, noise=noise)
    shrink_perturb(after, cfg, model_name="tiny-rn", seed=7)
    # The noise is reproducible from its documented seed stream, mix_seed(seed, NOISE_STREAM).
    noise_seed = mix_seed(7, NOISE_STREAM)
    if noise == "init":
        fresh, _ = create_model("tiny-rn", seed=noise_seed)
        noise_of = dict(fresh.named_parameters())
    gen = torch.Generator().manual_seed(noise_seed)
    for (name, p0), (_, p1) in zip(
        before.named_parameters(), after.named_parameters(), strict=True
    ):
        if "logit_scale" in name:
            assert torch.equal(p0, p1)
            continue
        n = noise_of[name] if noise == "init" else torch.randn(p0.shape, generator=gen)
        torch.testing.assert_close(p1, 0.6 * p0 + 0.01 * n, rtol=1e-5, atol=1e-6)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


@pytest.mark.parametrize("noise", ["gaussian", "init"])
@pytest.mark.parametrize("seed", [0, 3])
def test_perturbation_is_independent_of_the_models_own_init(noise: str, seed: int) -> None:
    # Pre-training from scratch initialises with create_model(name, seed=cfg.seed); a clean
    # trial with the same seed must not draw that same initialisation as its noise.
    own_init, _ = create_model("tiny-rn", seed=seed)
    model, _ = create_model("tiny-rn", seed=seed)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = ShrinkPerturbConfig(shrink=0.5, perturb_sigma=0.1, noise=noise)
    shrink_perturb(model, cfg, model_name="tiny-rn", seed=seed)
    init_of = dict(own_init.named_parameters())
    fresh, _ = create_model("tiny-rn", seed=seed + 1000)  # some other initialisation
    fresh_of = dict(fresh.named_parameters())
    checked = 0
    for name, p in model.named_parameters():
        if "logit_scale" in name or p.numel() < 1000:
            continue
        drawn = (p.detach() - 0.5 * before[name]) / 0.1
        assert abs(_correlation(drawn, init_of[name].detach())) < 0.1, name
        if noise == "init":  # a fresh initialisation: that layer's init scale
            ratio = float(drawn.std() / fresh_of[name].detach().std())
            assert 0.8 < ratio < 1.25, (name, ratio)
        else:
            assert abs(float(drawn.std()) - 1) < 0.1, name
        checked += 1
    assert checked >= 5


def test_screen_evaluates_the_perturbed_model_only(
    poisoned: Any, synthetic: Any, tmp_path: Path
) -> None:
    records, outcome, _ = poisoned
    cfg = _clean_cfg(
        outcome,
        synthetic,
        shrink_perturb={"shrink": 0.3, "perturb_sigma": 0.05},
        checkpoint_dir=str(tmp_path),
    )
    rep = ListReporter()
    result = screen(cfg, rep)
    assert [r.epoch for r in rep.records] == [0]
    assert result.final_checkpoint and Path(result.final_checkpoint).is_file()
    # The saved model is the perturbed one: its weights differ from the start's.
    saved = load_checkpoint(result.final_checkpoint).state_dict
    start = load_checkpoint(outcome.final_checkpoint).state_dict
    key = next(k for k in saved if k.endswith("conv1.weight"))
    assert not torch.allclose(saved[key], start[key])
    assert rep.records[0].clean_acc != pytest.approx(records[-1].clean_acc)


def test_points_evaluated_in_one_process_equal_points_evaluated_fresh(
    poisoned: Any, synthetic: Any
) -> None:
    """A screen chunk reuses one model and the tokenized prompts across its points
    (`build_context(reuse=True)`); every point must score as if evaluated alone."""
    from trainers import trial

    _, outcome, _ = poisoned
    points = [
        _clean_cfg(outcome, synthetic, shrink_perturb={"shrink": s, "perturb_sigma": p}, seed=i)
        for i, (s, p) in enumerate([(0.9, 0.001), (1.0, 0.0), (0.3, 0.08)])
    ]

    def run(cfg: dict[str, Any]) -> tuple[float, float]:
        rep = ListReporter()
        screen(cfg, rep)
        return rep.records[0].clean_acc, rep.records[0].asr

    in_a_row = [run(cfg) for cfg in points]
    assert trial._REUSED, "the points did not share a model"
    alone = []
    for cfg in points:
        trial._REUSED.clear()
        trial._PROMPTS.clear()
        alone.append(run(cfg))
    assert in_a_row == alone
    assert len(set(alone)) >= 2  # the points differ: the perturbation is not a no-op


def _distance_to_start(ckpt: str, start: str) -> float:
    a, b = load_checkpoint(ckpt).state_dict, load_checkpoint(start).state_dict
    return sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in a if a[k].ndim >= 2)


def test_l2_sp_pulls_toward_the_start(poisoned: Any, synthetic: Any, tmp_path: Path) -> None:
    _, outcome, _ = poisoned
    dist = {}
    for name, loss in {
        "plain": {"mmcl_weight": 1.0, "ssl_weight": 1.0},
        "l2sp": {"mmcl_weight": 1.0, "ssl_weight": 1.0, "l2_weight": 50.0, "l2_target": "start"},
        "l2zero": {"mmcl_weight": 1.0, "ssl_weight": 1.0, "l2_weight": 50.0, "l2_target": "zero"},
    }.items():
        rep = ListReporter()
        cfg = _clean_cfg(outcome, synthetic, loss=loss, checkpoint_dir=str(tmp_path / name))
        res = clean(cfg, rep)
        dist[name] = _distance_to_start(res.final_checkpoint, outcome.final_checkpoint)
        if name != "plain":
            assert rep.records[-1].loss_reg is not None and rep.records[-1].loss_reg >= 0
    assert dist["l2sp"] < 0.7 * dist["plain"], dist
    # Decay toward zero moves the weights away from the start faster than no decay at all.
    assert dist["l2zero"] > dist["l2sp"], dist


def test_deep_clustering_loss_falls_as_the_head_learns(poisoned: Any, synthetic: Any) -> None:
    _, outcome, _ = poisoned
    cfg = _clean_cfg(
        outcome,
        synthetic,
        loss={"mmcl_weight": 1.0, "ssl_weight": 0.0, "cluster_weight": 1.0, "n_clusters": 10},
        optim={"lr": 3e-3, "epochs": 3, "warmup_steps": 5},
    )
    # Small batches: enough steps per epoch for the fresh head to learn within the epoch.
    cfg["data"] = {**cfg["data"], "batch_size": 16}
    rep = ListReporter()
    res = clean(cfg, rep)
    assert res.status == "completed"
    losses = [r.loss_cluster for r in rep.records[1:]]
    assert all(v is not None for v in losses)
    # The head is fresh each epoch, so every epoch starts at chance (ln 10 = 2.30); an epoch
    # mean well below it means the head learned the pseudo-labels within that epoch.
    assert max(losses) < 2.0, losses


def test_teacher_pseudo_labels(poisoned: Any, synthetic: Any) -> None:
    _, outcome, _ = poisoned
    cfg = _clean_cfg(
        outcome,
        synthetic,
        loss={
            "mmcl_weight": 1.0,
            "cluster_weight": 1.0,
            "cluster_source": "teacher",
            "teacher_checkpoint": outcome.final_checkpoint,
        },
        optim={"lr": 1e-3, "epochs": 1, "warmup_steps": 5},
    )
    rep = ListReporter()
    res = clean(cfg, rep)
    assert res.status == "completed" and rep.records[-1].loss_cluster is not None
