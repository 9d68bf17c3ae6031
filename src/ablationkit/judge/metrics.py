"""Precision, recall and F1 at top-k, per paper and aggregated, with bootstrap intervals;
and how well a judge agrees with human labels.

Precision is matches / k (the number of ablations asked for), as the README says: a plan that
gives 2 ablations where 5 were asked scores at most 0.4. A paper whose plan or judgement failed
counts as 0 in every figure (precision, recall and F1): excluding it would flatter a model or a
judge that fails often. The figures say how many papers failed and which.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, Field, computed_field

from ablationkit.schema import Judgement


@dataclass(frozen=True)
class PaperScore:
    """One paper's counts at k, and the precision, recall and F1 they give (computed once:
    a bootstrap reads them a million times). ``planned`` is the denominator of precision: k.

    ``error`` set: the paper's plan or judgement failed, and every figure is 0 (recall too,
    never None: a failure is not "no targets to recall").
    """

    paper_id: str
    planned: int
    matched_planned: int
    targets: int
    matched_targets: int
    error: str | None = None
    precision: float = field(init=False)
    recall: float | None = field(init=False)  # None: no targets, so no recall to speak of
    f1: float = field(init=False)

    def __post_init__(self) -> None:
        recall: float | None
        if self.error is not None:
            precision, recall = 0.0, 0.0
        else:
            precision = self.matched_planned / self.planned if self.planned else 0.0
            recall = self.matched_targets / self.targets if self.targets else None
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "recall", recall)
        object.__setattr__(self, "f1", _f1(precision, recall or 0.0))

    @classmethod
    def failure(cls, paper_id: str, error: str, *, k: int, targets: int = 0) -> PaperScore:
        """A paper that has no usable verdict: 0 matches of ``k`` and of ``targets`` (so the
        micro figures count what it should have found, too)."""
        return cls(paper_id, k, 0, targets, 0, error=error)


def score_judgement(judgement: Judgement, *, k: int | None = None) -> PaperScore:
    """The paper's score at ``k`` (default: the judgement's own k).

    Precision divides by ``k``, not by the number of ablations planned. Pass the k the plans
    were asked for: a judge sets a judgement's k no higher than the plan's length, so a short
    plan would otherwise be scored over its own length. Matches beyond ``k`` do not count. A
    failed judgement scores 0 (``PaperScore.error`` says why).
    """
    top = judgement.k if k is None else k
    targets = len(judgement.targets) if judgement.targets else (judgement.target_count or 0)
    if judgement.error is not None:
        return PaperScore.failure(judgement.paper_id, judgement.error, k=top, targets=targets)
    within = min(top, judgement.k)
    matched_planned = len({m.planned for m in judgement.matches if m.planned < within})
    if judgement.targets or not judgement.target_count:
        matched_targets = len({m.target for m in judgement.matches if m.planned < within})
    else:  # only a count of requests: AblationBench's overlap, capped at that count
        matched_targets = min(matched_planned, targets)
    return PaperScore(
        paper_id=judgement.paper_id,
        planned=top,
        matched_planned=matched_planned,
        targets=targets,
        matched_targets=matched_targets,
    )


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def macro_prf(scores: Sequence[PaperScore]) -> dict[str, float]:
    """Macro precision, recall and F1 over papers: recall is the mean over papers that have
    targets; a failed paper is 0 in all three."""
    if not scores:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    recalls = [s.recall for s in scores if s.recall is not None]
    return {
        "precision": sum(s.precision for s in scores) / len(scores),
        "recall": sum(recalls) / len(recalls) if recalls else 0.0,
        "f1": sum(s.f1 for s in scores) / len(scores),
    }


def _micro(scores: Sequence[PaperScore]) -> dict[str, float]:
    planned = sum(s.planned for s in scores)
    targets = sum(s.targets for s in scores)
    p = sum(s.matched_planned for s in scores) / planned if planned else 0.0
    r = sum(s.matched_targets for s in scores) / targets if targets else 0.0
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


def bootstrap_ci(
    scores: Sequence[PaperScore],
    statistic: Callable[[Sequence[PaperScore]], dict[str, float]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals over papers resampled with replacement (seeded: reproducible)."""
    if not scores:
        return {}
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(resamples):
        draw = rng.choices(scores, k=len(scores))
        for key, value in statistic(draw).items():
            samples.setdefault(key, []).append(value)
    low_q, high_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    out = {}
    for key, values in samples.items():
        values.sort()
        out[key] = (
            values[int(low_q * (len(values) - 1))],
            values[round(high_q * (len(values) - 1))],
        )
    return out


class Metrics(BaseModel):
    """Precision, recall and F1 (macro: means over papers; micro: of pooled counts)."""

    precision: float = 0.0
    recall: float = 0.0
    f1: float = 0.0


