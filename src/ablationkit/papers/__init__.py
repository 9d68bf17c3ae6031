"""Papers in: LaTeX projects, PDF, markdown and text, as one ``Paper`` with section roles."""

from __future__ import annotations

from pathlib import Path

from ablationkit.papers.loader import load_paper
from ablationkit.papers.model import ROLES, Paper, Role, Section
from ablationkit.papers.roles import assign_roles, find_sections
from ablationkit.papers.views import author_view, reviewer_view, view


def sample_paper_path() -> Path:
    """The LaTeX project of the paper that ships with AblationKit (written for the project,
    CC-BY 4.0), for demos, tests and the README's first command."""
    return Path(__file__).resolve().parent.parent / "data" / "sample_paper"


__all__ = [
    "ROLES",
    "Paper",
    "Role",
    "Section",
    "assign_roles",
    "author_view",
    "find_sections",
    "load_paper",
    "reviewer_view",
    "sample_paper_path",
    "view",
]
