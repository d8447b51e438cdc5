"""The small exception hierarchy of llmscale.

Every module raises one of these (third-party errors are wrapped, with the cause
chained) so that callers can tell a user's mistake from a transient failure.
"""

from __future__ import annotations


class LLMScaleError(Exception):
    """Base class of every error llmscale raises on purpose."""


class UserInputError(LLMScaleError):
    """Bad input from a user: a CLI flag, a file, a spec field.

    The message is one line that names the field (or file and line) and the
    offending value, and says what was expected. The CLI prints it without a
    traceback and exits with status 2.
    """


class TraceFormatError(UserInputError):
    """A trace file that cannot be read: names the file, the line and the problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class TransientError(LLMScaleError):
    """A failure that may go away on retry (Prometheus down, API server busy)."""


class MetricsUnavailableError(TransientError):
    """Prometheus could not be queried, or answered with nothing usable."""


class EnvironmentSetupError(LLMScaleError):
    """The local environment cannot do what was asked (missing tool, port in use, failed build)."""
