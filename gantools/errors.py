"""The one error type for mistakes a user can fix.

The CLI prints its message as a single line and exits with code 2, so the
message must say what to change: the flag, the file, the value expected.
"""


class GanToolsError(Exception):
    """A user-fixable problem: bad input, missing file, wrong option value."""


class GateFailed(Exception):
    """A quality gate did not pass (CLI exit code 1); carries the failed gates."""

    def __init__(self, failed):
        self.failed = list(failed)
        super().__init__("quality gate failed: " + ", ".join(self.failed))
