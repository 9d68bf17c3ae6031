"""The reference-protocol judge over real HTTP (the fake OpenAI-compatible server)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ablationkit.ablationbench.config import PromptConfig
from ablationkit.ablationbench.scoring import AuthorLine, score_author
from ablationkit.errors import AblationKitError
from ablationkit.judge.reference import AblationBenchJudge, combine_reference_verdicts
from ablationkit.lm import LMClient
from ablationkit.schema import Ablation, Plan
from ablationkit.testing import FakeLLMServer

TARGETS = [
    Ablation(name="No KL", ablated_part="KL term", action="REMOVE", metrics=["FID"]),
    Ablation(
        name="Größe sweep", ablated_part="width", action="REPLACE", replacement=["64"], metrics=[]
    ),
]
PLAN = Plan(
    model="m",
    paper_id="p1",
    mode="author",
    ablations=[
        Ablation(name="Remove KL", ablated_part="KL term", action="REMOVE", metrics=["FID"]),
        Ablation(name="Wider", ablated_part="width", action="REPLACE", replacement=["128"]),
        Ablation(name="Add dropout", ablated_part="dropout", action="ADD", replacement=["0.1"]),
    ],
)


def _answer_by_sides(body: dict[str, Any]) -> str:
    """A judge that reads which list is the paper's from the prompt, as a model must."""
    user = body["messages"][-1]["content"]
    side_a = user.split("List A (one JSON object per line):\n")[1].split("\n\nList B")[0]
    paper_side = "A" if '"No KL"' in side_a else "B"
    plan_side = "B" if paper_side == "A" else "A"
    lines = [
        {f"name_in_{paper_side}": "No KL", f"name_in_{plan_side}": "Remove KL"},
        {f"name_in_{paper_side}": "Größe sweep", f"name_in_{plan_side}": None},
        {f"name_in_{paper_side}": None, f"name_in_{plan_side}": "Add dropout"},
    ]
    body_lines = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    return f"<discussion>KL matches.</discussion>\n<predictions>\n{body_lines}\n</predictions>"


def test_author_sides_are_seeded_stored_and_mapped_back() -> None:
    with FakeLLMServer(responder=_answer_by_sides) as server, LMClient(cache=False) as client:
        judge = AblationBenchJudge("judge", client=client, api_base=server.url, seed=7)
        first = judge.judge(PLAN, TARGETS, title="T", abstract="A")
        again = judge.judge(PLAN, TARGETS, title="T", abstract="A")
        prompts = [r["messages"][-1]["content"] for r in server.requests]
    assert first.error is None
    assert first.draw is not None and first.draw["seed"] == 7
    assert first.draw == again.draw and prompts[0] == prompts[1]  # a rerun asks the same
    # the line whose paper side is null is dropped, as the reference drops it
    assert first.lines == [
        {"name_in_paper": "No KL", "name_in_plan": "Remove KL"},
        {"name_in_paper": "Größe sweep", "name_in_plan": None},
    ]
    assert [(m.planned, m.target) for m in first.matches] == [(0, 0)]
    # the ground truth is shown as the reference shows it (JSON with ASCII escapes)
    assert "Gr\\u00f6\\u00dfe sweep" in prompts[0]
    score = score_author([AuthorLine(**line) for line in first.lines], first.targets, first.planned)
    assert (score.tp, score.fp, score.fn) == (1, 2, 1)


def test_seeds_change_the_draw_and_both_sides_occur() -> None:
    client = LMClient(cache=False)
    judge_sides = set()
    for seed in range(12):
        _, draw = AblationBenchJudge("j", client=client, seed=seed).messages(PLAN, TARGETS)
        judge_sides.add(draw["paper_side"])
    client.close()
    assert judge_sides == {"A", "B"}


def test_a_reply_without_predictions_is_an_error_never_no_match() -> None:
    with (
        FakeLLMServer(responder=lambda body: "I think they match.") as server,
        LMClient(cache=False) as client,
    ):
        verdict = AblationBenchJudge("j", client=client, api_base=server.url).judge(PLAN, TARGETS)
    assert verdict.error is not None and "<predictions>" in verdict.error
    assert verdict.lines is None


