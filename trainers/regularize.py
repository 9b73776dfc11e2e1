"""Heavy regularisation (Zhu et al. 2023) as decoupled L2 decay.

The paper's code implements its "L2 weight" as AdamW weight decay, a pull toward zero. L2-SP
pulls toward the starting weights instead. Both are applied the same decoupled way,
theta <- theta - lr * w * (theta - target), so a weight means the same in either mode; the
value logged as `loss_reg` is 0.5 * w * ||theta - target||^2 over the decayed weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainers.config import LossConfig, OptimConfig
from trainers.losses import l2_penalty
from trainers.models import decay_groups


class Regularizer:
    def __init__(self, model: nn.Module, loss: LossConfig, optim: OptimConfig) -> None:
        self.weight = loss.l2_weight
        self.target = loss.l2_target
        self._groups = decay_groups(model, 0.0)
        self._decayed: list[Tensor] = self._groups[0]["params"]
        self._start: list[Tensor] | None = None
        if self.weight > 0 and self.target == "start":
            self._start = [p.detach().clone() for p in self._decayed]
            adamw_decay = 0.0
        elif self.weight > 0:
            adamw_decay = self.weight
        else:
            adamw_decay = optim.weight_decay
        self._groups[0]["weight_decay"] = adamw_decay

    def param_groups(self) -> list[dict]:
        return [dict(g) for g in self._groups]

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        if self._start is not None:
            # theta <- theta - lr * w * (theta - theta_0), the L2-SP pull toward the start.
            diff = torch._foreach_sub(self._decayed, self._start)
            torch._foreach_add_(self._decayed, diff, alpha=-lr * self.weight)

    def value(self) -> float | None:
        if self.weight == 0:
            return None
        return float(self.weight * l2_penalty(self._decayed, self._start))
