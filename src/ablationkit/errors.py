"""One exception hierarchy, so the CLI can turn any failure into a one-line message.

Every error knows *where* it happened (a file, a line, a model) because a user running a
350-paper batch needs to find the one bad input without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class AblationKitError(Exception):
    """Base class: the message is complete and user-facing; ``where`` names the input."""

    exit_code: int = 1

    def __init__(self, message: str, *, where: str | Path | None = None) -> None:
        self.message = message
        self.where = str(where) if where is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{self.where}: {text}" if self.where else text


def describe_validation(error: Any, prefix: str = "") -> str:
    """The first problem of a pydantic ``ValidationError`` as ``<prefix><field.path>: <msg>``."""
    problem = error.errors()[0]
    loc = ".".join(str(p) for p in problem["loc"])
    where = f"{prefix}{loc}" if loc else prefix.rstrip(". ")
    message = problem["msg"]
    if problem.get("type") == "value_error" and "error" in (problem.get("ctx") or {}):
        message = str(problem["ctx"]["error"])  # our validator's words, without "Value error, "
    return f"{where}: {message}" if where else message


class FormatError(AblationKitError):
    """An input file is not in a format we can read (or is broken inside that format)."""

    exit_code = 2


class TrajectoryFormatError(FormatError):
    """A trajectory markdown file deviates from the format; the message says how and where."""
