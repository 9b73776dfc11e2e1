"""trainers: everything that runs inside one trial, as pure PyTorch (no Ray, no sweeps).

Entry points take `(config, reporter)` and return a `TrialOutcome`:

    from trainers import ENTRYPOINTS, ListReporter
    outcome = ENTRYPOINTS["clean"](config, reporter := ListReporter())

Attributes are imported lazily so that `import trainers.errors` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ENTRYPOINTS",
    "EpochRecord",
    "ListReporter",
    "Reporter",
    "TrialConfig",
    "TrialOutcome",
    "clean",
    "load_config",
    "pretrain",
    "screen",
]

_HOMES = {
    "ENTRYPOINTS": "trainers.entries",
    "clean": "trainers.entries",
    "pretrain": "trainers.entries",
    "screen": "trainers.entries",
    "EpochRecord": "trainers.reporter",
    "ListReporter": "trainers.reporter",
    "Reporter": "trainers.reporter",
    "TrialOutcome": "trainers.reporter",
    "TrialConfig": "trainers.config",
    "load_config": "trainers.config",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
