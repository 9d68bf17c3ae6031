"""Judges: which planned ablations match the ground truth.

``LMJudge`` asks a model (author mode: planned vs the paper's own ablations; reviewer mode:
planned missing ablations vs what the reviewers asked for). ``MajorityJudge`` runs several
judges on the same plan and keeps the matches most of them agree on. A judge that cannot
give a verdict records an error, which scores exclude; it is never read as "no match".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from ablationkit.errors import AblationKitError
from ablationkit.judge.base import Judge, JudgeBase, blank_judgement
from ablationkit.lm.client import LMClient, default_client
from ablationkit.lm.jsonreply import ReplyParseError, extract_json
from ablationkit.lm.repair import RepairFailed, acomplete_and_parse
from ablationkit.lm.types import Completion
from ablationkit.schema import Ablation, Judgement, Match, Plan, Usage

__all__ = [
    "JUDGE_SCHEMA",
    "Judge",
    "JudgeBase",
    "LMJudge",
    "MajorityJudge",
    "blank_judgement",
    "parse_matches",
]

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string", "maxLength": 2000},
        "matches": {
            "type": "array",
            "maxItems": 40,
            "items": {
                "type": "object",
                "properties": {
                    "planned": {"type": "integer", "minimum": 0},
                    "ground_truth": {"type": "integer", "minimum": 0},
                },
                "required": ["planned", "ground_truth"],
            },
        },
    },
    "required": ["reasoning", "matches"],
}


@cache
def _template(mode: str) -> Any:
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined, autoescape=False)
    text = resources.files("ablationkit.judge").joinpath("prompts", f"{mode}.j2").read_text("utf-8")
    return env.from_string(text)


def _index(value: Any) -> int:
    """A list index as the model wrote it (``2``, ``"2"``, ``2.0``); TypeError/ValueError."""
    return int(value)


def parse_matches(reply: str, n_planned: int, n_targets: int) -> tuple[str, list[Match]]:
    """``(reasoning, matches)`` from a judge reply; out-of-range indices are an error."""
    data = extract_json(reply)
    if isinstance(data, list):
        data = {"reasoning": "", "matches": data}
    if not isinstance(data, dict) or not isinstance(data.get("matches"), list):
        raise ReplyParseError('the JSON has no "matches" list')
    matches: list[Match] = []
    seen: set[int] = set()
    for item in data["matches"]:
        if not isinstance(item, dict):
            raise ReplyParseError("a match is not a JSON object")
        try:
            planned = _index(item.get("planned", item.get("plan")))
            target = _index(item.get("ground_truth", item.get("target", item.get("gt"))))
        except (TypeError, ValueError):
            raise ReplyParseError(f"a match has no integer indices: {item}") from None
        if not (0 <= planned < n_planned and 0 <= target < max(n_targets, 1)):
            raise ReplyParseError(
                f"match {item} is out of range ({n_planned} planned, {n_targets} ground truth)"
            )
        if planned not in seen:  # a planned ablation matches at most one target
            seen.add(planned)
            matches.append(Match(planned=planned, target=target))
    return str(data.get("reasoning", "")), matches


class LMJudge(JudgeBase):
    """A model as judge. ``name`` defaults to ``lm:<model>``; ``client`` to the process's
    default client."""

    def __init__(
        self,
        model: str,
        *,
        client: LMClient | None = None,
        api_base: str | None = None,
        name: str | None = None,
        **params: Any,
    ) -> None:
        self.model = model
        self.client = client or default_client()
        self.api_base = api_base
        self.name = name or f"lm:{model}"
        self.params = {"temperature": 0, "max_tokens": 1500, **params}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "model": self.model}

    def messages(
        self, plan: Plan, targets: Sequence[Ablation], reviews: Sequence[str], title: str, k: int
    ) -> list[dict[str, str]]:
        def view(items: Sequence[Ablation]) -> list[dict[str, Any]]:
            return [
                {
                    "name": a.name,
                    "action": a.action.value,
                    "ablated_part": a.ablated_part,
                    "replacement": [str(r) for r in a.replacement]
                    if isinstance(a.replacement, list)
                    else None,
                }
                for a in items
            ]

        prompt = _template(plan.mode).render(
            title=title or plan.paper_id,
            planned=view(plan.ablations[:k]),
            targets=view(targets),
            reviews=list(reviews),
        )
        return [{"role": "user", "content": prompt.strip()}]

    async def ajudge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement:
        """The verdict on the top ``k`` of the plan (``abstract`` and ``paper_source`` are not
        shown to this judge)."""
        k = min(k or len(plan.ablations), len(plan.ablations))
        result = blank_judgement(self.name, plan, targets, k)
        if plan.mode == "author" and not targets:
            result.error = "no ground-truth ablations for this paper"
            return result
        if plan.mode == "reviewer" and not targets and not reviews:
            result.error = "no reviews and no requested ablations for this paper"
            return result
        if k == 0:
            return result
        messages = self.messages(plan, targets, reviews, title, k)

        def parse(reply: Completion) -> tuple[str, list[Match]]:
            return parse_matches(reply.text, k, len(targets))

        try:
            (result.reasoning, result.matches), replies = await acomplete_and_parse(
                self.client,
                messages,
                self.model,
                parse,
                instruction="Reply again with only the JSON object.",
                schema=JUDGE_SCHEMA,
                api_base=self.api_base,
                **self.params,
            )
        except RepairFailed as failure:
            result.error = f"unparseable judge reply: {failure.message}"
            replies = failure.replies
        except AblationKitError as exc:
            result.error = exc.one_line()
            return result
        result.usage = Usage.total(r.as_usage() for r in replies)
        return result


class MajorityJudge(JudgeBase):
    """Several judges; a match counts when more than half of the judges that gave a verdict
    found it. The judges' coroutines run together on one event loop (their client bounds how
    many model calls are really in flight)."""

    def __init__(self, judges: Sequence[Judge], *, name: str | None = None) -> None:
        if len(judges) < 2:
            raise AblationKitError("a majority judge needs at least two judges")
        self.judges = list(judges)
        self.name = name or f"majority({len(self.judges)})"

    def loop_client(self) -> LMClient | None:
        """The first of its judges' clients: every judge's coroutine runs on its loop (a
        client serves any loop)."""
        for judge in self.judges:
            getter = getattr(judge, "loop_client", None)
            client = getter() if callable(getter) else getattr(judge, "client", None)
            if client is not None:
                return client
        return None

    def needs_paper_source(self, mode: str) -> bool:
        return any(judge.needs_paper_source(mode) for judge in self.judges)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "judges": [judge.settings() for judge in self.judges]}

    async def ajudge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement:
        k = min(k or len(plan.ablations), len(plan.ablations))
        verdicts = await asyncio.gather(
            *(
                judge.ajudge(
                    plan,
                    targets,
                    reviews=reviews,
                    title=title,
                    abstract=abstract,
                    paper_source=paper_source,
                    k=k,
                )
                for judge in self.judges
            )
        )
        return self.combine(plan, targets, k, verdicts)

    def combine(
        self, plan: Plan, targets: Sequence[Ablation], k: int, verdicts: Sequence[Judgement]
    ) -> Judgement:
        """One verdict from the judges' verdicts: the index pairs most of them found."""
        result = blank_judgement(self.name, plan, targets, k)
        valid = [v for v in verdicts if v.error is None]
        if not valid:
            result.error = "every judge failed: " + " | ".join(v.error or "" for v in verdicts)
            return result
        counts = Counter((m.planned, m.target) for v in valid for m in v.matches)
        result.matches = [
            Match(planned=p, target=t) for (p, t), n in sorted(counts.items()) if n * 2 > len(valid)
        ]
        result.votes = [v.matches for v in valid]
        result.reasoning = "\n\n".join(f"{v.judge}: {v.reasoning}" for v in valid)
        result.usage = Usage.total(v.usage for v in verdicts)
        return result
