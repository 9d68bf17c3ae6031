"""The reference's LM judge (``--judge-protocol ablationbench``), with seeded draws.

Author mode: the ground truth (each item as JSON) and the plan (its JSONL lines) are each
shuffled and shown as anonymous lists A and B, which list is which also drawn at random; the judge
names matches as ``{"name_in_A", "name_in_B"}`` lines, which are mapped back to
``{"name_in_paper", "name_in_plan"}`` (a list on the paper's side becomes one line per name; a
line whose paper side is null is dropped). Reviewer mode: the judge sees title, abstract, the
shuffled official reviews, the paper's source and the shuffled plan, and labels each plan item
``appears_in_review``. The reference draws with an unseeded ``random``, so its reruns differ; we
draw from a generator seeded by (seed, paper id), and store the seed and the side assignment in
the judgement, so a rerun asks the same question.

The judge's raw lines are kept in ``Judgement.lines``: the reference scores names, not indices
(``ablationkit.ablationbench.scoring``). Index matches are derived from them for the site.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from ablationkit.ablationbench.config import PromptConfig, packaged_prompts
from ablationkit.ablationbench.scoring import AuthorLine, ReviewerLine
from ablationkit.errors import AblationKitError
from ablationkit.judge.base import Judge, JudgeBase, blank_judgement
from ablationkit.judge.lm_judge import MajorityJudge
from ablationkit.lm.client import LMClient, default_client
from ablationkit.schema import Ablation, Judgement, Match, Plan, Usage

REVIEW_SEPARATOR = "\n</official_review>\n\n\n<official_review>\n"


class ReferenceReplyError(AblationKitError):
    """The judge's reply has no usable ``<predictions>`` lines."""


@cache
def uses_variable(prompts: PromptConfig, variable: str) -> bool:
    """Whether the user template reads ``variable`` (a config that never shows the paper's
    source is not given it, so it is never read)."""
    from jinja2 import TemplateSyntaxError, meta
    from jinja2.sandbox import SandboxedEnvironment

    try:
        parsed = SandboxedEnvironment().parse(prompts.user_template)
    except TemplateSyntaxError:
        return True  # rendering will name the error; reading the source costs nothing more
    return variable in meta.find_undeclared_variables(parsed)


@cache
def default_prompts(mode: str) -> PromptConfig:
    """Our own prompt text in the reference's shape (its YAML files can replace it)."""
    return packaged_prompts("ablationkit.judge", f"ablationbench_{mode}")


