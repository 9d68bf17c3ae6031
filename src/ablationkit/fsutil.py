"""Atomic file writes: a crash or Ctrl-C never leaves a half-written plan behind."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def safe_name(text: str, default: str = "paper") -> str:
    """A file-name-safe id: runs of other characters become one underscore."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or default


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
