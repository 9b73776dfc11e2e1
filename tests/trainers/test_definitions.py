"""The paper's training definitions, each against hand-made inputs and hand-computed values:
the SSL loss's direction, AdamW's parameter groups and defaults, the cosine schedule with
warmup, the logit-scale clamp, and a fresh optimiser state for a re-initialised head."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainers.config import LossConfig, OptimConfig
from trainers.loop import make_optimizer, make_scheduler, reset_optimizer_state
from trainers.losses import ContrastiveLoss
from trainers.models import clamp_logit_scale, create_model
from trainers.regularize import Regularizer


def _ce_rows(logits: list[list[float]]) -> float:
    """Mean over rows of -log softmax(row)[row index], in plain Python."""
    total = 0.0
    for i, row in enumerate(logits):
        top = max(row)
        log_sum = top + math.log(sum(math.exp(v - top) for v in row))
        total += log_sum - row[i]
    return total / len(logits)


def _scaled_dots(a: list[list[float]], b: list[list[float]], scale: float) -> list[list[float]]:
    return [[scale * sum(x * y for x, y in zip(u, v, strict=True)) for v in b] for u in a]


# Unit vectors, chosen so that CE(a -> b) and CE(b -> a) differ.
IMAGE = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
IMAGE_AUG = [[0.8, 0.6], [0.8, 0.6], [0.0, 1.0]]
TEXT = [[0.0, 1.0], [1.0, 0.0], [0.6, -0.8]]
TEXT_AUG = [[0.6, 0.8], [1.0, 0.0], [1.0, 0.0]]
SCALE = 3.0


def test_ssl_loss_is_one_directional_per_modality() -> None:
    loss = ContrastiveLoss(mmcl_weight=0.0, ssl_weight=1.0)
    t = [torch.tensor(x) for x in (IMAGE, TEXT, IMAGE_AUG, TEXT_AUG)]
    parts = loss(t[0], t[1], torch.tensor(SCALE), t[2], t[3])
    # CleanCLIP / the authors' code: rows are the originals, columns their augmented views.
    forward = (
        _ce_rows(_scaled_dots(IMAGE, IMAGE_AUG, SCALE))
        + _ce_rows(_scaled_dots(TEXT, TEXT_AUG, SCALE))
    ) / 2
    backward = (
        _ce_rows(_scaled_dots(IMAGE_AUG, IMAGE, SCALE))
        + _ce_rows(_scaled_dots(TEXT_AUG, TEXT, SCALE))
    ) / 2
    assert abs(forward - backward) > 0.05  # the inputs tell the directions apart
    assert float(parts["loss_ssl"]) == pytest.approx(forward, rel=1e-5)
    assert float(parts["loss"]) == pytest.approx(forward, rel=1e-5)


def test_mmcl_loss_is_symmetric_clip_loss() -> None:
    loss = ContrastiveLoss(mmcl_weight=1.0, ssl_weight=0.0)
    parts = loss(torch.tensor(IMAGE), torch.tensor(TEXT), torch.tensor(SCALE))
    i2t = _ce_rows(_scaled_dots(IMAGE, TEXT, SCALE))
    t2i = _ce_rows(_scaled_dots(TEXT, IMAGE, SCALE))
    assert float(parts["loss_mmcl"]) == pytest.approx((i2t + t2i) / 2, rel=1e-5)


class _Toy(nn.Module):
    """One parameter of each kind the decay rule must tell apart."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 3)
        # A BatchNorm whose name has no "bn" (as in RN50's downsample blocks).
        self.downsample = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.BatchNorm2d(3))
        self.ln_final = nn.LayerNorm(3)
        self.class_embedding = nn.Parameter(torch.zeros(3))
        self.positional_embedding = nn.Parameter(torch.zeros(5, 3))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


DECAYED = {"proj.weight", "downsample.0.weight", "class_embedding", "positional_embedding"}
NOT_DECAYED = {
    "proj.bias",
    "downsample.1.weight",
    "downsample.1.bias",
    "ln_final.weight",
    "ln_final.bias",
    "logit_scale",
}


def _groups_by_name(model: nn.Module, opt: torch.optim.Optimizer) -> dict[float, set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in opt.param_groups}


