"""``--protocol ablationbench`` scores equal the reference's per-paper formulas (issue 12).

The oracle below restates the formulas from the confusion counts directly, written separately
from ``ablationkit.ablationbench.scoring`` (which builds the reference's label lists): TP, FP and
FN are counted here item by item, and precision/recall/F1 come from them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ablationkit.ablationbench.scoring import (
    AuthorLine,
    ReferenceScore,
    ReviewerLine,
    majority_author,
    majority_reviewer,
    mean_scores,
    score_author,
    score_reviewer,
)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    return p, r, f


def oracle_author(
    lines: list[AuthorLine], gt: list[str], plan: list[str], top_k: int | None = None
) -> tuple[float, float, float]:
    if top_k:
        plan = plan[:top_k]
    tp = 0
    for target in gt:
        for line in lines:
            plain = line.name_in_plan
            names = plain if isinstance(plain, list) else [plain]
            if line.name_in_paper == target and plain is not None and all(n in plan for n in names):
                tp += 1
                break
    mentioned: set[str] = set()
    for line in lines:
        if isinstance(line.name_in_plan, list):
            mentioned.update(line.name_in_plan)
        elif line.name_in_plan is not None:
            mentioned.add(line.name_in_plan)
    fp = len(set(plan) - mentioned)
    return _prf(tp, fp, len(gt) - tp)


def oracle_reviewer(
    lines: list[ReviewerLine], n: int, top_k: int | None = None
) -> tuple[float, float, float]:
    if top_k:
        lines = lines[:top_k]
    a = sum(line.appears_in_review for line in lines)
    o = min(a, n)
    not_appearing = len(lines) - a
    p = o / (o + not_appearing) if o + not_appearing else 0.0
    r = o / n if n else 0.0
    f = 2 * o / (2 * o + not_appearing + (n - o)) if 2 * o + not_appearing + (n - o) else 0.0
    return p, r, f


def _close(score: ReferenceScore, expected: tuple[float, float, float]) -> None:
    assert score.precision == pytest.approx(expected[0], abs=1e-9)
    assert score.recall == pytest.approx(expected[1], abs=1e-9)
    assert score.f1 == pytest.approx(expected[2], abs=1e-9)


GT = ["No KL", "Swap encoder", "Batch size sweep"]
PLAN = ["Remove KL term", "Replace encoder", "Vary batch", "Add dropout"]

AUTHOR_CASES = {
    "one plan item covers two ground-truth items": (
        [AuthorLine("No KL", "Remove KL term"), AuthorLine("Swap encoder", "Remove KL term")],
        GT,
        PLAN,
        (2 / 5, 2 / 3, 4 / 8),
    ),
    "two plan items on one ground-truth item (a list)": (
        [AuthorLine("No KL", ["Remove KL term", "Vary batch"])],
        GT,
        PLAN,
        (1 / 3, 1 / 3, 2 / 6),
    ),
    "a list with one name not in the plan matches nothing but clears the other": (
        [AuthorLine("No KL", ["Remove KL term", "Not in plan"])],
        GT,
        PLAN,
        (0.0, 0.0, 0.0),
    ),
    "a plan name differing in case or spaces is not in the plan": (
        [AuthorLine("No KL", "remove KL term"), AuthorLine("Swap encoder", "Replace encoder ")],
        GT,
        PLAN,
        (0.0, 0.0, 0.0),
    ),
    "a ground-truth name not exactly in the ground truth still clears its plan item": (
        [AuthorLine("no kl", "Remove KL term"), AuthorLine("Swap encoder", "Replace encoder")],
        GT,
        PLAN,
        (1 / 3, 1 / 3, 2 / 6),
    ),
    "duplicate plan lines count once as false positives": (
        [AuthorLine("No KL", "Remove KL term")],
        GT,
        [*PLAN, "Add dropout", "Add dropout"],
        (1 / 4, 1 / 3, 2 / 7),
    ),
    "duplicate judge lines do not double the match": (
        [AuthorLine("No KL", "Remove KL term"), AuthorLine("No KL", "Remove KL term")],
        GT,
        PLAN,
        (1 / 4, 1 / 3, 2 / 7),
    ),
    "an empty plan": ([], GT, [], (0.0, 0.0, 0.0)),
    "an empty plan with a judge that still claims a match": (
        [AuthorLine("No KL", "Remove KL term")],
        GT,
        [],
        (0.0, 0.0, 0.0),
    ),
    "a plan longer than k is scored in full": (
        [AuthorLine(g, p) for g, p in zip(GT, PLAN, strict=False)],
        GT,
        [*PLAN, "x1", "x2", "x3", "x4"],
        (3 / 8, 1.0, 6 / 11),
    ),
    "a null match is no match": (
        [AuthorLine("No KL", None)],
        GT,
        PLAN,
        (0.0, 0.0, 0.0),
    ),
}


@pytest.mark.parametrize("case", list(AUTHOR_CASES), ids=list(AUTHOR_CASES))
def test_author_edge_cases_equal_the_formulas(case: str) -> None:
    lines, gt, plan, expected = AUTHOR_CASES[case]
    score = score_author(lines, gt, plan)
    _close(score, expected)
    _close(score, oracle_author(lines, gt, plan))


REVIEWER_CASES = {
    "more appearing lines than the reviewers asked for": (
        [ReviewerLine(f"a{i}", True) for i in range(4)],
        2,
        (2 / 2, 1.0, 1.0),
    ),
    "duplicate lines count twice": (
        [ReviewerLine("x", True), ReviewerLine("x", True), ReviewerLine("y", False)],
        3,
        (2 / 3, 2 / 3, 4 / 6),
    ),
    "a line naming something not in the plan still counts": (
        [ReviewerLine("not in the plan", True)],
        2,
        (1.0, 0.5, 2 / 3),
    ),
    "no lines": ([], 2, (0.0, 0.0, 0.0)),
    "no requested ablations": ([ReviewerLine("x", False)], 0, (0.0, 0.0, 0.0)),
}


@pytest.mark.parametrize("case", list(REVIEWER_CASES), ids=list(REVIEWER_CASES))
def test_reviewer_edge_cases_equal_the_formulas(case: str) -> None:
    lines, n, expected = REVIEWER_CASES[case]
    score = score_reviewer(lines, n)
    _close(score, expected)
    _close(score, oracle_reviewer(lines, n))


def test_top_k_cuts_the_plan_in_author_mode_and_the_lines_in_reviewer_mode() -> None:
    lines = [AuthorLine("No KL", "Add dropout")]
    assert score_author(lines, GT, PLAN, top_k=2).tp == 0  # "Add dropout" is 4th
    assert score_author(lines, GT, PLAN).tp == 1
    rev = [ReviewerLine("a", False), ReviewerLine("b", True)]
    assert score_reviewer(rev, 1, top_k=1).tp == 0
    assert score_reviewer(rev, 1).tp == 1


names = st.sampled_from(["A", "B", "C", "a", "A ", "D", "E"])
plan_names = st.one_of(st.none(), names, st.lists(names, min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    gt=st.lists(names, max_size=5),
    plan=st.lists(names, max_size=7),
    lines=st.lists(st.builds(AuthorLine, names, plan_names), max_size=6),
    top_k=st.one_of(st.none(), st.integers(0, 6)),
)
def test_author_scores_equal_the_formulas_on_random_cases(
    gt: list[str], plan: list[str], lines: list[AuthorLine], top_k: int | None
) -> None:
    _close(score_author(lines, gt, plan, top_k=top_k), oracle_author(lines, gt, plan, top_k))


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.builds(ReviewerLine, names, st.booleans()), max_size=8),
    n=st.integers(0, 6),
    top_k=st.one_of(st.none(), st.integers(0, 6)),
)
def test_reviewer_scores_equal_the_formulas_on_random_cases(
    lines: list[ReviewerLine], n: int, top_k: int | None
) -> None:
    _close(score_reviewer(lines, n, top_k=top_k), oracle_reviewer(lines, n, top_k))


def test_majority_keeps_what_more_than_half_of_the_votes_say() -> None:
    j1 = [AuthorLine("A", "x"), AuthorLine("B", ["p", "q"])]
    j2 = [AuthorLine("A", "x"), AuthorLine("B", ["q", "p"])]
    j3 = [AuthorLine("A", None), AuthorLine("B", None)]
    got = {line.name_in_paper: line.name_in_plan for line in majority_author([j1, j2, j3])}
    assert got == {"A": "x", "B": ["p", "q"]}  # list order does not matter for a vote
    split = majority_author([[AuthorLine("A", "x")], [AuthorLine("A", "y")]])
    assert split == [AuthorLine("A", None)]  # 1 of 2 is not more than half
    r = majority_reviewer(
        [[ReviewerLine("x", True)], [ReviewerLine("x", True)], [ReviewerLine("x", False)]]
    )
    assert r == [ReviewerLine("x", True)]
    # only the judges that answered for an item vote on it
    assert majority_reviewer([[ReviewerLine("y", True)], []]) == [ReviewerLine("y", True)]


def test_a_failed_paper_counts_as_zero_in_the_mean() -> None:
    perfect = ReferenceScore(tp=2, fp=0, fn=0)
    assert mean_scores([perfect, None]) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
