"""Markdown papers (including marker-style conversions with image links) and plain text."""

from __future__ import annotations

import re
from collections import Counter

from ablationkit.papers.model import Paper
from ablationkit.papers.plaintext import (
    Heading,
    Item,
    Paragraph,
    assemble,
    guess_heading,
    split_number,
)

_ATX = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_BOLD_LINE = re.compile(r"^\*\*(.+?)\*\*$")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_SPAN_ANCHOR = re.compile(r"<span\b[^>]*>\s*</span>|<a\b[^>]*>\s*</a>")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_FENCE = re.compile(r"^(```|~~~)")


def _clean_markdown(text: str) -> str:
    text = _HTML_COMMENT.sub("", text)
    text = _IMAGE.sub("", text)
    text = _SPAN_ANCHOR.sub("", text)
    text = re.sub(r"</?sup>", "", text)
    return text


def _paragraphs(lines: list[str]) -> list[Paragraph]:
    out: list[Paragraph] = []
    buffer: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            buffer.append(line.rstrip())
        elif buffer:
            out.append(Paragraph("\n".join(buffer).strip()))
            buffer = []
    return out


def markdown_items(text: str) -> list[Item]:
    """Headings from ``#`` lines (and bold-only numbered lines, as marker writes them)."""
    text = _clean_markdown(text.replace("\r\n", "\n"))
    raw: list[tuple[int, str] | str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
            raw.append(line)
            continue
        match = None if in_fence else _ATX.match(line)
        if match:
            title = re.sub(r"^\*\*(.*)\*\*$", r"\1", match.group(2).strip()).strip()
            if title:
                raw.append((len(match.group(1)), title))
                continue
        bold = None if in_fence else _BOLD_LINE.match(line.strip())
        if bold and split_number(bold.group(1))[0] and guess_heading(bold.group(1)):
            raw.append((0, bold.group(1).strip()))
            continue
        raw.append(line)
    # Levels of unnumbered headings are relative to the '#' depth of numbered top-level ones.
    depths = Counter(
        h[0]
        for h in raw
        if isinstance(h, tuple) and h[0] and (n := split_number(h[1])[0]) and "." not in n
    )
    base = (
        depths.most_common(1)[0][0]
        if depths
        else min((h[0] for h in raw if isinstance(h, tuple) and h[0]), default=1)
    )
    items: list[Item] = []
    pending: list[str] = []
    first_heading = True
    for entry in raw:
        if isinstance(entry, str):
            pending.append(entry)
            continue
        items.extend(_paragraphs(pending))
        pending = []
        hashes, title = entry
        number = split_number(title)[0]
        level = None if number else max(1, hashes - base + 1) if hashes else 1
        if first_heading and hashes and hashes < base and number is None:
            level = 1
        items.append(Heading(title=title, level=level, explicit=True))
        first_heading = False
    items.extend(_paragraphs(pending))
    return items


def text_items(text: str) -> list[Item]:
    """Headings guessed from numbered lines (``3 Method``, ``3.1 …``, ``III. METHOD``)."""
    items: list[Item] = []
    pending: list[str] = []
    previous_blank = True
    last_top: int | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        heading = guess_heading(line, previous_blank=previous_blank)
        if heading and heading.number and heading.number.isdigit():
            top = int(heading.number)
            # Numbered lists and stray numbers: section numbers only ever step up by one.
            if last_top is not None and not (top == last_top + 1 or top == last_top):
                heading = None
            else:
                last_top = top
        if heading is not None:
            items.extend(_paragraphs(pending))
            pending = []
            items.append(heading)
        else:
            pending.append(line)
        previous_blank = not line.strip()
    items.extend(_paragraphs(pending))
    return items


def load_markdown(text: str, *, source: str) -> Paper:
    return assemble(markdown_items(text), fmt="markdown", source=source)


def load_text(text: str, *, source: str) -> Paper:
    return assemble(text_items(text), fmt="text", source=source)
