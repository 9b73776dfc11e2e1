"""sweeper: staged Ray Tune sweeps of CLIP backdoor-cleaning trials.

From Python: `sweeper.launch(path, overrides=..., store=...)` runs a search space and
returns its sweep id; `sweeper.export(store, sweep, out)` writes a model open_clip loads
(`sweeper.api`). Both load on first use, so `import sweeper` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["export", "launch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sweeper import api

        return getattr(api, name)
    raise AttributeError(f"module 'sweeper' has no attribute {name!r}")
