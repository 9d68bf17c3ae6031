"""Judging the judges: a judge's verdicts against human labels.

Labels are JSONL, one labelled plan per line::

    {"paper_id": "...", "mode": "author", "title": "...", "planned": [<ablation>, ...],
     "targets": [<ablation>, ...], "reviews": ["..."], "matches": [[planned, target], ...]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ablationkit.errors import FormatError
from ablationkit.judge.lm_judge import Judge
from ablationkit.judge.metrics import judge_agreement
from ablationkit.schema import Ablation, Judgement, Match, Plan


def load_labels(path: str | Path) -> list[tuple[Plan, list[Ablation], list[str], str, Judgement]]:
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            plan = Plan(
                planner="labelled",
                model="human",
                paper_id=data["paper_id"],
                mode=data.get("mode", "author"),
                ablations=[Ablation.model_validate(a) for a in data["planned"]],
            )
            targets = [Ablation.model_validate(a) for a in data.get("targets", [])]
            truth = Judgement(
                judge="human",
                paper_id=plan.paper_id,
                mode=plan.mode,
                k=len(plan.ablations),
                planned=[a.name for a in plan.ablations],
                targets=[a.name for a in targets],
                matches=[Match(planned=p, target=t) for p, t in data["matches"]],
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, ValidationError) as exc:
            raise FormatError(
                f"line {lineno}: not a labelled plan ({type(exc).__name__})", where=path
            ) from None
        rows.append((plan, targets, list(data.get("reviews", [])), data.get("title", ""), truth))
    return rows


def evaluate_judge(
    judge: Judge, labels: str | Path | Sequence[Any], *, concurrency: int = 8
) -> dict[str, Any]:
    rows = load_labels(labels) if isinstance(labels, (str, Path)) else list(labels)

    def run(row: Any) -> Judgement:
        plan, targets, reviews, title, _ = row
        return judge.judge(plan, targets, reviews=reviews, title=title)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        verdicts = list(pool.map(run, rows))
    result = judge_agreement(verdicts, [row[4] for row in rows])
    result["judge"] = judge.name
    return result
