"""Precision, recall and F1 at top-k, per paper and aggregated, with bootstrap intervals;
and how well a judge agrees with human labels."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ablationkit.schema import Judgement


@dataclass(frozen=True)
class PaperScore:
    """One paper's counts at k, and the precision, recall and F1 they give (computed once:
    a bootstrap reads them a million times)."""

    paper_id: str
    planned: int
    matched_planned: int
    targets: int
    matched_targets: int
    precision: float = field(init=False)
    recall: float | None = field(init=False)  # None: no targets, so no recall to speak of
    f1: float = field(init=False)

    def __post_init__(self) -> None:
        precision = self.matched_planned / self.planned if self.planned else 0.0
        recall = self.matched_targets / self.targets if self.targets else None
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "recall", recall)
        object.__setattr__(self, "f1", _f1(precision, recall or 0.0))


def score_judgement(judgement: Judgement) -> PaperScore | None:
    """The paper's score at the judgement's k; None for a judgement that failed."""
    if judgement.error is not None:
        return None
    matched_planned = len(judgement.matched_planned())
    if judgement.targets or not judgement.target_count:
        targets, matched_targets = len(judgement.targets), len(judgement.matched_targets())
    else:  # only a count of requests: AblationBench's overlap, capped at that count
        targets = judgement.target_count
        matched_targets = min(matched_planned, targets)
    return PaperScore(
        paper_id=judgement.paper_id,
        planned=min(judgement.k, len(judgement.planned)),
        matched_planned=matched_planned,
        targets=targets,
        matched_targets=matched_targets,
    )


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _macro(scores: Sequence[PaperScore]) -> dict[str, float]:
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


def aggregate(
    judgements: Sequence[Judgement], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Macro and micro P/R/F1 over papers, 95% bootstrap intervals, and the error count."""
    scores = [s for j in judgements if (s := score_judgement(j)) is not None]
    errors = [j.paper_id for j in judgements if j.error is not None]
    return {
        "papers": len(scores),
        "errors": len(errors),
        "error_ids": errors,
        "macro": _macro(scores),
        "micro": _micro(scores),
        "macro_ci95": {
            k: list(v)
            for k, v in bootstrap_ci(scores, _macro, resamples=resamples, seed=seed).items()
        },
        "per_paper": {s.paper_id: asdict(s) for s in scores},
    }


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
    is the stricter per (planned, target) pair view. Failed judgements count as errors.
    """
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
        if judgement.error is not None:
            errors += 1
            continue
        author = judgement.mode == "author"
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
