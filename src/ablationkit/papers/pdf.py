"""PDF papers through PyMuPDF (the optional ``pdf`` extra).

Headings come from the PDF's outline when it has one (LaTeX with hyperref writes one: exact
titles and levels), located in the text to split it; unnumbered headings the outline leaves
out (Acknowledgment, References) are recognised by name. Without an outline, headings are
guessed from numbered lines. Running headers, footers and page numbers are dropped, and so
are a figure's loose labels (axis ticks) and control characters; words broken at line ends
are mended by what the rest of the PDF writes ("en-" "sure" -> "ensure", "self-" "attention"
-> "self-attention"), across a column or page break too.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablationkit.errors import FormatError
from ablationkit.papers.model import Paper
from ablationkit.papers.plaintext import (
    Heading,
    Item,
    Paragraph,
    assemble,
    guess_heading,
    split_number,
)
from ablationkit.papers.roles import normalise_heading

MAX_PDF_BYTES = 200 * 1024 * 1024
MAX_PDF_PAGES = 500
MAX_MUPDF_WARNINGS = 5
# MuPDF keeps its messages in process-wide state (and PyMuPDF is not thread-safe): one PDF at
# a time, so each paper gets its own messages.
_MUPDF_LOCK = threading.Lock()
_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
_SPACING_ACCENTS = {
    "´": "\u0301",
    "`": "\u0300",
    "¨": "\u0308",
    "ˆ": "\u0302",
    "˜": "\u0303",
    "¸": "\u0327",
    "ˇ": "\u030c",
}
# C0 and C1 control characters but tab and newline, and DEL: a font without a Unicode map
# gives NUL or raw glyph codes, which would reach the prompt and the browser as they are.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A word broken at a line end: "en-\nsure", "self-\nattention", "CIFAR-\n10" (a soft hyphen
# too, which is a hyphenation point by definition).
_HYPHENS = ("-", "\u2010", "\u00ad")
# (the look-behind: a word is tried from its start only, not from each of its letters)
_BROKEN_WORD = re.compile(r"(?<!\w)(\w+)([-\u2010\u00ad])[ \t]*\n\s*(\w+)")
_TRAILING_BREAK = re.compile(r"(?<!\w)(\w+)([-\u2010\u00ad])$")
# what goes on a paragraph broken at a column or page end ("sure that", "10 datasets"); a
# capital starts a new block more often than it ends a word ("CIFAR-" then "Fig. 3")
_LEADING_WORD = re.compile(r"[^\W_A-Z][\w]*")
_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
# Prefixes that papers hyphenate ("self-attention", "non-experts") and that are no words of
# their own.
_HYPHENATING_PREFIXES = frozenset("self non cross semi pseudo quasi".split())
# A figure's loose labels: axis ticks ("0.0 0.5 1.0", "10 20 30"), panel letters ("(a)"),
# signs. Nothing of them reads as prose.
_FIGURE_TOKEN = re.compile(
    r"[-−+]?(?:\d+(?:[.,]\d+)*|[.,]\d+)(?:[eE][-−+]?\d+)?[%×x]?|\(?[a-z]\)|[^\w\s]+"
)
# "1 . Introduction": the outline of some PDFs keeps the number's period apart from it.
_SPACED_NUMBER = re.compile(r"^((?:\d{1,2}(?:\.\d{1,2})*)|[A-Z]|[IVXLC]{1,6})\s+([.:)])\s+")
_DIVIDER = re.compile(r"(appendix|appendices|supplementary|supplemental)( materials?)?")
# Headings an outline leaves out (LaTeX's starred sections: NeurIPS's "Limitations" and
# "Acknowledgments and Disclosure of Funding"): left as paragraphs, they and their text would
# join the section before them, often the experiments.
_UNNUMBERED_HEADINGS = re.compile(
    r"^(abstract|acknowledge?ments?(?: and disclosure of funding)?|references|bibliography|"
    r"appendix|appendices|supplementary material|limitations|broader impacts?|"
    r"societal impacts?|ethics statement|reproducibility statement)$",
    re.I,
)
# "Acknowledgements. We thank ...": a run-in heading opening its paragraph
_RUN_IN_ACKNOWLEDGEMENTS = re.compile(
    r"^(acknowledge?ments?(?: and disclosure of funding)?)[.:]\s+(?=\S)", re.I
)


class PdfError(FormatError):
    """A PDF we cannot read: corrupt, encrypted, scanned without text."""


def _pymupdf() -> Any:
    try:
        import pymupdf
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise PdfError("reading PDFs needs PyMuPDF: pip install 'ablationkit[pdf]'") from None
    return pymupdf


@contextmanager
def _mupdf_messages() -> Iterator[list[str]]:
    """Keep MuPDF's messages off stdout and hand them back as warnings.

    MuPDF prints its errors ("zlib error", "repairing PDF document") to stdout by default, which
    breaks ``ablationkit paper --json``. Display is switched off while a PDF is read and the
    messages collected; the list is filled when the block ends.
    """
    tools = _pymupdf().TOOLS
    collected: list[str] = []
    with _MUPDF_LOCK:
        errors, warnings = tools.mupdf_display_errors(), tools.mupdf_display_warnings()
        tools.mupdf_display_errors(False)
        tools.mupdf_display_warnings(False)
        tools.reset_mupdf_warnings()
        try:
            yield collected
        finally:
            messages = tools.mupdf_warnings(reset=1).splitlines()
            tools.mupdf_display_errors(errors)
            tools.mupdf_display_warnings(warnings)
            unique = list(dict.fromkeys(m.strip() for m in messages if m.strip()))
            collected.extend(f"MuPDF: {m}" for m in unique[:MAX_MUPDF_WARNINGS])
            if len(unique) > MAX_MUPDF_WARNINGS:
                collected.append(f"MuPDF: {len(unique) - MAX_MUPDF_WARNINGS} more messages")


@dataclass
class _Block:
    page: int
    y0: float
    y1: float
    page_height: float
    text: str


@dataclass(frozen=True)
class _Vocabulary:
    """What one PDF writes (lower-cased), the words broken at line ends left out: the
    evidence for mending a broken word without a dictionary. ``words`` stand on their own,
    ``parts`` are parts of hyphenated compounds ("state-of-the-art"), ``pairs`` two adjacent
    parts of one ("state-of", "of-the", "the-art")."""

    words: frozenset[str] = frozenset()
    parts: frozenset[str] = frozenset()
    pairs: frozenset[str] = frozenset()

    @classmethod
    def of(cls, texts: list[str]) -> _Vocabulary:
        text = _BROKEN_WORD.sub(" ", _plain_characters("\n".join(texts))).rstrip()
        if text.endswith(_HYPHENS) and (end := _TRAILING_BREAK.search(text, len(text) - 100)):
            text = text[: end.start()]  # broken at the very end
        tokens = set(_TOKEN.findall(text.lower()))
        compounds = [t.split("-") for t in tokens if "-" in t]
        return cls(
            frozenset(t for t in tokens if "-" not in t),
            frozenset(part for split in compounds for part in split),
            frozenset(f"{a}-{b}" for split in compounds for a, b in itertools.pairwise(split)),
        )

    def is_word(self, word: str) -> bool:
        """``word`` stands on its own in the paper, maybe with an ending ("valued": "value")."""
        return (
            word in self.words
            or (word.endswith(("s", "d")) and word[:-1] in self.words)
            or (word.endswith(("es", "ed")) and word[:-2] in self.words)
        )


def _plain_characters(text: str) -> str:
    """No control characters, ligatures spelled out."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    for bad, good in _LIGATURES.items():
        text = text.replace(bad, good)
    return text


