"""AblationBench's per-paper scores, reproduced exactly (``--protocol ablationbench``).

Our own protocol scores index pairs (planned i matches target j) at top-k. The reference scores
the *names* its judge wrote, with rules that differ in ways that move the numbers: names are
compared byte for byte; in author mode a judge line that names something outside the ground
truth still takes its plan items out of the false positives, a list-valued ``name_in_plan``
matches only when every name is in the plan, and false positives count *distinct* plan names;
in reviewer mode the counts come from the judge's lines (duplicates count twice) and are capped
by the number of ablations the reviewers asked for. Plans are never cut to k unless ``top_k`` is
given, as there. Every zero denominator gives 0, as scikit-learn's ``zero_division`` default does.

The formulas, per paper:
- author: TP = ground-truth items matched; FP = distinct plan names matched to nothing;
  FN = |GT| - TP; precision = TP/(TP+FP), recall = TP/|GT|, F1 = 2TP/(2TP+FP+FN);
- reviewer: N = ``num_ablation_suggestions``, a/n = lines judged appearing / not appearing,
  o = min(a, N); precision = o/(o+n), recall = o/N, F1 = 2o/(2o+n+N-o).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

PlanName = str | list[str] | None


@dataclass(frozen=True)
class AuthorLine:
    """One line of an author-mode judge file: a ground-truth name and the plan name(s) that
    match it (None: no match)."""

    name_in_paper: str
    name_in_plan: PlanName = None

    @property
    def label(self) -> bool:
        return self.name_in_plan is not None

    def to_json(self) -> dict[str, Any]:
        return {"name_in_paper": self.name_in_paper, "name_in_plan": self.name_in_plan}


@dataclass(frozen=True)
class ReviewerLine:
    """One line of a reviewer-mode judge file: a plan name and whether the reviews ask for it."""

    name_in_plan: str
    appears_in_review: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name_in_plan": self.name_in_plan, "appears_in_review": self.appears_in_review}


@dataclass(frozen=True)
class ReferenceScore:
    """One paper's confusion counts and the scores they give under the reference's rules."""

    tp: int
    fp: int
    fn: int
    ndcg: float | None = None

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }
        if self.ndcg is not None:
            out["ndcg"] = self.ndcg
        return out


def _plan_names_of(line: AuthorLine) -> list[str]:
    if isinstance(line.name_in_plan, list):
        return list(line.name_in_plan)
    return [] if line.name_in_plan is None else [line.name_in_plan]


def author_labels(
    lines: Sequence[AuthorLine],
    ground_truth: Sequence[str | None],
    plan: Sequence[str | None],
) -> tuple[list[bool], list[bool]]:
    """The reference's (true, predicted) label lists: one pair per ground-truth item (matched or
    not), then one (False, True) pair per distinct plan name that no line names."""
    plan_set = set(plan)
    true_labels = [True] * len(ground_truth)
    pred_labels = [
        any(
            line.name_in_paper == target
            and line.label
            and all(name in plan_set for name in _plan_names_of(line))
            for line in lines
        )
        for target in ground_truth
    ]
    claimed = {name for line in lines for name in _plan_names_of(line)}
    unmatched = len(plan_set - claimed)
    return true_labels + [False] * unmatched, pred_labels + [True] * unmatched


def _dcg(labels: Sequence[bool]) -> float:
    return sum(int(label) / math.log2(i + 2) for i, label in enumerate(labels))


def ndcg(true_labels: Sequence[bool], pred_labels: Sequence[bool], k: int) -> float:
    """The reference's NDCG over the label lists (not a ranking metric of the plan order: it
    reads the lists in the order :func:`author_labels` builds them)."""
    ideal = _dcg(true_labels[:k])
    return _dcg(pred_labels[:k]) / ideal if ideal else 0.0


def score_author(
    lines: Sequence[AuthorLine],
    ground_truth: Sequence[str | None],
    plan: Sequence[str | None],
    *,
    top_k: int | None = None,
) -> ReferenceScore:
    """Author-mode score of one paper; ``top_k`` (falsy: all) keeps the first plan lines only."""
    plan = list(plan[:top_k]) if top_k else list(plan)
    true_labels, pred_labels = author_labels(lines, ground_truth, plan)
    tp = sum(1 for t, p in zip(true_labels, pred_labels, strict=True) if t and p)
    fp = sum(1 for t, p in zip(true_labels, pred_labels, strict=True) if p and not t)
    fn = sum(1 for t, p in zip(true_labels, pred_labels, strict=True) if t and not p)
    k = min(len(plan), len(ground_truth))
    return ReferenceScore(tp=tp, fp=fp, fn=fn, ndcg=ndcg(true_labels, pred_labels, k))


def score_reviewer(
    lines: Sequence[ReviewerLine], num_suggestions: int, *, top_k: int | None = None
) -> ReferenceScore:
    """Reviewer-mode score of one paper, from the judge's lines (not from the plan)."""
    lines = list(lines[:top_k]) if top_k else list(lines)
    appearing = sum(1 for line in lines if line.appears_in_review)
    overlap = min(appearing, num_suggestions)
    not_appearing = len(lines) - appearing
    return ReferenceScore(
        tp=overlap, fp=not_appearing, fn=max(0, num_suggestions - overlap), ndcg=None
    )


def majority_author(judges: Iterable[Sequence[AuthorLine]]) -> list[AuthorLine]:
    """Per ground-truth name, the plan name (or list, order ignored, or None) that more than half
    of the votes for that name gave; None when no value has a majority. Ties between equally
    common values go to the one seen first, as ``Counter.most_common`` orders them."""
    votes: dict[str, list[str | frozenset[str] | None]] = defaultdict(list)
    for lines in judges:
        for line in lines:
            if not line.name_in_paper:
                continue
            vote = line.name_in_plan
            votes[line.name_in_paper].append(frozenset(vote) if isinstance(vote, list) else vote)
    out = []
    for name, cast in votes.items():
        winner, count = Counter(cast).most_common(1)[0]
        value = winner if count > len(cast) // 2 else None
        kept: PlanName = sorted(value) if isinstance(value, frozenset) else value
        out.append(AuthorLine(name_in_paper=name, name_in_plan=kept))
    return out


def majority_reviewer(judges: Iterable[Sequence[ReviewerLine]]) -> list[ReviewerLine]:
    """Per plan name, "appears" when more than half of the votes for that name say so."""
    votes: dict[str, list[bool]] = defaultdict(list)
    for lines in judges:
        for line in lines:
            if line.name_in_plan:
                votes[line.name_in_plan].append(bool(line.appears_in_review))
    return [
        ReviewerLine(name_in_plan=name, appears_in_review=sum(cast) > len(cast) // 2)
        for name, cast in votes.items()
    ]


def mean_scores(scores: Sequence[ReferenceScore | None]) -> dict[str, float]:
    """The plain mean over papers; a paper whose plan or judgement failed (None) counts as 0."""
    if not scores:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    n = len(scores)
    return {
        key: sum(getattr(s, key) for s in scores if s is not None) / n
        for key in ("precision", "recall", "f1")
    }
