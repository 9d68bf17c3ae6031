"""What a browser may send us: file names with no path tricks, bodies under a size limit that
go to disk as they arrive, and archives (arXiv-style LaTeX sources) that unpack only inside
their own folder.

Archives are read as streams and every byte that comes out of them is counted: the sizes in
member headers are checked first (so a 10 GiB member is refused before it is inflated) but never
trusted alone. The caps are the total size, the number of members and how much the archive
expands (``MAX_RATIO``); every member name goes through ``ablationkit.sandbox``, and only plain
files and folders are written. All of this is blocking work: the server runs it in a thread.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from ablationkit.errors import AblationKitError
from ablationkit.sandbox import UnsafePathError, iter_files, member_name_reason, require_inside

PAPER_SUFFIXES = (".pdf", ".tex", ".md", ".markdown", ".txt")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
MAX_ARCHIVE_FILES = 2000
MAX_RATIO = 100  # bytes out per byte in, once past RATIO_FREE: LaTeX sources gzip ~5:1
RATIO_FREE = 1 << 20
HEADER_ALLOWANCE = 4 << 20  # tar headers and padding, on top of the members' own bytes
MAX_ZIP_DIRECTORY = MAX_ARCHIVE_FILES * 2048  # a zip's central directory is read into memory
CHUNK = 1 << 16
Readable = io.BufferedIOBase | IO[bytes]  # a file, or a gzip/bz2/xz stream over one


class RequestRefused(AblationKitError):
    """The request is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UploadRejected(RequestRefused):
    """The upload is refused (bad name, too large, an unsafe or unreadable archive)."""


def safe_filename(name: str) -> str:
    """The name itself when it is a plain file name we can read, else ``UploadRejected``.

    No directories (either slash), no ``..``, no hidden or device-like names, no control
    characters: the name is only ever used inside a fresh temporary folder, but a name that
    tries to leave it is refused rather than quietly cleaned.
    """
    if not name or len(name) > 200:
        raise UploadRejected("file name missing or longer than 200 characters")
    if any(ord(c) < 32 or c in '/\\:*?"<>|' for c in name) or name in {".", ".."}:
        raise UploadRejected(f"file name {name!r} has a path or control characters in it")
    if name.startswith(".") or ".." in name:
        raise UploadRejected(f"file name {name!r} is hidden or contains '..'")
    lower = name.lower()
    if not lower.endswith(PAPER_SUFFIXES + ARCHIVE_SUFFIXES):
        allowed = ", ".join(PAPER_SUFFIXES + ARCHIVE_SUFFIXES)
        raise UploadRejected(f"file {name!r} is not a paper this app reads ({allowed})", 415)
    return name


def _too_large(limit: int) -> UploadRejected:
    return UploadRejected(f"upload larger than the {limit // (1024 * 1024)} MB limit", 413)


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or ``UploadRejected`` (413) as soon as it passes ``limit`` bytes (for
    small bodies only: uploads go to disk with :func:`receive_to_file`)."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise _too_large(limit)
    if not data.strip():
        raise UploadRejected("the upload is empty")
    return bytes(data)


async def receive_to_file(chunks: AsyncIterator[bytes], path: Path, limit: int) -> int:
    """Write the body to ``path`` as it arrives and return its size; ``UploadRejected`` (413)
    as soon as it passes ``limit`` bytes, or (400) if it is empty or only whitespace.

    Memory stays at one chunk whatever the upload's size; each write is a buffered append to a
    local file, cheap enough to do on the event loop.
    """
    size = 0
    content = False
    with path.open("wb") as sink:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            content = content or bool(chunk.strip())
            sink.write(chunk)
            sink.flush()
    if not content:
        raise UploadRejected("the upload is empty")
    return size


class _Budget:
    """What an archive may still produce: ``limit`` bytes in all, and no more than
    ``MAX_RATIO`` times the archive's own size once past ``RATIO_FREE``."""

    def __init__(self, archive_size: int, limit: int) -> None:
        self.archive_size = max(archive_size, 1)
        self.limit = limit
        self.used = 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise UploadRejected("archive unpacks to more than the upload limit", 413)
        if self.used > RATIO_FREE and self.used > MAX_RATIO * self.archive_size:
            raise UploadRejected(
                f"archive expands more than {MAX_RATIO}-fold (a compression bomb?)", 413
            )


class _CountedReader:
    """A read-only stream that charges every byte it hands out to a ``_Budget``."""

    def __init__(self, raw: Readable, budget: _Budget) -> None:
        self.raw = raw
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(CHUNK if size is None or size < 0 else size)
        self.budget.spend(len(data))
        return data


def _decompressed(handle: IO[bytes]) -> Readable:
    """The archive's bytes with gzip, bzip2 or xz taken off (sniffed, not from the name)."""
    magic = handle.read(6)
    handle.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=handle)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(handle)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(handle)
    return handle


def _target(dest: Path, name: str) -> Path:
    """Where member ``name`` goes: through the sandbox's gate, or ``UploadRejected``."""
    reason = member_name_reason(name)
    if reason in {"absolute path", "'..' in path"}:
        raise UploadRejected(f"archive member {name!r} points outside the archive ({reason})")
    if reason:
        raise UploadRejected(f"archive member {name!r} refused: {reason}")
    try:
        return require_inside(dest, dest / name.replace("\\", "/"), what="archive member")
    except UnsafePathError:
        raise UploadRejected(f"archive member {name!r} points outside the archive") from None


def _copy(source: Readable, target: Path, budget: _Budget) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as sink:
        while chunk := source.read(CHUNK):
            budget.spend(len(chunk))
            sink.write(chunk)


