"""The sweeper's errors. Messages name the file, field or path and the fix."""


class SweeperError(Exception):
    """Base of every error the sweeper raises on purpose; the CLI exits with `exit_code`
    (2: bad input or a damaged store, unless a subclass says otherwise)."""

    exit_code = 2


class SweepFailed(SweeperError):
    """The sweep ran, but a trial it needed failed: exit 1."""

    exit_code = 1


class SpecError(SweeperError):
    """A search space that does not validate (every problem in one message)."""


class ClusterError(SweeperError):
    """A Ray cluster that cannot be reached or cannot satisfy a request."""


class SweepNotFound(SweeperError):
    """A sweep id or path that is not in the store."""


class ExportError(SweeperError):
    """A model that `sweeper export` cannot take out of the store (unknown trial or epoch,
    no kept checkpoint, an --out folder in the way)."""