def _mend(first: str, hyphen: str, second: str, vocabulary: _Vocabulary) -> str:
    """``first`` and ``second``, split at a line end after ``hyphen``: one word ("en" +
    "sure" -> "ensure") or a compound ("self" + "attention" -> "self-attention").

    A compound when the second part does not start in lower case ("CIFAR-10", "Auto-ML").
    Otherwise one word when the paper writes it elsewhere; a compound when it writes this
    compound elsewhere ("scikit-learn", "state-of-the-art"), when the first part is a prefix
    that hyphenates ("self", "non"), or when both parts are words of their own ("model" +
    "free"); one word when a part is no word of its own ("en", "algo", "tention")."""
    if hyphen == "\u00ad":
        return first + second
    if not second[0].islower():
        return f"{first}-{second}"
    low_first, low_second = first.lower(), second.lower()
    joined = low_first + low_second
    if joined in vocabulary.words or joined in vocabulary.parts:
        return first + second
    if (
        f"{low_first}-{low_second}" in vocabulary.pairs
        or low_first in _HYPHENATING_PREFIXES
        or (
            (low_first in vocabulary.words or low_first in vocabulary.parts)
            and vocabulary.is_word(low_second)
        )
    ):
        return f"{first}-{second}"
    return first + second


def _merge_broken_paragraphs(items: list[Item], vocabulary: _Vocabulary) -> list[Item]:
    """A paragraph that ends in a broken word ("... to en-") goes on in the next one (the
    next column or page: "sure that ..."): one paragraph, the word mended. Floats may come
    between in the text (a figure's caption, a table's cells at the top of the next column):
    the continuation is then the first paragraph of prose after them that starts in lower
    case or with a digit, before any heading or other prose. Linear in the items: a chain of
    broken paragraphs is joined once, each piece looked at once."""
    merged: list[Item] = []
    taken: set[int] = set()  # continuations already joined to an earlier paragraph
    for index, item in enumerate(items):
        if index in taken:
            continue
        if not isinstance(item, Paragraph):
            merged.append(item)
            continue
        pieces, last = [item.text], index
        while pieces[-1].endswith(_HYPHENS):
            piece = pieces[-1]
            tail = _TRAILING_BREAK.search(piece, max(0, len(piece) - _MAX_WORD))
            found = _continuation(items, last + 1, taken) if tail else None
            if tail is None or found is None:
                break
            last, rest, head = found
            taken.add(last)
            word = _mend(tail.group(1), tail.group(2), head.group(), vocabulary)
            pieces[-1] = piece[: tail.start()] + word
            pieces.append(rest.text[head.end() :])
        merged.append(Paragraph("".join(pieces)) if len(pieces) > 1 else item)
    return merged


