"""The reference planner's view of a paper: its source files, unparsed, each in a ``<file>`` tag.

AblationBench gives the model every ``*.tex``, ``*.text``, ``*.bib``, ``*.bbl`` and ``*.md`` file
of the paper's folder (and, through a pattern without its ``*``, only files named exactly
``.txt``), pattern by pattern, recursively. We reproduce that list, in sorted order within each
pattern (the reference takes the file system's order, which is not reproducible), and read only
regular files inside the folder: a symlink pointing elsewhere is skipped with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ablationkit.errors import FormatError
from ablationkit.sandbox import is_inside

SOURCE_PATTERNS = ("*.tex", "*.text", ".txt", "*.bib", "*.bbl", "*.md")
MAX_SOURCE_BYTES = 20 * 1024 * 1024


@dataclass
class RawSource:
    """The concatenated ``<file name="...">`` blocks, the files they came from, and warnings."""

    text: str
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def raw_source(folder: str | Path) -> RawSource:
    """The reference's ``paper_source`` text for the paper folder ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise FormatError("the raw source view needs the paper's folder", where=root)
    parts: list[str] = []
    files: list[str] = []
    warnings: list[str] = []
    total = 0
    for pattern in SOURCE_PATTERNS:
        for path in sorted(root.rglob(pattern)):
            rel = path.relative_to(root).as_posix()
            if not is_inside(root, path) or not path.is_file():
                warnings.append(f"{rel}: outside the paper's folder or not a regular file; skipped")
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_SOURCE_BYTES:
                raise FormatError(f"source files over {MAX_SOURCE_BYTES} bytes", where=root)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormatError(f"not UTF-8 (byte offset {exc.start})", where=path) from None
            parts.append(f'<file name="{rel}">\n{text}\n</file>\n')
            files.append(rel)
    if not files:
        raise FormatError(
            "no source file (" + ", ".join(SOURCE_PATTERNS) + ") in the folder", where=root
        )
    return RawSource(text="".join(parts), files=files, warnings=warnings)
