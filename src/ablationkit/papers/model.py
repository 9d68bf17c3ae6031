"""The paper as the planner sees it: a title, an abstract and a tree of sections.

Every loader (LaTeX, PDF, markdown, text) produces the same ``Paper`` so that roles, views and
prompts never care where a paper came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ablationkit.errors import FormatError

# A paper has tens of sections, a thesis some hundreds; a file with more is not a paper, and
# each section costs a model object, so the loaders stop at this many (before building them).
MAX_SECTIONS = 5000
# Sections nest by level (LaTeX has seven, markdown six), but a PDF outline may nest as deep as
# its author likes, and every walk over the tree recurses once per level.
MAX_SECTION_DEPTH = 32

Role = Literal[
    "method", "experiments", "ablation", "related_work", "conclusion", "appendix", "other"
]
ROLES: tuple[Role, ...] = (
    "method",
    "experiments",
    "ablation",
    "related_work",
    "conclusion",
    "appendix",
    "other",
)
PaperFormat = Literal["latex", "pdf", "markdown", "text"]

_WORD = re.compile(r"\S+")


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


class Section(BaseModel):
    """One heading and the text under it up to its first child; children hold the rest."""

    number: str | None = None
    title: str
    level: int = 1
    text: str = ""
    role: Role = "other"
    appendix: bool = False
    children: list[Section] = Field(default_factory=list)

    @property
    def words(self) -> int:
        return count_words(self.text)

    @property
    def heading(self) -> str:
        return f"{self.number} {self.title}" if self.number else self.title

    def walk(self) -> Iterator[Section]:
        """This section and all its descendants, in reading order."""
        yield self
        for child in self.children:
            yield from child.walk()


class Paper(BaseModel):
    """A loaded paper. ``warnings`` records what the loader skipped or guessed."""

    title: str = ""
    abstract: str = ""
    sections: list[Section] = Field(default_factory=list)
    source: str = ""
    format: PaperFormat = "text"
    warnings: list[str] = Field(default_factory=list)

    def walk(self) -> Iterator[Section]:
        """Every section in reading order (depth first)."""
        for section in self.sections:
            yield from section.walk()

    @property
    def words(self) -> int:
        return (
            count_words(self.title) + count_words(self.abstract) + sum(s.words for s in self.walk())
        )

    def outline(self) -> list[dict[str, object]]:
        """The flat outline in reading order, as ``ablationkit paper --json`` prints it."""
        return [
            {
                "number": s.number,
                "title": s.title,
                "level": s.level,
                "role": s.role,
                "words": s.words,
            }
            for s in self.walk()
        ]

    def to_json_dict(self) -> dict[str, object]:
        return {"title": self.title, "abstract": self.abstract, "sections": self.outline()}

    def to_markdown(self) -> str:
        """Markdown with ``#`` headings: the text a planner receives."""
        parts: list[str] = []
        if self.title:
            parts.append(f"# {self.title}")
        if self.abstract:
            parts.append(f"## Abstract\n\n{self.abstract.strip()}")
        for section in self.walk():
            hashes = "#" * min(section.level + 1, 6)
            body = section.text.strip()
            parts.append(f"{hashes} {section.heading}" + (f"\n\n{body}" if body else ""))
        return "\n\n".join(parts) + "\n"


def build_tree(flat: list[Section], *, where: str | Path | None = None) -> list[Section]:
    """Nest a reading-order list of sections by level (a level may be skipped).

    More than ``MAX_SECTIONS`` sections, or nesting deeper than ``MAX_SECTION_DEPTH``, is a
    one-line ``FormatError`` naming ``where``.
    """
    if len(flat) > MAX_SECTIONS:
        raise FormatError(
            f"{len(flat)} section headings, over the limit of {MAX_SECTIONS}", where=where
        )
    roots: list[Section] = []
    stack: list[Section] = []
    for section in flat:
        section.children = []
        while stack and stack[-1].level >= section.level:
            stack.pop()
        (stack[-1].children if stack else roots).append(section)
        stack.append(section)
        if len(stack) > MAX_SECTION_DEPTH:
            raise FormatError(
                f"sections nested {len(stack)} deep (at {section.heading!r}), over the limit "
                f"of {MAX_SECTION_DEPTH}",
                where=where,
            )
    return roots
