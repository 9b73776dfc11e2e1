"""Shared fixtures: one synthetic dataset and the trained models every trainer test reuses.

Training the tiny model takes seconds, not minutes, but several tests need the same poisoned
model, so it is trained once per session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from trainers.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(
        root / "data", n_train=3000, n_clean=600, n_eval_per_class=20, image_size=32, seed=0
    )


def base_config(synthetic: Any, tmp: Path, **over: Any) -> dict[str, Any]:
    """A pre-training config on the synthetic set; `over` replaces whole sections."""
    cfg: dict[str, Any] = {
        "data": {
            "train": str(synthetic.train),
            "eval": str(synthetic.eval),
            "batch_size": 64,
        },
        "model": {"name": "tiny-rn"},
        "poison": {"kind": "badnet", "amount": 0.05, "seed": 0, "patch_size": 8},
        "optim": {"lr": 2e-3, "epochs": 6, "warmup_steps": 20},
        "loss": {"mmcl_weight": 1.0, "ssl_weight": 0.0},
        "checkpoint_dir": str(tmp),
        "save": "every",
        "seed": 0,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="session")
def poisoned(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny model pre-trained with a 5% BadNet poison: (records, outcome, config)."""
    from trainers import ListReporter, pretrain

    tmp = tmp_path_factory.mktemp("poisoned")
    cfg = base_config(synthetic, tmp)
    rep = ListReporter()
    outcome = pretrain(cfg, rep)
    return rep.records, outcome, cfg
