"""``load_paper``: any paper file (or LaTeX directory) in, a ``Paper`` with roles out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ablationkit.errors import FormatError
from ablationkit.papers.model import Paper
from ablationkit.sandbox import UnsafePathError, open_regular

MAX_TEXT_BYTES = 20 * 1024 * 1024
_TEXT_SUFFIXES = {".md", ".markdown", ".mmd", ".txt", ".text", ""}


def _sniff(path: Path) -> str:
    """The loader for a file, by its first bytes first and its extension second."""
    with open_regular(path) as handle:
        head = handle.read(4096)
    if head.lstrip().startswith(b"%PDF-"):
        return "pdf"
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "pdf"  # not a PDF inside: the PDF loader says so precisely
    if suffix in {".tex", ".ltx", ".latex"}:
        return "latex"
    if suffix in {".md", ".markdown", ".mmd"}:
        return "markdown"
    text = head.decode("utf-8", errors="ignore")
    if "\\documentclass" in text or "\\begin{document}" in text or "\\section{" in text:
        return "latex"
    if any(line.startswith("#") for line in text.splitlines()):
        return "markdown"
    return "text"


def _read_text(path: Path) -> str:
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_TEXT_BYTES:
            raise FormatError(f"{size} bytes, over the {MAX_TEXT_BYTES} byte limit", where=path)
        data = handle.read(MAX_TEXT_BYTES + 1)
    if b"\x00" in data[:8192]:
        raise FormatError("binary data, not a text paper", where=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})", where=path
        ) from None
    if not text.strip():
        raise FormatError("empty file (only whitespace)", where=path)
    return text


def load_paper(
    path: str | Path,
    *,
    method_section: Sequence[str] | str | None = None,
    ablation_section: Sequence[str] | str | None = None,
    strict: bool = False,
) -> Paper:
    """Load a paper from a LaTeX project (directory or main ``.tex``), PDF, markdown or text.

    Section roles are assigned; ``method_section`` / ``ablation_section`` name sections by
    number or title to override the guess.

    A directory is a LaTeX project rooted there; a file's project is its folder. A project reads
    only regular files under its root: an ``\\input`` that is missing or leads outside is
    skipped with a warning (``Paper.warnings``), or is an error with ``strict=True``. Only the
    file given is opened for PDF, markdown and text papers.
    """
    from ablationkit.papers.roles import assign_roles

    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or directory", where=path)
    if path.is_dir():
        from ablationkit.papers.latex import load_latex

        paper = load_latex(path, strict=strict)
    else:
        if not path.is_file():  # a FIFO or a device: reading it could block or never end
            raise FormatError("not a regular file", where=path)
        if path.stat().st_size == 0:
            raise FormatError("empty file", where=path)
        try:
            kind = _sniff(path)
        except UnsafePathError:  # swapped for a FIFO or a device since the check above
            raise FormatError("not a regular file", where=path) from None
        if kind == "pdf":
            from ablationkit.papers.pdf import load_pdf

            paper = load_pdf(path)
        elif kind == "latex":
            from ablationkit.papers.latex import load_latex

            paper = load_latex(path, strict=strict)
        else:
            from ablationkit.papers.markdown import load_markdown, load_text

            text = _read_text(path)
            loader = load_markdown if kind == "markdown" else load_text
            paper = loader(text, source=str(path))
    if not any(s.text.strip() for s in paper.walk()) and not paper.abstract:
        raise FormatError("no text found in the paper", where=path)
    return assign_roles(paper, method=method_section, ablation=ablation_section)
