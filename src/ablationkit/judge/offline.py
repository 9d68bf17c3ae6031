"""The validated offline judge: two small models fitted on labelled pairs, no LM call.

Why two: the labelling rules (``benchmarks/data/README.md``) make a match the conjunction
of "same component" (M1) and "compatible change" (M2/M3), and the labels say which one
failed (``H1``: same component, other change). So one logistic model learns
P(same component) from all pairs, a second learns P(compatible change | same component)
from the pairs whose component is the same, and a pair's score is their product. On the
labelled set this beat one model over all features (0.84 against 0.80 pair F1,
leave-one-paper-out, both with a one-to-one assignment), and both beat the cosine-only
embedding judge (0.65 with its threshold cross-validated the same way).

A pair matches when its score reaches the fitted threshold. Unlike the embedding judge,
there is no one-to-one assignment: the labelling rules (and AblationBench's judge) let two
planned ablations match one target, and one planned ablation match two overlapping targets
(E4); the Hungarian assignment capped recall below what the labels hold (0.84 against 0.88
pair F1 with the same features, leave-one-paper-out). The fitted model ships as package data
(``data/offline-judge.json``) together with its out-of-fold agreement, which
``bench score`` prints beside the scores it judged. ``fit_offline_model`` refits it
(``benchmarks/fit_offline_judge.py``), ``cross_validate`` measures it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ablationkit.errors import AblationKitError, FormatError
from ablationkit.judge.base import blank_judgement
from ablationkit.judge.embedding import EmbeddingJudge
from ablationkit.judge.pair_features import CHANGE_FEATURES, COMPONENT_FEATURES, pair_features
from ablationkit.schema import Ablation, Judgement, Match, Plan

MODEL_FILE = "offline-judge.json"
L2 = 1.0


@dataclass
class Logistic:
    """A standardised logistic regression: ``sigmoid(((x - mean) / scale) @ weights + bias)``."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float

    def predict(self, rows: Sequence[dict[str, float]]) -> list[float]:
        import numpy as np

        x = np.array([[row[name] for name in self.features] for row in rows], dtype=float)
        if not len(x):
            return []
        z = ((x - self.mean) / self.scale) @ np.array(self.weights) + self.bias
        return [float(v) for v in 1 / (1 + np.exp(-z))]


