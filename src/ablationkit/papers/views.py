"""What each planner mode may read.

Author mode imitates an author before the experiments exist: title, abstract and the paper up
to and including its method. Reviewer mode reads the whole submission, appendix included.
"""

from __future__ import annotations

from ablationkit.papers.model import Paper, Section
from ablationkit.schema import Mode

View = Mode  # a view is named by the planner mode that reads it (``schema.Mode``)
_AUTHOR_EXCLUDED = {"experiments", "ablation", "appendix", "conclusion"}


def _prune(section: Section, excluded: set[str]) -> Section | None:
    if section.role in excluded:
        return None
    children = [c for c in (_prune(child, excluded) for child in section.children) if c]
    return section.model_copy(update={"children": children})


def author_view(paper: Paper) -> Paper:
    """Title, abstract and every section up to the last method section; nothing after it,
    and nothing of experiments, ablations, conclusions or the appendix before it either."""
    top = paper.sections
    method_positions = [i for i, s in enumerate(top) if any(x.role == "method" for x in s.walk())]
    if not method_positions:
        kept: list[Section] = []
        warnings = [
            *paper.warnings,
            "author view: no method section found; only the title "
            "and abstract are kept (name one with --method-section)",
        ]
    else:
        kept = [
            p for p in (_prune(s, _AUTHOR_EXCLUDED) for s in top[: method_positions[-1] + 1]) if p
        ]
        warnings = list(paper.warnings)
    return paper.model_copy(update={"sections": kept, "warnings": warnings})


def reviewer_view(paper: Paper, *, include_appendix: bool = True) -> Paper:
    """The whole paper; the appendix can be left out to save context."""
    if include_appendix:
        return paper.model_copy()
    kept = [p for p in (_prune(s, {"appendix"}) for s in paper.sections) if p]
    return paper.model_copy(update={"sections": kept})


def view(paper: Paper, mode: View, *, include_appendix: bool = True) -> Paper:
    if mode == "author":
        return author_view(paper)
    if mode == "reviewer":
        return reviewer_view(paper, include_appendix=include_appendix)
    raise ValueError(f"unknown view {mode!r}: use author or reviewer")
