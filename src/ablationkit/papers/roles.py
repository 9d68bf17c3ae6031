"""Which section is the method, which the experiments, which the ablations.

Heuristics first (heading words, the system's name from the title, position in the paper);
a user who knows better names the sections with ``method=`` / ``ablation=`` (by number or
title), and that replaces the guess.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from ablationkit.errors import AblationKitError
from ablationkit.papers.model import Paper, Role, Section

_PATTERNS: dict[Role, tuple[str, ...]] = {
    "ablation": (
        r"\bablat",
        r"\bdesign (choices?|decisions?|space)\b",
        r"\bmodel variants?\b",
        r"\bvariants? of\b",
        r"\bcomponent(s|-wise)? (analysis|study|studies)\b",
        r"\banalysis of (the )?(model )?components\b",
        r"\bsensitivity\b",
        r"\bwhat matters\b",
        r"\bcontribution of (each|the|individual)\b",
    ),
    "related_work": (
        r"\brelated (work|works|literature|research|studies)\b",
        r"\b(prior|previous) (work|works|art)\b",
        r"\bliterature (review|survey)\b",
    ),
    "conclusion": (
        r"\bconclu",
        r"\bsummary and (future|outlook)\b",
        r"\bclosing remarks\b",
        r"\bfuture (work|directions)\b$",
        # "Limitations", "Limitations and Future Work", "Discussion and Limitations"
        r"^limitations?\b",
        r"\blimitations?$",
    ),
    "experiments": (
        r"\bexperiment",
        r"\bevaluat",
        r"\bresults?\b",
        r"\bempirical",
        r"\bbenchmark",
        r"\bassess",
        r"\bcomparisons?\b",
        r"\bcase stud",
        r"\bperformance\b",
        r"\bapplications?\b",
    ),
    "method": (
        r"\bmethods?\b",
        r"\bmethodology\b",
        r"\bapproach(es)?\b",
        r"\bproposed\b",
        r"\barchitectures?\b",
        r"\bframework\b",
        r"\balgorithms?\b",
        r"^(the |our )?[\w-]+( \w+)? (model|network|system|framework|method)$",
        r"^models?$",
        r"^our\b",
        r"\boverview of\b",
        r"\bformulation\b",
    ),
}
# Children of experiments that study one component are ablations in all but name.
_CHILD_ABLATION = (r"^(effects?|impacts?|influence|importance|role|choice) of\b", r"\bwithout\b")
_NEVER_METHOD = re.compile(
    r"\b(introduction|acknowledg|references|bibliography|background|"
    r"preliminar|notation|limitations?|broader impact|ethics)"
)
_ORDER: tuple[Role, ...] = ("ablation", "related_work", "conclusion", "experiments", "method")
# one compiled alternation per role: headings are classified for every paper of a batch
_ROLE_RES: dict[Role, re.Pattern[str]] = {
    role: re.compile("|".join(f"(?:{p})" for p in patterns)) for role, patterns in _PATTERNS.items()
}
_APPENDIX_TITLE = re.compile(r"^(appendix|appendices|supplementary|supplemental)\b")
# Back matter: never experiments, even where the outline nests it under them.
_BACK_MATTER = re.compile(
    r"\b(acknowledg\w*|references|bibliography|ethic\w*|broader impacts?|societal impacts?|"
    r"reproducibility|author contributions?|funding)\b"
)


def normalise_heading(text: str) -> str:
    """Lower-case words only: what two spellings of one heading have in common."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"\\[A-Za-z@]+", " ", text)  # LaTeX commands in a meta.json heading
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def system_names(title: str) -> list[str]:
    """Names the paper gives its system: "MaskGIT: …" -> MaskGIT, plus coined words."""
    names: list[str] = []
    if ":" in title:
        head = title.split(":", 1)[0].strip()
        if 0 < len(head.split()) <= 3:
            names.append(head)
    for word in re.findall(r"\b[\w-]*[A-Za-z][\w-]*\b", title):
        inner_caps = re.search(r"[a-z].*[A-Z]|[A-Z]{2,}", word)
        if inner_caps and len(word) >= 3 and word not in names:
            names.append(word)
    return names


def _keyword_role(title: str) -> Role | None:
    norm = normalise_heading(title)
    for role in _ORDER:
        if _ROLE_RES[role].search(norm):
            if role == "method" and _NEVER_METHOD.search(norm):
                return None
            return role
    return None


def _set_role(section: Section, role: Role) -> None:
    for s in section.walk():
        s.role = role


