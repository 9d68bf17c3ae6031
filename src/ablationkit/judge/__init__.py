"""Judges and metrics: which planned ablations match the ground truth, and P/R/F1.

Every judge is a coroutine ``ajudge`` on its client's event loop, with a synchronous ``judge``
(``judge.base``); ``make_judge`` builds them from ``--judge`` specs and a protocol.
"""

from ablationkit.judge.base import Judge, JudgeBase
from ablationkit.judge.evaluation import aevaluate_judge, evaluate_judge, load_labels
from ablationkit.judge.factory import make_judge
from ablationkit.judge.lm_judge import LMJudge, MajorityJudge, parse_matches
from ablationkit.judge.metrics import aggregate, bootstrap_ci, judge_agreement, score_judgement
from ablationkit.judge.reference import AblationBenchJudge, ReferenceMajorityJudge

__all__ = [
    "AblationBenchJudge",
    "Judge",
    "JudgeBase",
    "LMJudge",
    "MajorityJudge",
    "ReferenceMajorityJudge",
    "aevaluate_judge",
    "aggregate",
    "bootstrap_ci",
    "evaluate_judge",
    "judge_agreement",
    "load_labels",
    "make_judge",
    "parse_matches",
    "score_judgement",
]
