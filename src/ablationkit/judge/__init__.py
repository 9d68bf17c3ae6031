"""Judges and metrics: which planned ablations match the ground truth, and P/R/F1."""

from ablationkit.judge.evaluation import evaluate_judge, load_labels
from ablationkit.judge.lm_judge import Judge, LMJudge, MajorityJudge, parse_matches
from ablationkit.judge.metrics import aggregate, bootstrap_ci, judge_agreement, score_judgement

__all__ = [
    "Judge",
    "LMJudge",
    "MajorityJudge",
    "aggregate",
    "bootstrap_ci",
    "evaluate_judge",
    "judge_agreement",
    "load_labels",
    "parse_matches",
    "score_judgement",
]
