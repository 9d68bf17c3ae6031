"""Papers that arrive as a flat run of headings and paragraphs: markdown, text, PDF.

Each of those loaders turns its input into ``Heading`` and ``Paragraph`` items; ``assemble``
then does what they share: find the title and abstract, drop the references, mark the
appendix, number-aware levels, and the section tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ablationkit.errors import FormatError
from ablationkit.papers.model import MAX_SECTIONS, Paper, PaperFormat, Section, build_tree


@dataclass
class Heading:
    title: str
    number: str | None = None
    level: int | None = None  # None: derive it from the number
    explicit: bool = False  # a markdown/TOC heading, as opposed to a guessed one


@dataclass
class Paragraph:
    text: str


Item = Heading | Paragraph

_ROMAN = r"(?:X{0,3})(?:IX|IV|V?I{0,3})"
_NUMBER = re.compile(
    r"^(?:(?P<appendix>appendix|appendices|supplementary(?: material)?)\s+"
    r"(?P<app_id>[A-Z](?:\.\d+)*)\b\s*[:.\-–—]?\s*"  # \b: "Supplementary Material" has none
    r"|(?P<arabic>\d{1,2}(?:\.\d{1,2}){0,4})\.?\s+"
    r"|(?P<roman>" + _ROMAN + r")\.\s+"
    r"|(?P<letter>[A-Z](?:\.\d{1,2}){1,4})\.?\s+"
    r"|(?P<letter1>[A-Z])[.:)]\s+)"
    r"(?P<title>\S.*)$",
    re.IGNORECASE,
)
_KNOWN_UNNUMBERED = re.compile(
    r"^(abstract|introduction|related work|background|method|methods|methodology|approach|"
    r"experiments?|results|discussion|conclusions?|references|bibliography|"
    r"acknowledge?ments?|appendix|appendices|supplementary material|limitations|"
    r"broader impacts?|ethics statement|reproducibility statement)\s*:?$",
    re.IGNORECASE,
)
_REFERENCES = re.compile(r"^(references|bibliography|literature cited|works cited)$", re.I)
_APPENDIX_MARK = re.compile(
    r"^(appendix|appendices|supplementary( material)?|supplemental"
    r"( material)?)\b",
    re.I,
)
_ABSTRACT_PREFIX = re.compile(r"^\W*abstract\W*\s*[—–:.\-]?\s*", re.I)
_STOP_ABSTRACT = re.compile(r"^(index terms|keywords|key words|ccs concepts)\b", re.I)


def split_number(text: str) -> tuple[str | None, str, bool]:
    """``"3.1 Masking design"`` -> ``("3.1", "Masking design", False)``; the flag says
    the heading named itself an appendix ("Appendix A: Proofs")."""
    text = " ".join(text.split())
    match = _NUMBER.match(text)
    if not match:
        return None, text, False
    if match.group("appendix"):
        return match.group("app_id").upper(), match.group("title").strip(), True
    roman = match.group("roman")
    if roman is not None and not roman:
        return None, text, False
    number = match.group("arabic") or roman or match.group("letter") or match.group("letter1")
    title = match.group("title").strip()
    if not title or not re.search(r"[A-Za-z]", title):
        return None, text, False
    return number.upper() if number and not number[0].isdigit() else number, title, False


def guess_heading(
    line: str, *, previous_blank: bool = True, standalone: bool = False
) -> Heading | None:
    """Is this line of plain text a section heading? Conservative: a wrong guess splits a
    paragraph, a missed one only merges two sections. ``standalone`` says the line is a block
    of its own (a PDF text block), which lets "A Proofs" count as a lettered heading."""
    line = line.strip().strip("*").strip()
    if not line or len(line) > 120 or not previous_blank:
        return None
    words = line.split()
    if _KNOWN_UNNUMBERED.match(line):
        return Heading(title=line.rstrip(":"))
    lettered = re.fullmatch(r"([A-Z](?:\.\d{1,2})*)\s+([A-Z][\w-]*(?:\s+\S+){0,8})", line)
    if standalone and lettered and not line.endswith((".", ",", ";")):
        return Heading(title=lettered.group(2), number=lettered.group(1))
    number, title, appendix = split_number(line)
    if number is None:
        if appendix:
            return Heading(title=title, number=None)
        if line.isupper() and 1 <= len(words) <= 6 and re.fullmatch(r"[A-Z][A-Z \-&]+", line):
            return Heading(title=line)
        return None
    if len(title.split()) > 14 or (title.endswith((".", ",", ";")) and not title.endswith("etc.")):
        return None
    if not (title[0].isupper() or title[0].isdigit()):
        return None
    if re.search(r"\d\s*[%=<>±×]|\bTable\b|\bFig", title):
        return None
    return Heading(title=title, number=number)


def _level(heading: Heading, previous_style: str | None) -> int:
    if heading.level is not None:
        return heading.level
    number = heading.number
    if not number:
        return 1
    parts = number.split(".")
    if len(parts) == 1 and number.isalpha() and previous_style == "roman" and len(number) == 1:
        return 2  # IEEE: "III. Method" then "A. Sub-part"
    return len(parts)


def _style(number: str | None) -> str | None:
    if not number:
        return None
    if number[0].isdigit():
        return "arabic"
    if re.fullmatch(_ROMAN, number, re.I) and len(number) > 0 and number not in {"C", "D"}:
        return "roman"
    return "letter"


def clean_abstract(text: str) -> str:
    kept = []
    for line in text.split("\n"):
        if _STOP_ABSTRACT.match(line.strip()):
            break
        kept.append(line)
    return _ABSTRACT_PREFIX.sub("", "\n".join(kept).strip(), count=1).strip()


def _join_paragraphs(paragraphs: list[str]) -> str:
    """Paragraphs joined by blank lines, empty ones before the first text left out."""
    first = next((i for i, p in enumerate(paragraphs) if p), len(paragraphs))
    return "\n\n".join(paragraphs[first:])


def assemble(
    items: list[Item],
    *,
    fmt: PaperFormat,
    source: str,
    title: str | None = None,
    warnings: list[str] | None = None,
) -> Paper:
    """Build a ``Paper`` from headings and paragraphs in reading order.

    Paragraphs are collected in lists and joined once per section (joining as they come
    would copy a long section once per paragraph); more than ``MAX_SECTIONS`` sections is a
    one-line error naming ``source``.
    """
    warnings = list(warnings or [])
    items = list(items)
    # A markdown document's first unnumbered top heading is its title.
    first = items[0] if items else None
    if (
        title is None
        and isinstance(first, Heading)
        and first.explicit
        and first.number is None
        and not _KNOWN_UNNUMBERED.match(first.title)
    ):
        title = first.title
        items.pop(0)
    front: list[str] = []
    abstract_parts: list[str] = []
    flat: list[Section] = []
    texts: list[list[str]] = []  # the paragraphs of flat[i]
    current: list[str] | None = None
    in_abstract = False
    in_references = False
    in_appendix = False
    previous_style: str | None = None
    for item in items:
        if isinstance(item, Paragraph):
            if in_references:
                continue
            if in_abstract:
                abstract_parts.append(item.text)
            elif current is not None:
                current.append(item.text)
            else:
                front.append(item.text)
            continue
        heading = item
        norm = heading.title.strip().rstrip(":").strip()
        in_abstract = False
        if re.fullmatch(r"abstract", norm, re.I) and not flat:
            in_abstract = True
            continue
        if _REFERENCES.match(norm):
            in_references = True
            current = None
            continue
        number, heading_title, says_appendix = (heading.number, heading.title, False)
        if number is None:
            number, heading_title, says_appendix = split_number(heading.title)
        if says_appendix or (_APPENDIX_MARK.match(heading_title) and number is None):
            in_appendix = True
            if _APPENDIX_MARK.fullmatch(heading_title.strip()):
                in_references = False
                current = None
                continue  # a bare "Appendix" divider, not a section of its own
        if number is None and (in_references or in_appendix):
            # "A Proofs" after the references: appendix letters need no dot.
            lettered = re.match(r"^([A-Z](?:\.\d{1,2})*)\s+(\S.*)$", heading_title)
            if lettered:
                number, heading_title = lettered.group(1), lettered.group(2)
        style = _style(number)
        if in_references and style != "arabic":
            in_appendix = True
        in_references = False
        level = _level(Heading(heading_title, number, heading.level), previous_style)
        if style in {"arabic", "roman"} and level == 1:
            previous_style = style
        if len(flat) >= MAX_SECTIONS:
            raise FormatError(
                f"over {MAX_SECTIONS} section headings; not a paper this loader can read",
                where=source,
            )
        flat.append(Section(number=number, title=heading_title, level=level, appendix=in_appendix))
        current = []
        texts.append(current)
    for section, paragraphs in zip(flat, texts, strict=True):
        section.text = _join_paragraphs(paragraphs)
    abstract = _join_paragraphs(abstract_parts)
    if not abstract:
        for index, text in enumerate(front):
            if _ABSTRACT_PREFIX.match(text) and re.match(r"^\W*abstract", text, re.I):
                abstract = "\n\n".join([text, *front[index + 1 :]])
                break
    if title is None:
        title = next((t.split("\n")[0].strip() for t in front if t.strip()), "")
    if not flat:
        warnings.append("no section headings found: the whole text is one section")
        body = "\n\n".join(t for t in front if t.strip() and not abstract.startswith(t))
        flat = [Section(title="Body", text=body)]
    return Paper(
        title=title,
        abstract=clean_abstract(abstract),
        sections=build_tree(flat, where=source),
        source=source,
        format=fmt,
        warnings=warnings,
    )