_CAPTION = re.compile(r"^(fig\.|figure|tab\.|table|algorithm)\s*[\dIVXLC]", re.I)
_MAX_FLOATS = 12  # items of floats looked past
_MAX_WORD = 80  # a broken word is looked for in this many characters at a paragraph's end


def _continuation(
    items: list[Item], start: int, taken: set[int]
) -> tuple[int, Paragraph, re.Match[str]] | None:
    """Where the paragraph broken before ``start`` goes on: the next item if it starts in
    lower case or with a digit, else the first such paragraph of prose after floats only."""
    first = True
    for index in range(start, min(len(items), start + _MAX_FLOATS)):
        item = items[index]
        if index in taken:
            continue
        if not isinstance(item, Paragraph):
            return None
        head = _LEADING_WORD.match(item.text)
        if head and (first or _prose(item.text)):
            return index, item, head
        if _prose(item.text) and not _CAPTION.match(item.text):
            return None  # another paragraph of the text: the broken one does not go on
        first = False
    return None


def _prose(text: str) -> bool:
    """Sentences, as opposed to a caption's label or a table's cells: six words or more,
    mostly lower-case words, ending like a sentence."""
    words = text.split()
    lower = sum(w.isalpha() and w.islower() for w in words)
    return len(words) >= 6 and lower * 2 >= len(words) and text.rstrip()[-1:] in ".!?:;"


def _figure_labels(text: str) -> bool:
    """True for a block of a figure's numbers and panel letters (axis ticks), not prose."""
    tokens = text.split()
    return (
        bool(tokens)
        and all(_FIGURE_TOKEN.fullmatch(t) for t in tokens)
        and any(ch.isdigit() for ch in text)
    )


