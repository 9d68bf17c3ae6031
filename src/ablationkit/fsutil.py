"""Files we write and files we read back: atomic writes (a crash or Ctrl-C never leaves a
half-written plan behind), JSON parsing with a nesting limit, and setting a damaged file aside
instead of deleting it or tripping over it."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

# Real inputs nest a few levels (a plan: object > list > ablation > replacement); 100 is far
# more than any of them and far below the ~1000 at which json and pydantic run out of stack.
MAX_JSON_DEPTH = 100


class DamagedFileWarning(UserWarning):
    """A file that did not validate was set aside; the message is one line naming it, the
    problem and where it went (the CLI prints it as ``warning: ...``)."""


def safe_name(text: str, default: str = "paper") -> str:
    """A file-name-safe id: runs of other characters become one underscore.

    Not injective (``a b`` and ``a_b`` give the same name): fine for a single output file the
    user named, never for a set of files keyed by id (runs use ``bench.runfiles.file_stem``).
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or default


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers in ``value`` nest deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def load_json(text: str | bytes) -> Any:
    """``json.loads``, but nesting deeper than ``MAX_JSON_DEPTH`` is a ``JSONDecodeError``.

    Why: ``json.loads`` raises ``RecursionError`` (not a ``ValueError``) at ~1000 levels, and a
    value just below that passes here only to blow the stack of the next recursive step (the
    schema's validators, ``json.dumps``). Callers already handle ``JSONDecodeError``.
    """
    doc = text.decode("utf-8") if isinstance(text, bytes) else text
    try:
        value = json.loads(doc)
    except RecursionError:
        value = None
        too_deep = True
    else:
        too_deep = _depth_exceeds(value, MAX_JSON_DEPTH)
    if too_deep:
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
    return value


def set_aside(path: Path, problem: str, then: str = "") -> Path:
    """Rename a damaged ``path`` to ``<name>.corrupt-<UTC time>`` beside it, and warn in one
    line: the file, ``problem``, where it went and ``then`` (what happens next).

    The bytes are kept (a user may want them back, and nothing we cannot read is ever deleted);
    the original name is free again so the file can be rebuilt.
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 2
    while target.exists() or target.is_symlink():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    message = f"{path}: {problem}; set aside as {target.name}" + (f"; {then}" if then else "")
    warnings.warn(DamagedFileWarning(" ".join(message.split())), stacklevel=2)
    return target


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once (this runs before any
    # thread of ours writes files, and the value is the same before and after).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync it, then rename over ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give (the user's umask), not the
    0600 of the temporary file: plans and sites are meant to be shared and served.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
