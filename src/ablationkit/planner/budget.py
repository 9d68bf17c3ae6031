"""Fitting a paper into a model's context: drop appendix, then related work, then long
tables, then trim the least useful sections — never the method — and say what went."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from ablationkit.papers.model import Paper, Section

TokenCounter = Callable[[str], int]

# Context windows (tokens) of hosted models, by the last part of the model id.
CONTEXT_WINDOWS = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_000_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
    "claude": 200_000,
    "gemini": 1_000_000,
    "llama-3.1": 128_000,
    "qwen": 32_768,
}
DEFAULT_CONTEXT = 32_768


def estimate_tokens(text: str) -> int:
    """About 3.5 characters a token for English papers with LaTeX: slightly pessimistic, so an
    estimate errs towards dropping a little more rather than overflowing the context."""
    return int(len(text) / 3.5) + 1


def server_token_counter(base_url: str) -> TokenCounter:
    """Exact counts from a llama.cpp server's ``/tokenize`` (the embedded model has one)."""
    root = base_url.rstrip("/").removesuffix("/v1")

    def count(text: str) -> int:
        request = urllib.request.Request(
            root + "/tokenize",
            method="POST",
            data=json.dumps({"content": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return len(json.loads(response.read())["tokens"])

    return count


def context_window(model: str) -> int:
    name = model.lower()
    for key, size in CONTEXT_WINDOWS.items():
        if key in name:
            return size
    return DEFAULT_CONTEXT


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


def fit_to_budget(paper: Paper, budget: int, count: TokenCounter = estimate_tokens) -> FitResult:
    """A copy of ``paper`` whose markdown fits in ``budget`` tokens (the method stays)."""
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
    # Still too long: keep only the first paragraph of the longest non-method sections.
    order = sorted((s for s in paper.walk() if s.role != "method"), key=lambda s: -s.words)
    for section in order:
        first = section.text.split("\n\n", 1)[0]
        if first != section.text:
            section.text = first + "\n\n[rest of section omitted]"
            dropped.append(f"most of {section.heading}")
            tokens = size()
            if tokens <= budget:
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
