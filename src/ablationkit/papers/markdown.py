"""Markdown papers (including marker-style conversions with image links) and plain text.

Every pattern here runs in time linear in the text: the HTML comments, image links and empty
anchors marker leaves are cut by scans that give up once no closer can follow, not by regexes
that retry each unclosed opener to the end of the file.
"""

from __future__ import annotations

import re
from collections import Counter

from ablationkit.errors import FormatError
from ablationkit.papers.model import MAX_SECTIONS, Paper
from ablationkit.papers.plaintext import (
    Heading,
    Item,
    Paragraph,
    assemble,
    guess_heading,
    split_number,
)

_ATX_OPEN = re.compile(r"(#{1,6})[ \t]+")
_BOLD_LINE = re.compile(r"^\*\*(.+?)\*\*$")
_TAG_OPEN = re.compile(r"<(span|a)\b")
_TAG_CLOSE = {"span": re.compile(r"\s*</span>"), "a": re.compile(r"\s*</a>")}
_FENCE = re.compile(r"^(```|~~~)")


def _atx_heading(line: str) -> tuple[int, str] | None:
    """``(hashes, title)`` of an ATX heading line (``## Title ##``), as the regex
    ``^(#{1,6})[ \\t]+(.*?)[ \\t]*#*[ \\t]*$`` would give, without its quadratic
    backtracking on a line of thousands of ``#``."""
    match = _ATX_OPEN.match(line)
    if match is None:
        return None
    title = line[match.end() :].rstrip(" \t").rstrip("#").rstrip(" \t")
    return len(match.group(1)), title


def _drop_comments(text: str) -> str:
    """``<!--.*?-->`` (across lines) removed."""
    pieces: list[str] = []
    pos = 0
    while (start := text.find("<!--", pos)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break  # no later comment can close either
        pieces.append(text[pos:start])
        pos = end + 3
    return "".join([*pieces, text[pos:]]) if pieces else text


def _drop_images(text: str) -> str:
    """``!\\[[^\\]]*\\]\\([^)]*\\)`` (image links) removed."""
    pieces: list[str] = []
    pos = search = 0
    while (start := text.find("![", search)) != -1:
        close = text.find("]", start + 2)
        if close == -1:
            break
        if not text.startswith("(", close + 1):
            search = close + 1  # every '![' before this ']' fails the same way
            continue
        paren = text.find(")", close + 2)
        if paren == -1:
            break
        pieces.append(text[pos:start])
        pos = search = paren + 1
    return "".join([*pieces, text[pos:]]) if pieces else text


def _drop_empty_tags(text: str) -> str:
    """``<span ...></span>`` and ``<a ...></a>`` (whitespace inside allowed) removed.

    The first ``>`` after an opener, and whether the closing tag follows it, are looked up
    once for all the openers sharing that ``>``.
    """
    pieces: list[str] = []
    pos = search = 0
    gt = -1
    tails: dict[str, re.Match[str] | None] = {}
    while (opener := _TAG_OPEN.search(text, search)) is not None:
        search = opener.end()
        if gt < opener.end():
            gt = text.find(">", opener.end())
            tails = {}
            if gt == -1:
                break
        kind = opener.group(1)
        if kind not in tails:
            tails[kind] = _TAG_CLOSE[kind].match(text, gt + 1)
        tail = tails[kind]
        if tail is None:
            continue
        pieces.append(text[pos : opener.start()])
        pos = search = tail.end()
    return "".join([*pieces, text[pos:]]) if pieces else text


def _clean_markdown(text: str) -> str:
    text = _drop_comments(text)
    text = _drop_images(text)
    text = _drop_empty_tags(text)
    text = re.sub(r"</?sup>", "", text)
    return text


def _too_many_headings(where: str | None) -> FormatError:
    return FormatError(
        f"over {MAX_SECTIONS} headings; not a paper this loader can read", where=where
    )


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


def markdown_items(text: str, *, where: str | None = None) -> list[Item]:
    """Headings from ``#`` lines (and bold-only numbered lines, as marker writes them).

    More than ``MAX_SECTIONS`` headings is a one-line error naming ``where``, raised as the
    lines are read (a file of a million headings fails before it takes memory).
    """
    text = _clean_markdown(text.replace("\r\n", "\n"))
    raw: list[tuple[int, str] | str] = []
    in_fence = False
    headings = 0
    for line in text.split("\n"):
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
            raw.append(line)
            continue
        atx = None if in_fence else _atx_heading(line)
        if atx:
            title = re.sub(r"^\*\*(.*)\*\*$", r"\1", atx[1].strip()).strip()
            if title:
                headings += 1
                if headings > MAX_SECTIONS:
                    raise _too_many_headings(where)
                raw.append((atx[0], title))
                continue
        bold = None if in_fence else _BOLD_LINE.match(line.strip())
        if bold and split_number(bold.group(1))[0] and guess_heading(bold.group(1)):
            headings += 1
            if headings > MAX_SECTIONS:
                raise _too_many_headings(where)
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


def text_items(text: str, *, where: str | None = None) -> list[Item]:
    """Headings guessed from numbered lines (``3 Method``, ``3.1 …``, ``III. METHOD``).

    More than ``MAX_SECTIONS`` headings is a one-line error naming ``where``.
    """
    headings = 0
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
            headings += 1
            if headings > MAX_SECTIONS:
                raise _too_many_headings(where)
            items.extend(_paragraphs(pending))
            pending = []
            items.append(heading)
        else:
            pending.append(line)
        previous_blank = not line.strip()
    items.extend(_paragraphs(pending))
    return items


def load_markdown(text: str, *, source: str) -> Paper:
    return assemble(markdown_items(text, where=source), fmt="markdown", source=source)


def load_text(text: str, *, source: str) -> Paper:
    return assemble(text_items(text, where=source), fmt="text", source=source)
