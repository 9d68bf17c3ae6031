"""The one gate for untrusted paths.

Papers, archives and datasets come from strangers, and every file they name (``\\input{..}``, an
archive member, a dataset's ``paper_path``) is a request to read the machine. Every loader asks
this module before it opens such a file, so the rule lives in one place: **only regular files under
the input's own root are read** — resolved, symlinks included. Absolute names, ``..`` that climbs
out, symlinks (of files or of folders) that point outside, devices, FIFOs and ``/proc`` tricks are
refused, and the caller skips them with a warning that names the command and the path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from ablationkit.errors import FormatError


class UnsafePathError(FormatError):
    """An input named a file outside its own root (or one that is not a regular file)."""


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with every symlink resolved, lies under ``root`` (resolved too)."""
    real_root = _real(root)
    real = _real(path)
    return real == real_root or real.is_relative_to(real_root)


def unsafe_name_reason(name: str) -> str | None:
    """Why a name written inside an input may not be followed at all, or None.

    Absolute names and drive letters are refused before any lookup: a paper's ``\\input`` is
    relative to its project, and ``/proc/self/cwd/.env`` must not even be probed.
    """
    if not name.strip():
        return "empty path"
    if "\x00" in name:
        return "NUL byte in path"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute():
        return "absolute path"
    if PureWindowsPath(name).drive or name.startswith("~"):
        return "absolute path"
    return None


def member_name_reason(name: str) -> str | None:
    """Why a name inside an archive may not be unpacked, or None.

    Stricter than :func:`unsafe_name_reason`: a member is *written*, so a ``..`` part (after
    either slash) is refused even when it would climb back inside; nothing is looked up.
    """
    reason = unsafe_name_reason(name)
    if reason:
        return reason
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' in path"
    return None


def climbs_out(root: Path, name: str, *, base: Path | None = None) -> bool:
    """Whether ``name``, looked up under ``base`` (default: ``root``), leaves ``root`` by its
    spelling alone (``..`` climbing out).

    Decided without touching the filesystem beyond ``root`` and ``base`` (both trusted): a name
    like ``../../home/x`` is refused before anything outside is probed. Symlinks inside are left
    to :func:`is_inside`; this check only ever refuses more.
    """
    real_root = _real(root)
    spelled = os.path.normpath(os.path.join(_real(base or root), name))
    return not Path(spelled).is_relative_to(real_root)


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file; :class:`UnsafePathError` if not.

    Opened without blocking and checked on the open descriptor, so a FIFO, a device or a file
    swapped for one after :func:`check_file` looked at it is refused instead of read (or waited
    on forever).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError("not a regular file; refused", where=path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_file(root: Path, candidate: Path) -> str | None:
    """Why ``candidate`` may not be read as a file of the input rooted at ``root``, or None.

    The reasons are short phrases for warnings: "outside the project", "not a regular file".
    """
    if not is_inside(root, candidate):
        return "outside its root"
    real = _real(candidate)
    if not real.exists():
        return "not found"
    if not real.is_file():
        return "not a regular file"
    return None


def resolve_file(root: Path, name: str, *, base: Path | None = None) -> tuple[Path | None, str]:
    """The file ``name`` (written inside the input) refers to, looked up under ``base`` (default:
    ``root``), if it is a regular file inside ``root``.

    Returns ``(path, "")`` when it may be read, else ``(None, reason)``; ``reason`` is "not found"
    when the name simply does not exist inside the root, so callers can keep their own
    missing-file wording.
    """
    reason = unsafe_name_reason(name)
    if reason:
        return None, reason
    if climbs_out(root, name, base=base):
        return None, "outside its root"
    candidate = (base or root) / name
    problem = check_file(root, candidate)
    if problem:
        return None, problem
    return _real(candidate), ""


def require_file(root: Path, name: str, *, base: Path | None = None, what: str = "path") -> Path:
    """Like :func:`resolve_file`, but raise :class:`UnsafePathError` naming ``what`` and
    ``name`` (used where skipping is not an option, e.g. a dataset row's ``paper_path``)."""
    path, reason = resolve_file(root, name, base=base)
    if path is None:
        raise UnsafePathError(f"{what} {name!r}: {reason}; refused", where=root)
    return path


def require_inside(root: Path, path: Path, *, what: str = "path") -> Path:
    """``path`` resolved, or :class:`UnsafePathError` if it leaves ``root``."""
    if not is_inside(root, path):
        raise UnsafePathError(f"{what} {str(path)!r}: outside its root; refused", where=root)
    return _real(path)


def iter_files(root: Path, pattern: str = "*") -> Iterator[Path]:
    """Regular files under ``root`` matching ``pattern`` (recursively), in sorted order, never
    leaving ``root``: symlinked folders are not descended into, symlinks pointing outside and
    special files are skipped, hidden folders and files are skipped."""
    real_root = _real(root)
    for path in sorted(root.rglob(pattern)):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if not is_inside(real_root, path):
            continue
        if path.is_file():
            yield path