def _unpack_tar(archive: Path, dest: Path, max_bytes: int) -> None:
    size = archive.stat().st_size
    stream_budget = _Budget(size, max_bytes + HEADER_ALLOWANCE)  # every byte inflated
    file_budget = _Budget(size, max_bytes)  # the bytes written
    declared = 0
    with archive.open("rb") as handle, _decompressed(handle) as plain:
        counted: Any = _CountedReader(plain, stream_budget)
        with tarfile.open(fileobj=counted, mode="r|") as bundle:
            for number, member in enumerate(bundle, 1):
                if number > MAX_ARCHIVE_FILES:
                    raise UploadRejected(f"archive has over {MAX_ARCHIVE_FILES} files")
                target = _target(dest, member.name)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise UploadRejected(f"archive member {member.name!r} is a link or device")
                if member.issparse():
                    raise UploadRejected(f"archive member {member.name!r} is a sparse file")
                declared += member.size
                if declared > max_bytes:  # refused before its bytes are inflated
                    raise UploadRejected("archive unpacks to more than the upload limit", 413)
                source = bundle.extractfile(member)
                if source is None:
                    raise UploadRejected(f"archive member {member.name!r} is a link or device")
                _copy(source, target, file_budget)


def _zip_directory_size(archive: Path) -> int:
    """The size of a zip's central directory from its end record, before ``zipfile`` reads it
    all into memory; ZIP64 archives (which a LaTeX source never needs) are refused."""
    with archive.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - (22 + 65535 + 20)))
        tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        raise UploadRejected("not a readable archive (no zip end record)")
    count, directory = struct.unpack("<HI", tail[end + 10 : end + 16])
    locator = tail[max(0, end - 20) : end][:4] == b"PK\x06\x07"
    if locator or count == 0xFFFF or directory == 0xFFFFFFFF:
        raise UploadRejected("ZIP64 archives are not accepted")
    if count > MAX_ARCHIVE_FILES:
        raise UploadRejected(f"archive has over {MAX_ARCHIVE_FILES} files")
    return int(directory)


def _unpack_zip(archive: Path, dest: Path, max_bytes: int) -> None:
    size = archive.stat().st_size
    if _zip_directory_size(archive) > MAX_ZIP_DIRECTORY:
        raise UploadRejected(f"archive has over {MAX_ARCHIVE_FILES} files")
    budget = _Budget(size, max_bytes)
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        if len(members) > MAX_ARCHIVE_FILES:
            raise UploadRejected(f"archive has over {MAX_ARCHIVE_FILES} files")
        if sum(m.file_size for m in members) > max_bytes:  # refused before anything inflates
            raise UploadRejected("archive unpacks to more than the upload limit", 413)
        # Each member's bytes must end before the next member starts: entries that share
        # bytes are how quadratic zip bombs multiply one compressed block.
        ordered = sorted(members, key=lambda m: m.header_offset)
        for before, after in zip(ordered, [*ordered[1:], None], strict=True):
            end = before.header_offset + before.compress_size
            limit = after.header_offset if after is not None else size
            if end > limit or (after is not None and after.header_offset <= before.header_offset):
                raise UploadRejected(f"archive has overlapping entries ({before.filename!r})")
        for member in members:
            target = _target(dest, member.filename)
            kind = stat.S_IFMT(member.external_attr >> 16)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif kind and kind != stat.S_IFREG:
                raise UploadRejected(f"archive member {member.filename!r} is a link or device")
            else:
                with bundle.open(member) as source:
                    _copy(source, target, budget)


def unpack(archive: Path, dest: Path, *, max_bytes: int) -> Path:
    """Unpack a LaTeX source archive into ``dest`` and return the folder holding its main file.

    Members that would land outside ``dest``, links, devices, archives that inflate beyond
    ``max_bytes`` or ``MAX_RATIO`` times their size, or hold over ``MAX_ARCHIVE_FILES``
    members are refused (``UploadRejected``); what was written by then stays in ``dest``,
    which the caller deletes.
    """
    try:
        if archive.name.lower().endswith(".zip"):
            _unpack_zip(archive, dest, max_bytes)
        else:
            _unpack_tar(archive, dest, max_bytes)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise UploadRejected(f"not a readable archive ({exc})") from None
    except (lzma.LZMAError, RuntimeError, NotImplementedError, ValueError) as exc:
        # encrypted or unsupported zip members, corrupt xz streams
        raise UploadRejected(f"not a readable archive ({exc})") from None
    tex_files = list(iter_files(dest, "*.tex"))
    if not tex_files:
        raise UploadRejected("the archive holds no .tex file")
    # the folder holding the main file: load_paper finds \documentclass itself
    roots = sorted({p.parent for p in tex_files}, key=lambda p: len(p.parts))
    return roots[0]


def open_upload(path: Path, workdir: Path, *, max_bytes: int) -> Path:
    """The path ``load_paper`` should read for an upload saved at ``path``: the file itself, or
    for an archive the folder it unpacked to (``workdir / "source"``). Blocking: run it in a
    thread."""
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        source = workdir / "source"
        source.mkdir()
        return unpack(path, source, max_bytes=max_bytes)
    return path


def materialise(name: str, data: bytes, workdir: Path, *, max_bytes: int) -> Path:
    """Write an accepted upload held in memory into ``workdir``; the path ``load_paper`` should
    read (the server streams to disk instead, see :func:`receive_to_file`)."""
    name = safe_filename(name)
    path = workdir / name
    path.write_bytes(data)
    return open_upload(path, workdir, max_bytes=max_bytes)
