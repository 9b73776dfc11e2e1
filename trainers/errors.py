"""The trainers' errors. Each message names the file, field or path and how to fix it.

The package boundaries (DESIGN.md) keep `trainers` from importing `sweeper`, so this base is
the trainers' root; the CLI treats `TrainerError`, `results.errors.ResultsError` and
`sweeper.errors.SweeperError` alike: a clear message and a nonzero exit.
"""


class TrainerError(Exception):
    """Base of every error the trainers raise on purpose."""


class ConfigError(TrainerError):
    """A trial config that does not validate."""


class DataError(TrainerError):
    """Missing, empty or unreadable training or evaluation data."""


class ModelError(TrainerError):
    """An unknown model name or an unusable model config."""


class CheckpointError(TrainerError):
    """A checkpoint that is missing, corrupt, or of another architecture."""
