"""``load_paper``: any paper file (or LaTeX directory) in, a ``Paper`` with roles out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ablationkit.errors import FormatError
from ablationkit.papers.model import Paper
from ablationkit.sandbox import UnsafePathError, iter_files, open_regular

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


_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mmd")


def markdown_in_folder(root: Path) -> Path | None:
    """The markdown paper of a folder that has no LaTeX main file, or None.

    AblationBench ships papers as marker output: ``<id>/<id>.md`` beside ``<id>_meta.json`` and
    page images. The file named like its folder wins, then the largest at the top level, then
    the largest anywhere; only regular files inside the folder count (``sandbox.iter_files``).
    """
    candidates = [p for p in iter_files(root) if p.suffix.lower() in _MARKDOWN_SUFFIXES]
    if not candidates:
        return None
    named = [p for p in candidates if p.stem == root.name and p.parent == root]
    if named:
        return named[0]
    top = [p for p in candidates if p.parent == root] or candidates
    return max(top, key=lambda p: (p.stat().st_size, p.name))


def _load_folder(root: Path, *, strict: bool) -> Paper:
    """A folder is a LaTeX project when it has a main ``.tex`` file; else its markdown paper."""
    from ablationkit.papers.latex import NoLatexMainError, load_latex

    try:
        return load_latex(root, strict=strict)
    except NoLatexMainError:
        markdown = markdown_in_folder(root)
        if markdown is None:
            raise FormatError(
                "neither a LaTeX main file (.tex with \\documentclass) nor a markdown paper "
                "(.md) in this folder",
                where=root,
            ) from None
    from ablationkit.papers.markdown import load_markdown

    return load_markdown(_read_text(markdown), source=str(markdown))


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

    A directory is a LaTeX project rooted there (or, with no main ``.tex`` file, a folder holding
    a markdown paper, as AblationBench ships them); a file's project is its folder. A project reads
    only regular files under its root: an ``\\input`` that is missing or leads outside is
    skipped with a warning (``Paper.warnings``), or is an error with ``strict=True``. Only the
    file given is opened for PDF, markdown and text papers.
    """
    from ablationkit.papers.roles import assign_roles

    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or directory", where=path)
    if path.is_dir():
        paper = _load_folder(path, strict=strict)
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