def plan_lines(plan: Plan) -> list[str]:
    """The plan as the reference's JSONL lines (its planner's field order, compact JSON)."""
    return [
        json.dumps(
            {
                "name": a.name,
                "ablated_part": a.ablated_part,
                "action": a.action.value,
                "replacement": a.replacement,
                "metrics": a.metrics,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for a in plan.ablations
    ]


def _prediction_lines(reply: str) -> tuple[str, list[dict[str, Any]]]:
    discussion = re.search(r"<discussion>(.*?)</discussion>", reply, re.S)
    found = re.search(r"<predictions>(.*?)</predictions>", reply, re.S)
    if found is None:
        raise ReferenceReplyError("the reply has no <predictions>...</predictions> block")
    rows = []
    for number, line in enumerate(found.group(1).strip().split("\n"), 1):
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReferenceReplyError(f"prediction line {number} is not JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise ReferenceReplyError(f"prediction line {number} is not a JSON object")
        rows.append(value)
    return (discussion.group(1).strip() if discussion else ""), rows


def author_lines_from_sides(rows: Sequence[dict[str, Any]], paper_side: str) -> list[AuthorLine]:
    """``name_in_A``/``name_in_B`` lines mapped back to paper and plan names."""
    plan_side = "B" if paper_side == "A" else "A"
    out = []
    for row in rows:
        paper = row.get(f"name_in_{paper_side}")
        plan = row.get(f"name_in_{plan_side}")
        if plan is not None and not isinstance(plan, str | list):
            plan = str(plan)
        if isinstance(plan, list):
            plan = [str(p) for p in plan]
        for name in paper if isinstance(paper, list) else [paper]:
            if name is not None:
                out.append(AuthorLine(name_in_paper=str(name), name_in_plan=plan))
    return out


def reviewer_lines(rows: Sequence[dict[str, Any]]) -> list[ReviewerLine]:
    out = []
    for row in rows:
        name = row.get("name_in_plan")
        if not isinstance(name, str):
            raise ReferenceReplyError("a prediction line has no name_in_plan string")
        out.append(ReviewerLine(name, bool(row.get("appears_in_review", False))))
    return out


def matches_from_author_lines(
    lines: Sequence[AuthorLine], planned: Sequence[str], targets: Sequence[str]
) -> list[Match]:
    """Index pairs for the site: every plan item and target whose name a line gives exactly,
    where all of the line's plan names are in the plan (the reference's rule for a match)."""
    out: set[tuple[int, int]] = set()
    for line in lines:
        if line.name_in_plan is None:
            continue
        names = line.name_in_plan if isinstance(line.name_in_plan, list) else [line.name_in_plan]
        if not all(name in planned for name in names):
            continue
        for t, target in enumerate(targets):
            if target == line.name_in_paper:
                out.update((p, t) for p, item in enumerate(planned) if item in names)
    return [Match(planned=p, target=t) for p, t in sorted(out)]


def matches_from_reviewer_lines(
    lines: Sequence[ReviewerLine], planned: Sequence[str]
) -> list[Match]:
    """Index matches for the site: every plan item whose name a line says appears in the
    reviews (reviewer mode has no named targets: target 0 stands for "the reviews")."""
    in_review = {line.name_in_plan for line in lines if line.appears_in_review}
    return [Match(planned=i, target=0) for i, name in enumerate(planned) if name in in_review]


class AblationBenchJudge(JudgeBase):
    """One model judging as the reference's LM judge does; ``prompts`` replaces our text with
    a :class:`PromptConfig` (e.g. the reference's own YAML, ``--judge-config``). ``client``
    defaults to the process's default client."""

    protocol = "ablationbench"

    def __init__(
        self,
        model: str,
        *,
        client: LMClient | None = None,
        api_base: str | None = None,
        name: str | None = None,
        prompts: PromptConfig | None = None,
        seed: int = 0,
        **params: Any,
    ) -> None:
        self.model = model
        self.client = client or default_client()
        self.api_base = api_base
        self.name = name or f"ab:{model}"
        self.prompts = prompts
        self.seed = seed
        self.params = params  # beyond the config's temperature (0) and top_p (1)

    def _prompts(self, mode: str) -> PromptConfig:
        return self.prompts or default_prompts(mode)

    def needs_paper_source(self, mode: str) -> bool:
        return uses_variable(self._prompts(mode), "paper_source")

    def settings(self) -> dict[str, Any]:
        prompts = "ablationkit"
        if self.prompts is not None:
            text = f"{self.prompts.system}\0{self.prompts.user_template}".encode()
            prompts = "sha256:" + hashlib.sha256(text).hexdigest()[:16]
        return {
            "protocol": self.protocol,
            "model": self.model,
            "seed": self.seed,
            "prompts": prompts,
        }

    def messages(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
    ) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The messages and the draw that made them (stored with the judgement)."""
        rng = random.Random(f"{self.seed}:{plan.paper_id}")
        lines = plan_lines(plan)
        rng.shuffle(lines)
        draw: dict[str, Any] = {"seed": self.seed}
        prompts = self._prompts(plan.mode)
        if plan.mode == "author":
            # as the reference shows them: json.dumps of each item with its default settings
            truth = [json.dumps(t.model_dump(mode="json")) for t in targets]
            rng.shuffle(truth)
            paper_first = rng.random() < 0.5
            sides = ["\n".join(truth), "\n".join(lines)]
            if not paper_first:
                sides.reverse()
            draw["paper_side"] = "A" if paper_first else "B"
            variables = {
                "paper_title": title,
                "abstract": abstract,
                "side_A": sides[0],
                "side_B": sides[1],
                "paper_source": paper_source,
            }
        else:
            shuffled = list(reviews)
            rng.shuffle(shuffled)
            variables = {
                "paper_title": title,
                "abstract": abstract,
                "problem_statement": "\n".join(lines),
                "official_reviews": REVIEW_SEPARATOR.join(shuffled),
                "paper_source": paper_source,
            }
        return prompts.messages(**variables), draw

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
        """The verdict on the whole plan (the reference never cuts it; ``k`` is ignored)."""
        result = blank_judgement(self.name, plan, targets, len(plan.ablations))
        if plan.mode == "reviewer" and not plan.ablations:
            result.lines = []  # the reference skips the call: nothing to label
            return result
        messages, draw = self.messages(
            plan,
            targets,
            reviews=reviews,
            title=title,
            abstract=abstract,
            paper_source=paper_source,
        )
        result.draw = draw
        prompts = self._prompts(plan.mode)
        params = {"temperature": prompts.temperature, "top_p": prompts.top_p, **self.params}
        try:
            reply = await self.client.acomplete(
                messages, self.model, api_base=self.api_base, **params
            )
            result.usage = reply.as_usage()
            result.reasoning, rows = _prediction_lines(reply.text)
            if plan.mode == "author":
                author = author_lines_from_sides(rows, draw["paper_side"])
                result.lines = [line.to_json() for line in author]
                result.matches = matches_from_author_lines(author, result.planned, result.targets)
            else:
                review = reviewer_lines(rows)
                result.lines = [line.to_json() for line in review]
                result.matches = matches_from_reviewer_lines(review, result.planned)
        except AblationKitError as exc:
            result.error = exc.one_line()
        return result


def combine_reference_verdicts(name: str, verdicts: Sequence[Judgement]) -> Judgement:
    """The reference's majority over several judges' lines (see ``scoring.majority_*``)."""
    from ablationkit.ablationbench.scoring import majority_author, majority_reviewer

    first = verdicts[0]
    result = first.model_copy(deep=True)
    result.judge = name
    result.draw = None
    valid = [v for v in verdicts if v.error is None and v.lines is not None]
    result.usage = Usage.total(v.usage for v in verdicts)
    if not valid:
        result.error = "every judge failed: " + " | ".join(v.error or "" for v in verdicts)
        result.lines, result.matches = None, []
        return result
    result.error = None
    result.reasoning = "\n\n".join(f"{v.judge}: {v.reasoning}" for v in valid)
    if first.mode == "author":
        author = majority_author([[AuthorLine(**line) for line in v.lines or []] for v in valid])
        result.lines = [line.to_json() for line in author]
        result.matches = matches_from_author_lines(author, result.planned, result.targets)
    else:
        review = majority_reviewer(
            [[ReviewerLine(**line) for line in v.lines or []] for v in valid]
        )
        result.lines = [line.to_json() for line in review]
        result.matches = matches_from_reviewer_lines(review, result.planned)
    result.votes = [v.matches for v in valid]
    return result


class ReferenceMajorityJudge(MajorityJudge):
    """The reference's majority over several judges' lines (``combine_reference_verdicts``).

    The reference's judges each draw their own shuffles and sides; so do these, reproducibly:
    the caller gives each its own seed (``make_judge``: seed, seed + 1, ...), and the majority's
    ``draw`` keeps every judge's draw.
    """

    def __init__(self, judges: Sequence[Judge], *, name: str | None = None) -> None:
        super().__init__(judges, name=name or f"ab:majority({len(judges)})")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "protocol": "ablationbench"}

    def combine(
        self, plan: Plan, targets: Sequence[Ablation], k: int, verdicts: Sequence[Judgement]
    ) -> Judgement:
        result = combine_reference_verdicts(self.name, verdicts)
        result.draw = {"judges": [{"judge": v.judge, **(v.draw or {})} for v in verdicts]}
        return result
