"""`check_sweep`: every damaged file of a sweep's store, found by reading each one whole.

The store's reader stops at the first part it cannot read; this lists them all, so a user
sees the whole damage at once before deciding what to move away or restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from results.errors import ResultsError
from results.parts import list_parts, read_part
from results.schema import EPOCH_COLUMNS, TRIAL_COLUMNS


@dataclass(frozen=True)
class Damage:
    path: Path
    problem: str


def check_parts(sweep_dir: str | Path) -> list[Damage]:
    """Each epochs/trials part file of the sweep that does not read as a whole, valid part."""
    sweep_dir = Path(sweep_dir)
    found = []
    for kind, columns in (("epochs", EPOCH_COLUMNS), ("trials", TRIAL_COLUMNS)):
        for part in list_parts(sweep_dir / kind):
            try:
                read_part(part, columns)
            except FileNotFoundError:
                continue  # merged away by a compaction meanwhile: its rows are elsewhere
            except ResultsError as err:
                found.append(Damage(part, str(err)))
    return found