def fit_logistic(
    rows: Sequence[dict[str, float]],
    labels: Sequence[bool],
    features: Sequence[str],
    *,
    l2: float = L2,
) -> Logistic:
    """Ridge-penalised logistic regression by Newton's method (a few dozen features and a
    few hundred rows: exact, deterministic and without scikit-learn)."""
    import numpy as np

    if not rows or len(set(labels)) < 2:
        raise AblationKitError("fitting the offline judge needs labelled matches and non-matches")
    x = np.array([[row[name] for name in features] for row in rows], dtype=float)
    y = np.array(labels, dtype=float)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1 / (1 + np.exp(-(z @ w)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return Logistic(
        features=list(features),
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
        weights=[float(v) for v in w[:-1]],
        bias=float(w[-1]),
    )


@dataclass
class OfflineModel:
    """Both models, the threshold, and what the model is known to agree with."""

    component: Logistic
    change: Logistic
    threshold: float

    def scores(self, features: Sequence[Sequence[dict[str, float]]]) -> list[list[float]]:
        flat = [f for row in features for f in row]
        component = self.component.predict(flat)
        change = self.change.predict(flat)
        product = iter(a * b for a, b in zip(component, change, strict=True))
        return [[next(product) for _ in row] for row in features]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> OfflineModel:
        data = json.loads(text)
        return cls(
            component=Logistic(**data["component"]),
            change=Logistic(**data["change"]),
            threshold=float(data["threshold"]),
        )


@cache
def packaged_model() -> OfflineModel:
    """The model fitted on ``benchmarks/data/judge-labels.jsonl``, shipped with the package."""
    text = resources.files("ablationkit.judge").joinpath("data", MODEL_FILE).read_text("utf-8")
    return OfflineModel.from_json(text)


@dataclass
class LabelledPair:
    """One labelled (planned, target) pair: its features, the paper it belongs to (the fold
    it is held out with), and both labels."""

    group: str
    line: str
    planned: int
    target: int
    features: dict[str, float]
    match: bool
    same_component: bool


def labelled_pairs(path: str | Path, encoder: Any = None) -> list[LabelledPair]:
    """The pairs of a label file in the ``benchmarks/data`` format (``pairs`` entries carry
    the rule code; ``H1`` marks same component, other change). Without ``pairs`` entries a
    line's ``matches`` give the match labels and only matches count as same component."""
    from ablationkit.judge.embedding import default_encoder

    encoder = encoder or default_encoder()
    result: list[LabelledPair] = []
    for lineno, text in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        row = json.loads(text)
        planned = [Ablation.model_validate(a) for a in row["planned"]]
        targets = [Ablation.model_validate(a) for a in row["targets"]]
        matches = {(int(p), int(t)) for p, t in row["matches"]}
        reasons = {(int(p), int(t)): str(reason) for p, t, _, reason in row.get("pairs", [])}
        features = pair_features(planned, targets, encoder)
        group = str(row.get("paper") or row["paper_id"])
        line = str(row.get("paper_id", lineno))
        for i in range(len(planned)):
            for j in range(len(targets)):
                match = (i, j) in matches
                result.append(
                    LabelledPair(
                        group=group,
                        line=line,
                        planned=i,
                        target=j,
                        features=features[i][j],
                        match=match,
                        same_component=match or reasons.get((i, j), "").startswith("H1"),
                    )
                )
    return result


def _best_threshold(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The score threshold with the best pair F1 (each pair on its own, before assignment)."""
    ranked = sorted(zip(scores, labels, strict=True), reverse=True)
    positives = sum(labels)
    best, best_f1, tp = 0.5, -1.0, 0
    for n, (score, label) in enumerate(ranked, start=1):
        tp += label
        f1 = 2 * tp / (n + positives)
        if f1 > best_f1 and (n == len(ranked) or ranked[n][0] < score):
            best, best_f1 = score, f1
    return best


def fit_offline_model(pairs: Sequence[LabelledPair], *, l2: float = L2) -> OfflineModel:
    """Both models and the threshold, fitted on ``pairs``."""
    component = fit_logistic(
        [p.features for p in pairs], [p.same_component for p in pairs], COMPONENT_FEATURES, l2=l2
    )
    same = [p for p in pairs if p.same_component]
    change = fit_logistic(
        [p.features for p in same], [p.match for p in same], CHANGE_FEATURES, l2=l2
    )
    model = OfflineModel(component=component, change=change, threshold=0.5)
    scores = [s for row in model.scores([[p.features] for p in pairs]) for s in row]
    model.threshold = _best_threshold(scores, [p.match for p in pairs])
    return model


def assigned_matches(
    pairs: Sequence[LabelledPair],
    score: Callable[[LabelledPair], float],
    threshold: float,
    *,
    one_to_one: bool = False,
) -> set[tuple[str, int, int]]:
    """The (line, planned, target) pairs a judge with these scores matches: every pair that
    reaches the threshold (the offline judge), or the optimal one-to-one assignment per
    labelled line, thresholded (the embedding judge)."""
    if not one_to_one:
        return {(p.line, p.planned, p.target) for p in pairs if score(p) >= threshold}
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    lines: dict[str, list[LabelledPair]] = {}
    for pair in pairs:
        lines.setdefault(pair.line, []).append(pair)
    chosen: set[tuple[str, int, int]] = set()
    for line, members in lines.items():
        matrix = np.full(
            (1 + max(p.planned for p in members), 1 + max(p.target for p in members)), -1.0
        )
        for pair in members:
            matrix[pair.planned, pair.target] = score(pair)
        rows, cols = linear_sum_assignment(-matrix)
        chosen.update(
            (line, int(r), int(c))
            for r, c in zip(rows, cols, strict=True)
            if matrix[r, c] >= threshold
        )
    return chosen


def pair_agreement(
    predicted: set[tuple[str, int, int]], pairs: Sequence[LabelledPair]
) -> dict[str, float]:
    gold = {(p.line, p.planned, p.target) for p in pairs if p.match}
    tp = len(predicted & gold)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "gold": len(gold)}


def _fold_scorer(
    judge: str, train: Sequence[LabelledPair], l2: float
) -> tuple[Callable[[LabelledPair], float], float]:
    """The score function and threshold of ``judge`` fitted on ``train``."""
    if judge == "offline":
        model = fit_offline_model(train, l2=l2)
        return (lambda p: model.scores([[p.features]])[0][0]), model.threshold
    if judge == "embedding":
        labels = [p.match for p in train]
        threshold = _best_threshold([p.features["full"] for p in train], labels)
        return (lambda p: p.features["full"]), threshold
    raise AblationKitError(f"cannot cross-validate judge {judge!r} (offline or embedding)")


def cross_validate(
    pairs: Sequence[LabelledPair], judge: str = "offline", *, l2: float = L2
) -> dict[str, Any]:
    """Leave-one-paper-out agreement: each paper's pairs are judged by a model fitted on the
    other papers only (the same papers appear under several lines and modes, so holding out
    lines would leak). ``judge="offline"`` refits both models and the threshold per fold;
    ``judge="embedding"`` fits only the cosine threshold of the plain embedding judge."""
    groups = sorted({p.group for p in pairs})
    if len(groups) < 2:
        raise AblationKitError("cross-validation needs labelled pairs from at least two papers")
    predicted: set[tuple[str, int, int]] = set()
    folds = []
    for group in groups:
        train = [p for p in pairs if p.group != group]
        test = [p for p in pairs if p.group == group]
        score, threshold = _fold_scorer(judge, train, l2)
        chosen = assigned_matches(test, score, threshold, one_to_one=judge == "embedding")
        predicted |= chosen
        agreement = pair_agreement(chosen, test)
        folds.append({"held_out": group, "threshold": round(threshold, 4), **agreement})
    return {
        "judge": judge,
        "protocol": "leave-one-paper-out",
        "pairs": len(pairs),
        "matches": sum(p.match for p in pairs),
        "out_of_fold": pair_agreement(predicted, pairs),
        "folds": folds,
    }


def cross_validate_file(path: str | Path, judge: str = "offline") -> dict[str, Any]:
    """``cross_validate`` on a label file (features computed here, which encodes every text)."""
    from pydantic import ValidationError

    try:
        pairs = labelled_pairs(path)
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise FormatError(
            f"not a labelled-pairs file ({type(exc).__name__}: {exc})"[:300], where=Path(path)
        ) from None
    return cross_validate(pairs, judge)


class OfflineJudge(EmbeddingJudge):
    """The offline judge with the packaged (or a given) ``OfflineModel``; it encodes off
    the event loop as the embedding judge does, and scores pairs with the fitted models."""

    def __init__(self, *, model: OfflineModel | None = None, encoder: Any = None) -> None:
        self.model = model or packaged_model()
        super().__init__(threshold=self.model.threshold, encoder=encoder)
        self.name = "offline"

    def verdict(self, plan: Plan, targets: Sequence[Ablation], k: int | None = None) -> Judgement:
        """The verdict, computed in the calling thread."""
        import numpy as np

        from ablationkit.judge.embedding import default_encoder

        k = min(k or len(plan.ablations), len(plan.ablations))
        result = blank_judgement(self.name, plan, targets, k)
        if not targets:
            result.error = "the offline judge needs ground-truth ablations (not raw reviews)"
            return result
        planned = plan.ablations[:k]
        features = pair_features(planned, targets, self._encoder or default_encoder())
        scores = np.array(self.model.scores(features)).reshape(len(planned), len(targets))
        result.matches = [
            Match(planned=int(i), target=int(j))
            for i, j in zip(*np.nonzero(scores >= self.model.threshold), strict=True)
        ]
        result.reasoning = "match scores (same component x compatible change): " + "; ".join(
            f"{m.planned}->{m.target} {scores[m.planned, m.target]:.2f}" for m in result.matches
        )
        return result


AGREEMENT_FILE = "agreement.json"


@cache
def measured_agreements() -> dict[str, dict[str, Any]]:
    """Judges' measured agreement with the labelled set, by judge name, as
    ``benchmarks/fit_offline_judge.py --write`` stored it."""
    path = resources.files("ablationkit.judge").joinpath("data", AGREEMENT_FILE)
    return dict(json.loads(path.read_text("utf-8"))) if path.is_file() else {}


def describe_agreement(judge: str) -> str:
    """One line naming the judge and how well it agrees with human labels, for score
    tables: a score is only as good as the judge that counted it."""
    found = measured_agreements().get(judge)
    if not found:
        return f"{judge}: agreement with human labels not measured (ablationkit eval-judge)"
    return (
        f"{judge}: pair F1 {found['f1']:.2f} (P {found['precision']:.2f}, "
        f"R {found['recall']:.2f}) against {found['pairs']} labelled pairs of "
        f"{found['labels']}, {found['protocol']}"
    )
