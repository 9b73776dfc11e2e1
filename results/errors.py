"""The results package's errors. Each message names the path, column or value and the fix.

`results` imports nothing from `sweeper` or `trainers` (shared/DESIGN.md), so this is its own
root; the CLI treats `ResultsError` like the other packages' bases: a message and exit code 2.
"""


class ResultsError(Exception):
    """Base of every error the results package raises on purpose."""


class StoreError(ResultsError):
    """A store path, sweep or part file that is missing, empty or unreadable."""


class DamagedPart(StoreError):
    """A part file that is not a whole Parquet file: never read as an empty or missing one."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class SchemaError(ResultsError):
    """Rows or part files whose columns or types break the store's schema."""


class AnalysisError(ResultsError):
    """An analysis asked of data that cannot answer it (unknown group column, bad threshold)."""