def _outline_title(title: str) -> str:
    """An outline entry as its heading reads: no control characters, "1 . Introduction" ->
    "1. Introduction", no stray punctuation before the words (". Introduction")."""
    title = " ".join(_plain_characters(title).split())
    title = _SPACED_NUMBER.sub(r"\1\2 ", title)
    return title.lstrip(".:;,) ") or title


def clean_pdf_text(text: str, vocabulary: _Vocabulary | None = None) -> str:
    """A block's text as prose: no control characters, ligatures spelled out, words broken at
    line ends mended (by the words of the whole PDF, ``vocabulary``), one line."""
    vocabulary = vocabulary or _Vocabulary()
    text = _plain_characters(text)
    text = _BROKEN_WORD.sub(lambda m: _mend(m.group(1), m.group(2), m.group(3), vocabulary), text)
    text = re.sub("\u00ad(?![ \t\n]*$)", "", text)  # a trailing one may go on in the next block
    text = re.sub(r"\s*\n\s*", " ", text)
    # "Ara´ujo" -> "Araújo": a spacing accent before its letter becomes a combining one.
    text = re.sub(
        r"([´`¨ˆ˜¸ˇ])\s?([A-Za-z])", lambda m: m.group(2) + _SPACING_ACCENTS[m.group(1)], text
    )
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _open(path: Path) -> Any:
    pymupdf = _pymupdf()
    if not path.is_file():  # only the file given is opened, and only if it is a regular one
        raise PdfError("not a regular file", where=path)
    size = path.stat().st_size
    if size == 0:
        raise PdfError("empty file", where=path)
    if size > MAX_PDF_BYTES:
        raise PdfError(f"{size} bytes, over the {MAX_PDF_BYTES} byte limit", where=path)
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises several types for broken files
        detail = str(exc).replace(str(path), path.name)
        raise PdfError(f"corrupt or unreadable PDF ({detail})", where=path) from None
    if doc.needs_pass or doc.is_encrypted:
        raise PdfError("encrypted PDF: it needs a password to open", where=path)
    if doc.page_count == 0:
        raise PdfError("PDF has no pages", where=path)
    if doc.page_count > MAX_PDF_PAGES:
        raise PdfError(f"{doc.page_count} pages, over the {MAX_PDF_PAGES} page limit", where=path)
    return doc


def _blocks(doc: Any, path: Path) -> list[_Block]:
    blocks: list[_Block] = []
    try:
        for page in doc:
            height = page.rect.height or 1.0
            for _x0, y0, _x1, y1, text, _no, kind in page.get_text("blocks", sort=False):
                if kind == 0 and text.strip():
                    blocks.append(_Block(page.number, y0, y1, height, text))
    except Exception as exc:
        raise PdfError(f"corrupt PDF: text extraction failed ({exc})", where=path) from None
    return _drop_running_lines(blocks, doc.page_count)