def test_reviewer_mode_labels_plan_items_and_majority_combines_lines() -> None:
    plan = PLAN.model_copy(update={"mode": "reviewer"})

    def answer(appears: bool) -> Any:
        def respond(body: dict[str, Any]) -> str:
            user = body["messages"][-1]["content"]
            assert "<official_review>\nreview one" in user or "review two" in user
            names = re.findall(r'"name":"([^"]+)"', user)
            rows = [
                {"name_in_plan": n, "appears_in_review": appears and n == "Wider"} for n in names
            ]
            text = "\n".join(json.dumps(r) for r in rows)
            return f"<predictions>\n{text}\n</predictions>"

        return respond

    verdicts = []
    with LMClient(cache=False) as client:
        for appears in (True, True, False):
            with FakeLLMServer(responder=answer(appears)) as server:
                judge = AblationBenchJudge("j", client=client, api_base=server.url)
                verdicts.append(judge.judge(plan, [], reviews=["review one", "review two"]))
    assert [len(v.lines or []) for v in verdicts] == [3, 3, 3]
    majority = combine_reference_verdicts("majority", verdicts)
    assert majority.lines is not None
    assert {line["name_in_plan"] for line in majority.lines if line["appears_in_review"]} == {
        "Wider"
    }
    assert [m.planned for m in majority.matches] == [1]


def test_the_reference_yaml_prompts_replace_ours() -> None:
    config = PromptConfig(system="SYS", user_template="{{paper_title}}|{{side_A}}|{{side_B}}")
    client = LMClient(cache=False)
    messages, _ = AblationBenchJudge("j", client=client, prompts=config).messages(
        PLAN, TARGETS, title="Title"
    )
    client.close()
    assert messages[0] == {"role": "system", "content": "SYS"}
    assert messages[1]["content"].startswith("Title|")


def _reviewer_answer(body: dict[str, Any]) -> str:
    """Every plan item judged; "Wider" appears in the reviews for judges "a" and "b" only."""
    names = re.findall(r'"name":"([^"]+)"', body["messages"][-1]["content"])
    rows = [
        {"name_in_plan": n, "appears_in_review": n == "Wider" and body["model"] != "c"}
        for n in names
    ]
    return "<predictions>\n" + "\n".join(json.dumps(r) for r in rows) + "\n</predictions>"


def test_make_judge_builds_the_reference_protocol() -> None:
    from ablationkit.bench import make_judge as bench_make_judge
    from ablationkit.judge.factory import make_judge
    from ablationkit.judge.reference import ReferenceMajorityJudge

    assert bench_make_judge is make_judge  # the old import path still works
    config = PromptConfig(system="S", user_template="{{ paper_source }}", source="cfg.yaml")
    with LMClient(cache=False) as client:
        one = make_judge(["lm:m"], client, protocol="ablationbench", config=config, seed=4)
        assert isinstance(one, AblationBenchJudge)
        assert (one.model, one.seed, one.prompts, one.client) == ("m", 4, config, client)
        three = make_judge(["a", "b", "c"], client, protocol="ablationbench", seed=4)
        assert isinstance(three, ReferenceMajorityJudge)
        assert [j.name for j in three.judges] == ["ab:a", "ab:b", "ab:c"]
        assert three.name != make_judge(["a", "b", "c"], client).name  # never one folder
        # the judges' prompts decide whether the paper's source is read
        assert one.needs_paper_source("author") and three.needs_paper_source("reviewer")
        assert not three.needs_paper_source("author")
        for specs, protocol, message in (
            (["embedding"], "ablationbench", "embedding judge"),
            (["m"], "nonsense", "unknown judge protocol 'nonsense'"),
            ([], "ablationkit", "at least one judge"),
        ):
            with pytest.raises(AblationKitError, match=message):
                make_judge(specs, client, protocol=protocol)


def test_reference_majority_asks_its_judges_at_once_and_keeps_their_draws() -> None:
    from ablationkit.judge.factory import make_judge

    plan = PLAN.model_copy(update={"mode": "reviewer"})
    with (
        FakeLLMServer(responder=_reviewer_answer, latency=0.3) as server,
        LMClient(cache=False) as client,
    ):
        majority = make_judge(["a", "b", "c"], client, server.url, protocol="ablationbench")
        verdict = majority.judge(plan, [], reviews=["r1", "r2"], paper_source="<file>x</file>")
        assert server.max_in_flight == 3
        prompts = [r["messages"][-1]["content"] for r in server.requests]
    assert all("<file>x</file>" in p for p in prompts)
    assert verdict.error is None and verdict.lines is not None
    assert [line for line in verdict.lines if line["appears_in_review"]] == [
        {"name_in_plan": "Wider", "appears_in_review": True}
    ]
    assert verdict.draw is not None and len(verdict.draw["judges"]) == 3
    assert [m.planned for m in verdict.matches] == [1]