class PaperResult(BaseModel):
    """``PaperScore`` as stored in ``scores.json`` (same keys, plus ``error``)."""

    paper_id: str
    planned: int
    matched_planned: int
    targets: int
    matched_targets: int
    precision: float
    recall: float | None
    f1: float
    error: str | None = None


class JudgeScores(BaseModel):
    """One judge's figures over a set of papers (``aggregate``); ``scores.json`` per judge.

    ``papers`` counts every paper in the figures, failed ones included (as 0). ``errors`` /
    ``error_ids`` are the papers whose judgement failed, ``plan_failures`` /
    ``plan_failure_ids`` those that had no plan to judge. ``failed``: the judge gave no verdict
    at all (every judgement it made failed, e.g. no API key): its zeros rank nothing.
    """

    papers: int = 0
    errors: int = 0
    error_ids: list[str] = Field(default_factory=list)
    plan_failures: int = 0
    plan_failure_ids: list[str] = Field(default_factory=list)
    failed: bool = False
    macro: Metrics = Field(default_factory=Metrics)
    micro: Metrics = Field(default_factory=Metrics)
    macro_ci95: dict[str, tuple[float, float]] = Field(default_factory=dict)
    per_paper: dict[str, PaperResult] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]  # pydantic documents this pattern
    @property
    def failures(self) -> int:
        """Papers counted as 0 because their plan or their judgement failed."""
        return self.errors + self.plan_failures

    @property
    def failed_ids(self) -> list[str]:
        """Which papers those are."""
        return sorted({*self.error_ids, *self.plan_failure_ids})


def aggregate(
    judgements: Sequence[Judgement],
    *,
    plan_failures: Iterable[PaperScore] = (),
    k: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> JudgeScores:
    """Macro and micro P/R/F1 over papers with 95% bootstrap intervals.

    ``judgements`` failed (``error`` set) and ``plan_failures`` (``PaperScore.failure`` of
    papers whose plan failed, so there was nothing to judge) count as 0, and are listed. ``k``:
    the k the plans were asked for (see ``score_judgement``).
    """
    scores = [score_judgement(j, k=k) for j in judgements]
    errors = [j.paper_id for j in judgements if j.error is not None]
    unplanned = [s for s in plan_failures if s.error is not None]
    everything = scores + unplanned
    macro = macro_prf(everything)
    return JudgeScores(
        papers=len(everything),
        errors=len(errors),
        error_ids=errors,
        plan_failures=len(unplanned),
        plan_failure_ids=[s.paper_id for s in unplanned],
        failed=bool(judgements) and len(errors) == len(judgements),
        macro=Metrics(**macro),
        micro=Metrics(**_micro(everything)),
        macro_ci95=bootstrap_ci(everything, macro_prf, resamples=resamples, seed=seed),
        per_paper={s.paper_id: PaperResult(**asdict(s)) for s in everything},
    )


def prf(predicted: set[Any], actual: set[Any]) -> dict[str, float]:
    tp = len(predicted & actual)
    p = tp / len(predicted) if predicted else (1.0 if not actual else 0.0)
    r = tp / len(actual) if actual else 1.0
    return {"precision": p, "recall": r, "f1": _f1(p, r), "support": len(actual)}


def judge_agreement(
    predicted: Sequence[Judgement], labelled: Sequence[Judgement]
) -> dict[str, Any]:
    """A judge against human labels, paired by paper id.

    ``items`` is AblationBench's view: author mode asks, per ground-truth ablation, "was it
    matched?"; reviewer mode asks, per suggestion, "does it appear in the reviews?". ``pairs``
    is the stricter per (planned, target) pair view. A failed judgement counts as an error
    and as a verdict of no matches: its labelled matches are missed, never left out (which
    would flatter a judge that fails often)."""
    gold = {j.paper_id: j for j in labelled}
    item_pred: set[tuple[str, int]] = set()
    item_gold: set[tuple[str, int]] = set()
    pair_pred: set[tuple[str, int, int]] = set()
    pair_gold: set[tuple[str, int, int]] = set()
    errors = 0
    for judgement in predicted:
        truth = gold.get(judgement.paper_id)
        if truth is None:
            continue
        author = truth.mode == "author"
        if judgement.error is not None:
            errors += 1
        else:
            for m in judgement.matches:
                item_pred.add((judgement.paper_id, m.target if author else m.planned))
                pair_pred.add((judgement.paper_id, m.planned, m.target))
        for m in truth.matches:
            item_gold.add((truth.paper_id, m.target if author else m.planned))
            pair_gold.add((truth.paper_id, m.planned, m.target))
    return {
        "items": prf(item_pred, item_gold),
        "pairs": prf(pair_pred, pair_gold),
        "errors": errors,
        "papers": len(gold),
    }