def _drop_running_lines(blocks: list[_Block], pages: int) -> list[_Block]:
    """Page numbers, and headers/footers that repeat at a page edge on many pages."""

    def key(block: _Block) -> str:
        return re.sub(r"\d+", "#", " ".join(block.text.split()).lower())

    def at_edge(block: _Block) -> bool:
        return block.y1 < 0.09 * block.page_height or block.y0 > 0.91 * block.page_height

    repeats = Counter(key(b) for b in blocks if at_edge(b))
    threshold = max(3, pages // 2)
    kept = []
    for block in blocks:
        text = block.text.strip()
        if at_edge(block) and (
            re.fullmatch(r"[\d\s\-–—/|ivxlc.]*", text.lower()) or repeats[key(block)] >= threshold
        ):
            continue
        kept.append(block)
    return kept


def _document_title(doc: Any) -> str | None:
    meta = (doc.metadata or {}).get("title", "") or ""
    meta = " ".join(_plain_characters(meta).split())
    if len(meta.split()) >= 3 and not re.search(r"\.(pdf|tex|dvi|docx?)$|^untitled", meta, re.I):
        return meta
    # Otherwise the largest text on the first page.
    spans = []
    for block in doc[0].get_text("dict").get("blocks", []):
        for line in block.get("lines", []):
            text = "".join(s["text"] for s in line["spans"]).strip()
            if text:
                spans.append((max(s["size"] for s in line["spans"]), line["bbox"][1], text))
    if not spans:
        return None
    top = max(size for size, _, _ in spans)
    lines = [text for size, _, text in sorted(spans, key=lambda s: s[1]) if size >= top - 0.5]
    title = clean_pdf_text("\n".join(lines))
    return title or None


def _toc(doc: Any, title: str | None) -> list[tuple[int, str, int]]:
    toc = [(lvl, _outline_title(t), page) for lvl, t, page, *_ in doc.get_toc(simple=True)]
    toc = [entry for entry in toc if entry[1]]
    top_level = [entry for entry in toc if entry[0] == 1]
    if (
        len(top_level) == 1
        and len(toc) > 1
        and title
        and normalise_heading(top_level[0][1]) == normalise_heading(title)
    ):
        toc = [(lvl - 1, t, p) for lvl, t, p in toc if (lvl, t, p) != top_level[0]]
    return _lift_under_dividers(toc)


def _lift_under_dividers(toc: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    """Entries nested under a bare "Appendix" / "Supplementary Material" entry move up a
    level: the divider is no section of its own (``assemble`` drops it), and its entries
    would otherwise become children of the section before it."""
    lifted: list[tuple[int, str, int]] = []
    divider: int | None = None
    for level, title, page in toc:
        if divider is not None and level <= divider:
            divider = None
        if _DIVIDER.fullmatch(normalise_heading(title)):
            divider = level
        elif divider is not None:
            level -= 1
        lifted.append((level, title, page))
    return lifted


@functools.lru_cache(maxsize=4096)
def _normalised_char(ch: str) -> str:
    """``normalise_heading`` of one character, without spaces: ``_heading_cut`` asks for it
    character by character, for every outline entry against every nearby block (it was
    most of a PDF's load time)."""
    return normalise_heading(ch).replace(" ", "")


def _heading_cut(text: str, wanted: str) -> int | None:
    """Where in ``text`` the heading ``wanted`` (normalised) ends, if ``text`` starts with it."""
    norm_wanted = normalise_heading(wanted).replace(" ", "")
    if not norm_wanted:
        return None
    consumed = ""
    for index, ch in enumerate(text):
        consumed += _normalised_char(ch)
        if len(consumed) >= len(norm_wanted):
            return index + 1 if consumed == norm_wanted else None
        if not norm_wanted.startswith(consumed):
            return None
    return None


def _match_heading(block_text: str, title: str) -> tuple[str | None, int] | None:
    """If the block opens with the heading, its number (if printed) and where the heading
    ends. The heading must end its line (or be a run-in heading ending in a period): a
    paragraph that merely starts with the same words is not it."""
    text = block_text.strip()
    number, toc_title, _ = split_number(title)
    starts: dict[int, str | None] = {0: None}
    printed_number, after_number, _ = split_number(text.split("\n", 1)[0])
    if printed_number:
        starts[text.find(after_number)] = printed_number
    # "A Proofs": an appendix letter printed without punctuation.
    token = re.match(r"([A-Z](?:\.\d{1,2})*|\d{1,2}(?:\.\d{1,2})*)\s+", text)
    if token:
        starts.setdefault(token.end(), token.group(1))
    for start, printed in starts.items():
        candidate = text[start:]
        cut = _heading_cut(candidate, toc_title) or _heading_cut(candidate, title)
        if cut is None:
            continue
        rest = candidate[cut:].lstrip(" \t")
        if rest[:1] in ("", "\n", ".", ":", "—", "–"):
            return number or printed, start + cut
    return None


def _items_from_toc(
    blocks: list[_Block],
    toc: list[tuple[int, str, int]],
    warnings: list[str],
    vocabulary: _Vocabulary,
) -> list[Item]:
    starts: dict[int, tuple[Heading, int, int]] = {}  # block index -> heading, cut, blocks used
    position = 0
    for level, title, page_number in toc:
        page = page_number - 1  # outline pages count from 1, PyMuPDF's from 0
        found = None
        for index in range(position, len(blocks)):
            block = blocks[index]
            if block.page < page - 1:
                continue
            if block.page > page + 1:
                break
            joined = block.text
            for extra in range(3):  # a heading may be split over consecutive blocks
                if extra:
                    if index + extra >= len(blocks):
                        break
                    joined = joined + "\n" + blocks[index + extra].text
                match = _match_heading(joined, title)
                if match is not None:
                    found = (index, match, extra + 1)
                    break
            if found:
                break
        if found is None:
            warnings.append(f'outline heading "{title}" (page {page}) not found in the text')
            continue
        index, (number, cut), used = found
        heading_title = split_number(title)[1] if split_number(title)[0] else title
        heading_title = heading_title.lstrip(".:;,) ") or heading_title  # "1 .Intro"
        appendix_number = split_number(title)
        heading = Heading(
            title=title if appendix_number[2] else heading_title,
            number=None if appendix_number[2] else number,
            level=level,
            explicit=True,
        )
        starts[index] = (heading, cut, used)
        position = index + used
    items: list[Item] = []
    skip_until = -1
    for index, block in enumerate(blocks):
        if index < skip_until:
            continue
        if index in starts:
            heading, cut, used = starts[index]
            joined = "\n".join(b.text for b in blocks[index : index + used]).strip()
            items.append(heading)
            rest = clean_pdf_text(joined[cut:], vocabulary)
            if rest.strip(" .:—-"):
                items.append(Paragraph(rest.lstrip(" .:—-")))
            skip_until = index + used
            continue
        text = clean_pdf_text(block.text, vocabulary)
        run_in = _RUN_IN_ACKNOWLEDGEMENTS.match(text)
        if _UNNUMBERED_HEADINGS.match(text.rstrip(":")):
            items.append(Heading(title=text.rstrip(":").title() if text.isupper() else text))
        elif run_in:
            title = run_in.group(1)
            items.append(Heading(title=title.title() if title.isupper() else title))
            items.append(Paragraph(text[run_in.end() :]))
        elif not _figure_labels(text):
            items.append(Paragraph(text))
    return items


def _items_from_text(blocks: list[_Block], vocabulary: _Vocabulary) -> list[Item]:
    items: list[Item] = []
    last_top: int | None = None
    for block in blocks:
        lines = [line for line in block.text.split("\n") if line.strip()]
        if not lines:
            continue
        heading = guess_heading(clean_pdf_text(lines[0]), standalone=len(lines) == 1)
        if heading and heading.number and heading.number.isdigit():
            top = int(heading.number)
            if last_top is not None and top not in (last_top, last_top + 1):
                heading = None
            else:
                last_top = top
        if heading is not None:
            items.append(heading)
            rest = clean_pdf_text("\n".join(lines[1:]), vocabulary)
            if rest:
                items.append(Paragraph(rest))
        elif not _figure_labels(text := clean_pdf_text(block.text, vocabulary)):
            items.append(Paragraph(text))
    return items


def load_pdf(path: str | Path) -> Paper:
    """Load a PDF paper into a ``Paper`` (text in reading order, headings, abstract)."""
    path = Path(path)
    warnings: list[str] = []
    with _mupdf_messages() as mupdf_warnings:
        doc = _open(path)
        try:
            blocks = _blocks(doc, path)
            if not blocks:
                raise PdfError("no extractable text (a scanned PDF? run OCR first)", where=path)
            title = _document_title(doc)
            toc = _toc(doc, title)
            vocabulary = _Vocabulary.of([b.text for b in blocks])
            items = (
                _items_from_toc(blocks, toc, warnings, vocabulary)
                if toc
                else _items_from_text(blocks, vocabulary)
            )
            items = _merge_broken_paragraphs(items, vocabulary)
            if not toc:
                warnings.append("no PDF outline: headings were guessed from numbered lines")
        finally:
            doc.close()
    warnings[:0] = mupdf_warnings
    # The title block is not a paragraph of the paper.
    if (
        title
        and items
        and isinstance(items[0], Paragraph)
        and normalise_heading(items[0].text) == normalise_heading(title)
    ):
        items = items[1:]
    return assemble(items, fmt="pdf", source=str(path), title=title, warnings=warnings)
