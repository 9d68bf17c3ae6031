"""What a browser may send us: file names with no path tricks, bodies under a size limit, and
archives (arXiv-style LaTeX sources) that unpack only inside their own folder."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from ablationkit.errors import AblationKitError

PAPER_SUFFIXES = (".pdf", ".tex", ".md", ".markdown", ".txt")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
MAX_ARCHIVE_FILES = 2000


class UploadRejected(AblationKitError):
    """The upload is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or ``UploadRejected`` (413) as soon as it passes ``limit`` bytes."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise UploadRejected(f"upload larger than the {limit // (1024 * 1024)} MB limit", 413)
    if not data.strip():
        raise UploadRejected("the upload is empty")
    return bytes(data)


def _member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or PureWindowsPath(name).drive or ".." in path.parts:
        raise UploadRejected(f"archive member {name!r} points outside the archive")
    return path


def unpack(archive: Path, dest: Path, *, max_bytes: int) -> Path:
    """Unpack a LaTeX source archive into ``dest``; members that would land outside it,
    links, devices, and archives that inflate beyond ``max_bytes`` are refused."""
    total = 0
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                members = bundle.infolist()
                if len(members) > MAX_ARCHIVE_FILES:
                    raise UploadRejected(f"archive has over {MAX_ARCHIVE_FILES} files")
                for member in members:
                    target = dest / _member_path(member.filename)
                    total += member.file_size
                    if total > max_bytes:
                        raise UploadRejected("archive unpacks to more than the upload limit", 413)
                    if member.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(member) as source, target.open("wb") as sink:
                        sink.write(source.read())
        else:
            with tarfile.open(archive) as bundle:
                members = bundle.getmembers()
                if len(members) > MAX_ARCHIVE_FILES:
                    raise UploadRejected(f"archive has over {MAX_ARCHIVE_FILES} files")
                for member in members:
                    _member_path(member.name)
                    if not (member.isfile() or member.isdir()):
                        raise UploadRejected(f"archive member {member.name!r} is a link or device")
                    total += member.size
                    if total > max_bytes:
                        raise UploadRejected("archive unpacks to more than the upload limit", 413)
                if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: the stdlib checks again
                    bundle.extractall(dest, filter="data")
                else:  # every member was checked above: plain files and folders inside
                    bundle.extractall(dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise UploadRejected(f"not a readable archive ({exc})") from None
    tex_files = sorted(dest.rglob("*.tex"))
    if not tex_files:
        raise UploadRejected("the archive holds no .tex file")
    # the folder holding the main file: load_paper finds \documentclass itself
    roots = sorted({p.parent for p in tex_files}, key=lambda p: len(p.parts))
    return roots[0]


def materialise(name: str, data: bytes, workdir: Path, *, max_bytes: int) -> Path:
    """Write an accepted upload into ``workdir``; the path ``load_paper`` should read."""
    name = safe_filename(name)
    path = workdir / name
    path.write_bytes(data)
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        source = workdir / "source"
        source.mkdir()
        return unpack(path, source, max_bytes=max_bytes)
    return path
