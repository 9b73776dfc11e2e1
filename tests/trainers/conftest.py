"""The trainers' poisoned model: the shared recipe (tests/conftest.py) with a 12 px patch.

The authors' BadNet patch (image mean + standard-normal noise, wrapped to 8 bits) is
near-uniform noise; on the 32 px synthetic images the tiny model learns an 8 px one only
erratically (ASR 5% after the 6 epochs here, 90% after 12), a 12 px one reliably (93%).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import base_config

PATCH = 12
POISON = {"kind": "badnet", "amount": 0.05, "seed": 0, "patch_size": PATCH}


@pytest.fixture(scope="session")
def poisoned(synthetic: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny model pre-trained with a 5% BadNet poison: (records, outcome, config)."""
    from trainers import ListReporter, pretrain

    cfg = base_config(synthetic, tmp_path_factory.mktemp("poisoned"), poison=POISON)
    rep = ListReporter()
    outcome = pretrain(cfg, rep)
    return rep.records, outcome, cfg
