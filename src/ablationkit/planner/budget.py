"""Fitting a paper into a model's context: drop appendix, then related work, then long
tables, then trim the least useful sections — never the method — and say what went.

Tokens are counted by the caller's counter (``Model.count_tokens``): this module knows
nothing of models or servers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ablationkit.lm.models import TokenCounter, estimate_tokens
from ablationkit.papers.model import Paper, Section

__all__ = ["FitResult", "TokenCounter", "fit_to_budget", "strip_long_tables"]

_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")


def strip_long_tables(text: str, max_rows: int = 5) -> tuple[str, int]:
    """Markdown tables over ``max_rows`` rows and number-heavy paragraphs (PDF tables) go."""
    removed = 0
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.split("\n")
        rows = sum(bool(_TABLE_ROW.match(line)) for line in lines)
        tokens = paragraph.split()
        numeric = sum(bool(re.fullmatch(r"[-+±]?[\d.,%]+", t)) for t in tokens)
        if rows > max_rows or (len(tokens) > 30 and numeric / len(tokens) > 0.4):
            removed += 1
            out.append("[long table omitted]")
        else:
            out.append(paragraph)
    return "\n\n".join(out), removed


@dataclass
class FitResult:
    paper: Paper
    tokens: int
    dropped: list[str] = field(default_factory=list)


def _remove(paper: Paper, predicate: Callable[[Section], bool]) -> list[str]:
    removed: list[str] = []

    def prune(sections: list[Section]) -> list[Section]:
        kept = []
        for section in sections:
            if predicate(section):
                removed.append(section.heading)
            else:
                section.children = prune(section.children)
                kept.append(section)
        return kept

    paper.sections = prune(paper.sections)
    return removed


def _outline(text: str) -> str:
    """A section cut to its first and last paragraphs: the first says what the section is
    about, the last of an introduction is usually its list of contributions."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) <= 1:
        return text
    if len(paragraphs) == 2:
        return paragraphs[0] + "\n\n[rest of section omitted]"
    return paragraphs[0] + "\n\n[… omitted …]\n\n" + paragraphs[-1]


def _first(text: str) -> str:
    first = text.split("\n\n", 1)[0]
    return text if first == text else first + "\n\n[rest of section omitted]"


def fit_to_budget(
    paper: Paper,
    budget: int,
    count: TokenCounter = estimate_tokens,
    *,
    cut_method: bool = True,
) -> FitResult:
    """A copy of ``paper`` whose markdown fits in ``budget`` tokens (the method stays).

    ``cut_method=False`` (a reading budget, not the context's limit) stops before the method
    is cut: the result may then be over ``budget``."""
    paper = paper.model_copy(deep=True)
    dropped: list[str] = []

    def size() -> int:
        return count(paper.to_markdown())

    tokens = size()
    if tokens <= budget:
        return FitResult(paper, tokens)
    for role, label in (("appendix", "appendix"), ("related_work", "related work")):
        removed = _remove(paper, lambda s, r=role: s.role == r)  # type: ignore[misc]
        if removed:
            dropped.append(f"{label}: " + "; ".join(removed))
            tokens = size()
            if tokens <= budget:
                return FitResult(paper, tokens, dropped)
    tables = 0
    for section in paper.walk():
        section.text, removed_tables = strip_long_tables(section.text)
        tables += removed_tables
    if tables:
        dropped.append(f"{tables} long tables")
        tokens = size()
        if tokens <= budget:
            return FitResult(paper, tokens, dropped)
    # Still too long: keep only the first and last paragraphs of the longest non-method
    # sections, then only their first.
    order = sorted((s for s in paper.walk() if s.role != "method"), key=lambda s: -s.words)
    for outline in (_outline, _first):
        for section in order:
            shorter = outline(section.text)
            if len(shorter) < len(section.text):
                section.text = shorter
                label = f"most of {section.heading}"
                if label not in dropped:
                    dropped.append(label)
                tokens = size()
                if tokens <= budget:
                    return FitResult(paper, tokens, dropped)
    if not cut_method:
        return FitResult(paper, tokens, dropped)
    # The method alone is too long: cut its sections proportionally, and say so.
    method = [s for s in paper.walk() if s.role == "method" and s.text]
    ratio = budget / max(tokens, 1)
    for section in method:
        keep = max(200, int(len(section.text) * ratio * 0.95))
        if keep < len(section.text):
            section.text = section.text[:keep].rsplit(" ", 1)[0] + " [… truncated]"
    if method:
        dropped.append("the end of each method section (the method alone exceeds the context)")
    return FitResult(paper, size(), dropped)
