"""A paper's id: its slug, the name plans are saved under (``<paper_id>.<mode>.json``).

Why not the main file's stem: most LaTeX projects call it ``main.tex`` (or ``paper.tex``,
``ms.tex``, ``main_v2.tex`` …), so every such plan was ``main`` and overwrote the last one. The
id is the project's ``meta.json`` slug, else the project folder's name, else a slug of the
paper's title; a file's own stem only when it names something. Ids already stored (in runs,
dataset rows) are never re-derived: this applies only where no id was given.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from contextlib import suppress
from functools import cache
from pathlib import Path

from ablationkit.fsutil import load_json, safe_name
from ablationkit.sandbox import UnsafePathError, check_file, open_regular

__all__ = ["is_generic_name", "paper_id_for", "title_slug"]

# Words that name a document's role, not the paper: a stem made only of these (and versions)
# says nothing about which paper it is.
_GENERIC_WORDS = (
    "main paper ms manuscript article root index document doc arxiv submission full text "
    "source draft final camera ready cameraready cr preprint rev revised revision version "
    "accepted clean anon anonymous anonymized latest new old copy conference journal template "
    "body thesis"
).split()
# Folders inside a paper's project that hold its files without naming it: climbed through.
_WRAPPER_FOLDERS = frozenset("source sources src latex tex paper files content".split())
# Folders that hold anyone's files: the search for a project name stops there.
_COLLECTION_FOLDERS = frozenset(
    "papers downloads download desktop documents doc docs tmp temp inbox home".split()
)
_GENERIC_TOKEN = re.compile(rf"(?:{'|'.join(_GENERIC_WORDS)})(?:v?\d+)?|v?\d+")
_NUMBER = re.compile(r"v?\d+")
_LATEX_MAIN_SUFFIXES = frozenset({".tex", ".ltx", ".latex"})
_MAX_FOLDERS_UP = 3  # project/source/latex/main.tex at most
_MAX_META_BYTES = 1 << 20
SLUG_LENGTH = 60


def is_generic_name(name: str, *, folder: bool = False) -> bool:
    """Whether a file stem (``main``, ``main_v2``, ``paper-final``, ``main (1)``) or, with
    ``folder``, a folder name (``source``, ``latex``, ``Downloads``) names no paper.

    Numbers alone are not generic (``2403.12345v2`` is an arXiv id): a generic stem has at
    least one generic word."""
    lowered = name.lower()
    if folder and lowered in _WRAPPER_FOLDERS | _COLLECTION_FOLDERS:
        return True
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if t]
    return (
        bool(tokens)
        and all(_GENERIC_TOKEN.fullmatch(t) for t in tokens)
        and not all(_NUMBER.fullmatch(t) for t in tokens)
    )


def title_slug(title: str, limit: int = SLUG_LENGTH) -> str:
    """``KESTREL: Keyframe Selection …`` -> ``kestrel-keyframe-selection-…``: lowercase ASCII
    words joined by ``-``, cut at a word boundary within ``limit`` characters; ``""`` for no
    usable title (empty, ``(untitled)``, no letters); ``$\\beta$`` gives ``beta``."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    if not any(re.search("[a-z]", w) for w in words) or words == ["untitled"]:
        return ""
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or words[0][:limit]


def _meta_slug(folder: Path) -> str | None:
    """The ``slug`` of ``folder/meta.json`` (the shared papers' layout), if it has one."""
    meta = folder / "meta.json"
    # A stranger's project: a meta.json symlinked outside its folder (or a FIFO) is not read.
    if check_file(folder, meta) is not None:
        return None
    try:
        with open_regular(meta) as handle:
            raw = handle.read(_MAX_META_BYTES + 1)
        if len(raw) > _MAX_META_BYTES:
            return None
        data = load_json(raw)
    except (ValueError, OSError, UnsafePathError):
        return None
    slug = data.get("slug") if isinstance(data, dict) else None
    return slug.strip() if isinstance(slug, str) and slug.strip() else None


@cache
def _shared_folders() -> frozenset[Path]:
    """The home and temporary folders (resolved): their names never name a paper."""
    folders = {Path(tempfile.gettempdir()).resolve()}
    with suppress(RuntimeError, OSError):  # no home directory (a bare container)
        folders.add(Path.home().resolve())
    return frozenset(folders)


def _anonymous(folder: Path, within: Path | None) -> bool:
    """A folder whose name is nobody's choice for this paper: the filesystem root, the home
    or temporary folder, a collection (``Downloads``, ``papers``), or ``within`` and above
    (the app's upload folder)."""
    if folder == folder.parent or folder in _shared_folders():
        return True
    if folder.name.lower() in _COLLECTION_FOLDERS:
        return True
    return within is not None and (folder == within or folder in within.parents)


def _project(folder: Path, within: Path | None) -> tuple[str | None, str | None]:
    """``(meta slug, folder name)`` of the project holding ``folder``: generic folders
    (``source``, ``latex``) are climbed through, a few at most."""
    for _ in range(_MAX_FOLDERS_UP + 1):
        if _anonymous(folder, within):
            return None, None
        slug = _meta_slug(folder)
        if slug is not None:
            return slug, None
        if not is_generic_name(folder.name, folder=True):
            return None, folder.name
        folder = folder.parent
    return None, None


def paper_id_for(path: Path, title: str | None = None, *, within: Path | None = None) -> str:
    """A file-name-safe id for the paper at ``path`` (a folder or its main file).

    In order: a ``meta.json`` slug (in the paper's folder, or above it through generic
    folders like ``source/``); for a folder, its name (generic ones climbed through); for a
    file with a telling stem (``kestrel.pdf``, ``2403.12345v2.pdf``), the stem; for a generic
    stem (``main``, ``paper``, ``main_v2`` …): a LaTeX main file's project folder, else the
    ``title`` slug; any other file (PDF, markdown: its folder is often ``Downloads``) the
    title slug, else its folder. ``title`` is the loaded paper's; folders at or above
    ``within`` (a temporary upload folder) name nothing.
    """
    path = Path(path).resolve()
    within = Path(within).resolve() if within is not None else None
    folder = path if path.is_dir() else path.parent
    slug, folder_name = _project(folder, within)
    if slug is not None:
        return safe_name(slug)
    from_title = title_slug(title or "")
    if path.is_dir():
        return safe_name(folder_name or from_title or path.name)
    if not is_generic_name(path.stem):
        return safe_name(path.stem)
    if path.suffix.lower() in _LATEX_MAIN_SUFFIXES:
        return safe_name(folder_name or from_title or path.stem)
    return safe_name(from_title or folder_name or path.stem)
