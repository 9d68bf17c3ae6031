"""The paper loaders on the shared sample papers: roles, views, PDF vs LaTeX."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from ablationkit.papers import author_view, load_paper, reviewer_view
from ablationkit.papers.latex import heading_text
from ablationkit.papers.roles import normalise_heading
from conftest import SHARED

PROJECTS = sorted(p for p in (SHARED / "papers").glob("*") if (p / "meta.json").exists())


def _meta(project: Path) -> dict[str, str]:
    return json.loads((project / "meta.json").read_text("utf-8"))


def _section(paper, project: Path, key: str):  # type: ignore[no-untyped-def]
    wanted = normalise_heading(heading_text(project / "source", _meta(project)[key]))
    matches = [s for s in paper.walk() if normalise_heading(s.title) == wanted]
    assert len(matches) == 1, (
        f"{key}: {wanted!r} not found once in {[s.title for s in paper.walk()]}"
    )
    return matches[0]


def _sentences(text: str, min_words: int = 8) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [p for p in parts if len(p.split()) >= min_words and "$" not in p]


def test_projects_are_there(papers_dir: Path) -> None:
    assert len(PROJECTS) >= 3


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_main_file_and_title(project: Path) -> None:
    paper = load_paper(project)
    assert paper.format == "latex"
    assert normalise_heading(paper.title) == normalise_heading(_meta(project)["title"])
    assert len(paper.abstract.split()) > 50
    assert not paper.warnings


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_method_and_ablation_roles_land_on_the_named_headings(project: Path) -> None:
    paper = load_paper(project)
    method = _section(paper, project, "method_section_heading")
    ablation = _section(paper, project, "ablation_section_heading")
    assert all(s.role == "method" for s in method.walk())
    assert all(s.role == "ablation" for s in ablation.walk())
    others = [s for s in paper.walk() if s.role == "method" and s not in list(method.walk())]
    assert not others, f"other sections marked method: {[s.title for s in others]}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_author_view_has_the_method_and_nothing_of_the_ablation(project: Path) -> None:
    paper = load_paper(project)
    method = _section(paper, project, "method_section_heading")
    ablation = _section(paper, project, "ablation_section_heading")
    view_text = " ".join(author_view(paper).to_markdown().split())
    method_text = " ".join(s.text for s in method.walk())
    ablation_text = " ".join(s.text for s in ablation.walk())
    assert all(s in view_text for s in _sentences(method_text))
    assert _sentences(ablation_text), "the ablation section has text to check against"
    leaked = [s for s in _sentences(ablation_text) if s in view_text]
    assert not leaked, leaked[:2]
    roles = {s.role for s in author_view(paper).walk()}
    assert roles.isdisjoint({"experiments", "ablation", "appendix"})
    assert paper.title in view_text and paper.abstract.split()[0] in view_text


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_reviewer_view_is_the_whole_paper(project: Path) -> None:
    paper = load_paper(project)
    full = reviewer_view(paper)
    assert [s.title for s in full.walk()] == [s.title for s in paper.walk()]
    ablation = _section(paper, project, "ablation_section_heading")
    assert ablation.text.split(".")[0] in full.to_markdown()
    without = reviewer_view(paper, include_appendix=False)
    assert all(not s.appendix for s in without.walk())


PDF_PROJECTS = [p for p in PROJECTS if (p / "paper.pdf").exists()]


@pytest.mark.parametrize("project", PDF_PROJECTS, ids=lambda p: p.name)
def test_pdf_has_the_same_top_level_sections_as_the_latex(project: Path) -> None:
    from_pdf = load_paper(project / "paper.pdf")
    from_tex = load_paper(project)
    assert from_pdf.format == "pdf"
    assert [normalise_heading(s.title) for s in from_pdf.sections] == [
        normalise_heading(s.title) for s in from_tex.sections
    ]
    assert [s.role for s in from_pdf.sections] == [s.role for s in from_tex.sections]
    assert normalise_heading(from_pdf.title) == normalise_heading(from_tex.title)
    # The text itself agrees too: most words of the LaTeX method are in the PDF's method.
    tex_method = " ".join(s.text for s in from_tex.walk() if s.role == "method").split()
    pdf_method = set(" ".join(s.text for s in from_pdf.walk() if s.role == "method").split())
    plain = [w for w in tex_method if w.isalpha()]
    assert sum(w in pdf_method for w in plain) / len(plain) > 0.9


_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


@pytest.mark.parametrize("project", PDF_PROJECTS, ids=lambda p: p.name)
def test_pdf_words_broken_at_line_ends_are_mended_as_the_latex_writes_them(
    project: Path,
) -> None:
    """The PDF's hyphenated line ends, against the LaTeX source's words: no compound joined
    ("scikitlearn", "state-of-theart", "modelfree"), no word left in two ("asso ciated",
    "CIFAR- 10", a paragraph ending "For CIFAR-"), no control character."""
    pdf = load_paper(project / "paper.pdf").to_markdown()
    tex = load_paper(project).to_markdown()
    tex_words = set(_WORD.findall(tex.lower()))
    unhyphenated = {w.replace("-", ""): w for w in tex_words if "-" in w}
    tokens = _WORD.findall(pdf.lower())
    joined = {t for t in tokens if t not in tex_words and t.replace("-", "") in unhyphenated}
    assert not joined, [unhyphenated[t.replace("-", "")] for t in joined]
    split = [
        f"{a} {b}"
        for a, b in itertools.pairwise(tokens)
        if a not in tex_words and b not in tex_words and a + b in tex_words
    ]
    assert not split
    assert not re.findall(r"\w[-\u2010] \w", pdf)  # within a paragraph
    assert not re.findall(r"\w[-\u2010]\n", pdf)  # "For CIFAR-" before a figure and a table
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", pdf)
