"""Judging the judges: a judge's verdicts against human labels.

Labels are JSONL, one labelled plan per line::

    {"paper_id": "...", "mode": "author", "title": "...", "planned": [<ablation>, ...],
     "targets": [<ablation>, ...], "reviews": ["..."], "matches": [[planned, target], ...]}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ablationkit.errors import FormatError
from ablationkit.judge.base import Judge, run_coroutine
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


# (the judged plan's verdict, plans judged so far, plans in all)
OnJudged = Callable[[Judgement, int, int], None]


async def aevaluate_judge(
    judge: Judge,
    labels: str | Path | Sequence[Any],
    *,
    concurrency: int | None = None,
    on_judged: OnJudged | None = None,
) -> dict[str, Any]:
    """``evaluate_judge`` on the running event loop: every labelled plan's ``ajudge`` at once.

    The judge's client bounds how many model calls are in flight; ``concurrency``, if given,
    bounds how many plans are judged at once as well (a majority judge makes several calls per
    plan). ``on_judged`` hears of each verdict as it comes: on the embedded model the 28
    labelled plans take a quarter of an hour, which should not pass in silence.
    """
    rows = load_labels(labels) if isinstance(labels, (str, Path)) else list(labels)
    gate = asyncio.Semaphore(concurrency) if concurrency else None
    done = 0

    async def judged(row: Any) -> Judgement:
        plan, targets, reviews, title, _ = row
        if gate is None:
            return await judge.ajudge(plan, targets, reviews=reviews, title=title)
        async with gate:
            return await judge.ajudge(plan, targets, reviews=reviews, title=title)

    async def run(row: Any) -> Judgement:
        nonlocal done
        verdict = await judged(row)
        done += 1
        if on_judged is not None:
            on_judged(verdict, done, len(rows))
        return verdict

    verdicts = await asyncio.gather(*(run(row) for row in rows))
    result = judge_agreement(verdicts, [row[4] for row in rows])
    result["judge"] = judge.name
    return result


def evaluate_judge(
    judge: Judge,
    labels: str | Path | Sequence[Any],
    *,
    concurrency: int | None = None,
    on_judged: OnJudged | None = None,
) -> dict[str, Any]:
    """How well ``judge`` agrees with human labels (a JSONL file, or rows as ``load_labels``
    gives them): ``judge_agreement`` of its verdicts, run on the judge's client's loop."""
    client = getattr(judge, "loop_client", lambda: None)()
    work = aevaluate_judge(judge, labels, concurrency=concurrency, on_judged=on_judged)
    return run_coroutine(work, client)