def assign_roles(
    paper: Paper,
    *,
    method: Sequence[str] | str | None = None,
    ablation: Sequence[str] | str | None = None,
) -> Paper:
    """Set ``role`` on every section (in place) and return the paper."""
    names = [normalise_heading(n) for n in system_names(paper.title)]
    top = paper.sections
    guesses: list[Role | None] = []
    for section in top:
        norm = normalise_heading(section.title)
        if section.appendix or _APPENDIX_TITLE.match(norm):
            guesses.append("appendix")
            continue
        role = _keyword_role(section.title)
        if (
            role is None
            and names
            and not _NEVER_METHOD.search(norm)
            and any(n and re.search(rf"\b{re.escape(n)}\b", norm) for n in names)
        ):
            role = "method"
        guesses.append(role)

    first_exp = next(
        (i for i, g in enumerate(guesses) if g in {"experiments", "ablation"}), len(top)
    )
    if not any(g == "method" for g in guesses[:first_exp]):
        # No heading says "method": take the sections between the introduction (and related
        # work / background) and the first experiments section.
        for i in range(first_exp):
            norm = normalise_heading(top[i].title)
            if guesses[i] is None and i > 0 and not _NEVER_METHOD.search(norm):
                guesses[i] = "method"
    last_method = max((i for i, g in enumerate(guesses) if g == "method"), default=-1)
    for i, section in enumerate(top):
        role = guesses[i]
        if role is None:
            after_method = last_method >= 0 and i > last_method
            role = "experiments" if after_method and _is_body(section) else "other"
        _set_role(section, role)
        if role in {"experiments", "method", "other"}:
            _mark_child_ablations(section, experiments=role == "experiments")
        _relabel_back_matter(section)

    if method is not None:
        _override(paper, method, "method")
    if ablation is not None:
        _override(paper, ablation, "ablation")
    return paper


def _is_body(section: Section) -> bool:
    return not _BACK_MATTER.search(normalise_heading(section.title))


def _relabel_back_matter(section: Section) -> None:
    """Sections under experiments or ablations that are limitations (conclusion) or back
    matter such as acknowledgements (other): an outline nests an unnumbered "Limitations" or
    "Acknowledgements" under the section before it, and they inherited its role."""
    for child in section.children:
        if child.role in {"experiments", "ablation"}:
            norm = normalise_heading(child.title)
            if _keyword_role(child.title) == "conclusion":
                _set_role(child, "conclusion")
            elif _BACK_MATTER.search(norm):
                _set_role(child, "other")
        _relabel_back_matter(child)


def _mark_child_ablations(section: Section, *, experiments: bool) -> None:
    for child in section.children:
        norm = normalise_heading(child.title)
        if _keyword_role(child.title) == "ablation" or (
            experiments and any(re.search(p, norm) for p in _CHILD_ABLATION)
        ):
            _set_role(child, "ablation")
        else:
            _mark_child_ablations(child, experiments=experiments)


def find_sections(paper: Paper, specs: Iterable[str]) -> list[Section]:
    """Sections named by number (``3``, ``3.1``, ``A``) or title (exact, then substring)."""
    found: list[Section] = []
    sections = list(paper.walk())
    for spec in specs:
        key = spec.strip().rstrip(".")
        by_number = [s for s in sections if s.number and s.number.rstrip(".") == key]
        norm = normalise_heading(key)
        exact = [s for s in sections if normalise_heading(s.title) == norm]
        partial = [s for s in sections if norm and norm in normalise_heading(s.title)]
        match = by_number or exact or partial
        if not match:
            available = "; ".join(s.heading for s in sections[:12])
            if len(sections) > 12:
                available += f"; … {len(sections) - 12} more"
            raise AblationKitError(f'no section "{spec}" in the paper (sections: {available})')
        found.append(match[0])
    return found


def _override(paper: Paper, specs: Sequence[str] | str, role: Role) -> None:
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    chosen = find_sections(paper, specs)
    for section in paper.walk():
        if section.role == role:
            section.role = "other" if role == "method" else _parent_role(paper, section)
    for section in chosen:
        _set_role(section, role)


def _parent_role(paper: Paper, target: Section) -> Role:
    def visit(sections: list[Section], parent: Role) -> Role | None:
        for s in sections:
            if s is target:
                return parent if parent != "ablation" else "experiments"
            found = visit(s.children, s.role)
            if found:
                return found
        return None

    return visit(paper.sections, "experiments") or "experiments"