def test_adamw_decays_all_but_norms_biases_and_the_logit_scale() -> None:
    model = _Toy()
    optim = OptimConfig()
    opt = make_optimizer(model, Regularizer(model, LossConfig(), optim), None, optim)
    assert _groups_by_name(model, opt) == {0.1: DECAYED, 0.0: NOT_DECAYED}
    # Authors' code: AdamW, betas (0.9, 0.999), eps 1e-8, no gradient clipping.
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    assert optim.grad_clip is None and optim.weight_decay == 0.1


def test_adamw_groups_of_the_real_tiny_model() -> None:
    model, _ = create_model("tiny-rn", seed=0)
    optim = OptimConfig()
    groups = _groups_by_name(
        model, make_optimizer(model, Regularizer(model, LossConfig(), optim), None, optim)
    )
    decayed, kept = groups[0.1], groups[0.0]
    assert {"visual.conv1.weight", "text_projection", "token_embedding.weight"} <= decayed
    assert {"visual.bn1.weight", "ln_final.bias", "logit_scale"} <= kept
    assert "visual.layer1.0.downsample.1.weight" in kept  # a norm, whatever its name
    assert not decayed & kept and len(decayed) + len(kept) == len(list(model.parameters()))


# Warmup 10 steps, 110 in all; multipliers computed by hand from the authors' schedule:
# warmup (s + 1) / 10, then 0.5 * (1 + cos(pi * (s - 10) / 100)).
SCHEDULE = {
    0: 0.1,  # the first step already has a non-zero rate
    9: 1.0,  # last warmup step
    10: 1.0,  # first cosine step, cos(0)
    60: 0.5,  # half-way through the cosine, cos(pi / 2)
    109: 2.4671981713e-4,  # last step, 0.5 * (1 + cos(0.99 pi))
}


def test_cosine_schedule_with_warmup_at_its_boundaries() -> None:
    model = _Toy()
    optim = OptimConfig(lr=2.0, warmup_steps=10)
    opt = make_optimizer(model, Regularizer(model, LossConfig(), optim), None, optim)
    sched = make_scheduler(opt, optim, total_steps=110)
    seen = {}
    for step in range(110):
        seen[step] = [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    for step, mult in SCHEDULE.items():
        assert seen[step] == pytest.approx([2.0 * mult] * 2, rel=1e-6, abs=1e-12), step


def test_no_warmup_starts_at_the_full_rate() -> None:
    model = _Toy()
    optim = OptimConfig(lr=1.0, warmup_steps=0)
    opt = make_optimizer(model, Regularizer(model, LossConfig(), optim), None, optim)
    make_scheduler(opt, optim, total_steps=4)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("start", "clamped"),
    [(7.0, 4.605170185988091), (4.7, 4.605170185988091), (2.5, 2.5), (-1.0, 0.0), (0.0, 0.0)],
)
def test_logit_scale_is_clamped_to_zero_and_ln_100(start: float, clamped: float) -> None:
    model = _Toy()
    with torch.no_grad():
        model.logit_scale.fill_(start)
    clamp_logit_scale(model)
    # ln 100 = 4.60517..., the authors' 4.6052
    assert float(model.logit_scale.detach()) == pytest.approx(clamped, abs=1e-6)


def test_a_reset_head_starts_with_fresh_adamw_moments() -> None:
    torch.manual_seed(0)
    encoder, head = nn.Linear(3, 4), nn.Linear(4, 2)
    opt = torch.optim.AdamW(
        [{"params": encoder.parameters()}, {"params": head.parameters(), "weight_decay": 0.0}],
        lr=0.1,
    )
    x = torch.randn(8, 3)
    for _ in range(3):
        opt.zero_grad()
        head(encoder(x)).square().mean().backward()
        opt.step()
    reset_optimizer_state(opt, head.parameters())
    assert all(p not in opt.state for p in head.parameters())
    assert all(opt.state[p]["step"] == 3 for p in encoder.parameters())
    opt.zero_grad()
    head(encoder(x)).square().mean().backward()
    grad = head.weight.grad.clone()
    opt.step()
    state = opt.state[head.weight]
    # A first AdamW step: m = (1 - beta1) g, v = (1 - beta2) g^2, step 1.
    assert float(state["step"]) == 1
    torch.testing.assert_close(state["exp_avg"], 0.1 * grad)
    torch.testing.assert_close(state["exp_avg_sq"], 0.001 * grad**2)
    assert all(float(opt.state[p]["step"]) == 4 for p in encoder.parameters())
