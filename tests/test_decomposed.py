"""Decomposed planning (``strategy="decomposed"``) against scripted replies over real HTTP.

The fake server answers by what a request asks for (its JSON schema: a components list or a
reasoning), so each test scripts the model's side of the conversation and checks what the
planner made of it: shared prompt prefix, grounding in the paper, values and metrics taken
from the paper, usage summed, the repair path and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ablationkit.lm import LMClient
from ablationkit.papers import load_paper, sample_paper_path, view
from ablationkit.planner import PlanConfig, PlanConfigError, PlanError, PlanProgress, plan
from ablationkit.schema import Plan
from ablationkit.testing import FakeLLMServer
from ablationkit.testing.fake_server import Reply

SCORER = {
    "name": "relevance scorer",
    "kind": "module",
    "quote": "The scorer is a two-layer transformer with cross-attention from the question tokens",
    "value": "",
    "alternatives": [],
}
DPP = {
    "name": "diversity-regularised DPP selection",
    "kind": "module",
    "quote": "We instead select $S$ by greedy MAP inference in a determinantal point process",
    "value": "",
    "alternatives": ["uniform sampling", "a simpler model"],
}
MADE_UP = {
    "name": "fusion encoder",
    "kind": "module",
    "quote": "the 8 attention heads of the fusion encoder",
    "value": "8",
    "alternatives": ["4", "16"],
}
DISTILLATION = {
    "name": "answer-likelihood distillation",
    "kind": "training step",
    "quote": "the scorer is trained to match it with a KL-divergence loss",
    "value": "",
    "alternatives": ["reinforcement learning"],
}
BANDWIDTH = {
    "name": "temporal bandwidth $\\sigma$",
    "kind": "hyper-parameter",
    "quote": "$\\sigma = 0.05$ sets the temporal bandwidth",
    "value": "0.05",
    "alternatives": [],
}
CANDIDATES = {
    "name": "number of candidate frames $N_c$",
    "kind": "hyper-parameter",
    "quote": "We first sample $N_c = 256$ candidate frames uniformly",
    "value": "999",  # not the paper's: the paper's 256 is swept instead
    "alternatives": [],
}
MASKING = {
    "name": "masking ratio",
    "kind": "hyper-parameter",
    "quote": "we mask 75% of the input tokens during pre-training",
    "value": "0.75",
    "alternatives": [],
}
COMPONENTS = {
    "components": [SCORER, DPP, MADE_UP, DISTILLATION, BANDWIDTH, CANDIDATES, MASKING],
    "metrics": ["accuracy", "latency", "BLEU"],
}
REASONING = {
    "reasoning": "KESTREL scores frames with a cross-attention scorer, selects them with a "
    "DPP and trains the scorer by distillation; each of these carries its accuracy gain."
}


def _schema(body: dict[str, Any]) -> dict[str, Any]:
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    return dict(schema.get("properties", {}))


def responder(
    components: list[Reply | str], reasoning: list[Reply | str]
) -> Callable[[dict[str, Any]], Reply | str]:
    """Answers components requests from ``components`` and reasoning requests from
    ``reasoning``, in order (the last one repeats)."""
    queues = {"components": list(components), "reasoning": list(reasoning)}

    def respond(body: dict[str, Any]) -> Reply | str:
        kind = "components" if "components" in _schema(body) else "reasoning"
        queue = queues[kind]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


def run(
    server: FakeLLMServer, tmp_path: Path, progress: PlanProgress | None = None, **kwargs: Any
) -> Plan:
    kwargs.setdefault("model", "test-model")
    kwargs.setdefault("paper_id", "kestrel")
    return plan(
        sample_paper_path(),
        client=LMClient(cache=False, timeout=10),
        api_base=server.url,
        raw_dir=tmp_path,
        strategy="decomposed",
        progress=progress,
        **kwargs,
    )


def by_name(result: Plan) -> dict[str, Any]:
    return {a.name: a for a in result.ablations}


@pytest.fixture
def paper_text() -> str:
    return view(load_paper(sample_paper_path()), "author").to_markdown()


def test_every_call_shares_the_prompt_prefix(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.responder = responder([json.dumps(COMPONENTS)], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path)
    assert result.planner == "lm-planner-decomposed" and len(result.ablations) == 5
    sent = [r["messages"] for r in fake_llm.requests]
    assert len(sent) == 2
    assert sent[0][:3] == sent[1][:3]  # system, the paper, the acknowledgement
    assert [m["role"] for m in sent[0]] == ["system", "user", "assistant", "user"]
    assert "## 3 Method" in sent[0][1]["content"] and "Answer-likelihood" in sent[0][1]["content"]
    assert "components" in _schema(fake_llm.requests[0])
    assert "reasoning" in _schema(fake_llm.requests[1])
    # the task comes after the paper; the single strategy's prompt and example are not sent
    assert "most important components" in sent[0][3]["content"]
    assert not any("fusion encoder" in m["content"] for m in sent[0])
    # generation is bounded per call, far below the single plan's 3000 tokens
    assert all(r["max_tokens"] <= 1000 for r in fake_llm.requests)


def test_a_made_up_component_is_dropped(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.responder = responder([json.dumps(COMPONENTS)], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path)
    text = json.dumps(result.model_dump(mode="json", exclude={"reasoning"})).lower()
    assert "fusion" not in text and "masking" not in text
    assert "Dropped as not found in the paper's text: fusion encoder; masking ratio." in (
        result.reasoning
    )


def test_replacements_come_from_the_paper(
    fake_llm: FakeLLMServer, tmp_path: Path, paper_text: str
) -> None:
    fake_llm.responder = responder([json.dumps(COMPONENTS)], [json.dumps(REASONING)])
    ablations = by_name(run(fake_llm, tmp_path))
    assert ablations["Relevance scorer"].action == "REMOVE"
    dpp = ablations["Diversity-regularised DPP selection"]
    assert dpp.action == "REPLACE" and dpp.replacement == ["uniform sampling"]  # no "simpler"
    distil = ablations["Answer-likelihood distillation"]
    assert distil.replacement == ["reinforcement learning"]  # named in the related work
    bandwidth = ablations["Temporal bandwidth $\\sigma$"]
    assert bandwidth.replacement == ["0.025", "0.1"]
    assert "0.05 in the paper" in bandwidth.ablated_part  # the symbol says what it is
    candidates = ablations["Number of candidate frames $N_c$"]
    assert candidates.replacement == ["128", "512"]  # around the paper's 256, not "999"
    assert "999" not in candidates.ablated_part and "256 in the paper" in candidates.ablated_part
    flat = " ".join(paper_text.split())
    for ablation in ablations.values():
        assert ablation.model_extra is not None and ablation.model_extra["evidence"] in flat


def test_metrics_come_from_the_paper(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.responder = responder([json.dumps(COMPONENTS)], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path)
    assert {tuple(a.metrics) for a in result.ablations} == {("accuracy", "latency")}


def test_metrics_the_hints_miss_are_kept_when_the_paper_has_them(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    # "multiple-choice accuracy" is the paper's (§4.1) but no pattern of the hints knows it
    reply = {**COMPONENTS, "metrics": ["multiple-choice accuracy", "Chamfer distance"]}
    fake_llm.responder = responder([json.dumps(reply)], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path, mode="reviewer", k=2)
    assert result.ablations and all(
        a.metrics[0] == "multiple-choice accuracy" and "Chamfer distance" not in a.metrics
        for a in result.ablations
    )


def test_usage_and_reasoning_of_all_calls(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.responder = responder(
        [Reply(json.dumps(COMPONENTS), usage={"prompt_tokens": 1500, "completion_tokens": 310})],
        [Reply(json.dumps(REASONING), usage={"prompt_tokens": 1700, "completion_tokens": 60})],
    )
    result = run(fake_llm, tmp_path)
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (3200, 370)
    assert result.timings is not None and result.timings.generation_s is not None
    assert result.reasoning.startswith(REASONING["reasoning"])
    assert "Components of the method found in the paper, most important first: relevance " in (
        result.reasoning
    )


def test_an_unusable_reply_is_repaired_once(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.responder = responder(
        ["Sure! The components are the scorer and the DPP.", json.dumps(COMPONENTS)],
        [json.dumps(REASONING)],
    )
    progress = PlanProgress()
    result = run(fake_llm, tmp_path, progress)
    assert len(result.ablations) == 5 and len(fake_llm.requests) == 3
    repair = fake_llm.requests[1]["messages"]
    assert repair[:4] == fake_llm.requests[0]["messages"]
    assert repair[4]["role"] == "assistant" and "could not be used" in repair[5]["content"]
    assert any("asking the model to repair it" in note for note in progress.notes)


def test_a_reply_cut_off_by_the_token_limit_keeps_its_whole_components(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    whole = json.dumps({"components": [SCORER, DPP, DISTILLATION, BANDWIDTH], "metrics": []})
    cut = whole[: whole.index(json.dumps(BANDWIDTH)) + 40]  # inside the fourth component
    fake_llm.responder = responder([Reply(cut, finish_reason="length")], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path, k=3)
    assert [a.name for a in result.ablations] == [
        "Relevance scorer",
        "Diversity-regularised DPP selection",
        "Answer-likelihood distillation",
    ]
    assert len(fake_llm.requests) == 2  # no repair: the three whole components were used


def test_only_made_up_components_fail_with_the_raw_replies(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    only_made_up = json.dumps({"components": [MADE_UP, MASKING], "metrics": []})
    fake_llm.responder = responder([only_made_up], [json.dumps(REASONING)])
    with pytest.raises(PlanError) as failure:
        run(fake_llm, tmp_path)
    assert "none of the 2 components is in the paper" in failure.value.message
    assert failure.value.raw_path == tmp_path / "kestrel.author.raw.txt"
    saved = failure.value.raw_path.read_text("utf-8")
    assert saved.count("fusion encoder") >= 2 and "repair attempt" in saved
    assert len(fake_llm.requests) == 2  # the repair, and no reasoning call


def test_an_unusable_reasoning_falls_back_to_the_papers_sentences(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.responder = responder([json.dumps(COMPONENTS)], ["no JSON here"])
    progress = PlanProgress()
    result = run(fake_llm, tmp_path, progress)
    assert len(result.ablations) == 5
    assert result.reasoning.startswith(
        'relevance scorer: "The scorer is a two-layer transformer with cross-attention'
    )
    assert any("reasoning reply was unusable" in note for note in progress.notes)


def test_a_short_list_is_asked_once_for_more(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    first = json.dumps({"components": [SCORER, MADE_UP], "metrics": ["accuracy"]})
    more = json.dumps({"components": [SCORER, DPP, BANDWIDTH], "metrics": []})
    fake_llm.responder = responder([first, more], [json.dumps(REASONING)])
    progress = PlanProgress()
    result = run(fake_llm, tmp_path, progress, k=5)
    names = [a.name for a in result.ablations]
    assert names == [
        "Relevance scorer",
        "Diversity-regularised DPP selection",
        "Temporal bandwidth $\\sigma$",
    ]
    reask = fake_llm.requests[1]["messages"]
    assert reask[:3] == fake_llm.requests[0]["messages"][:3]
    assert (
        "Besides these components already listed: relevance scorer; fusion encoder"
        in (reask[3]["content"])
    )
    assert len(fake_llm.requests) == 3  # one re-ask only, then the reasoning
    assert any("warning: 3 of the 5 ablations" in note for note in progress.notes)
    assert "Only 3 of the 5 ablations asked for" in result.reasoning


def test_a_sweep_of_a_stated_value_takes_the_last_place(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.responder = responder([json.dumps(COMPONENTS)], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path, k=3)
    assert [a.name for a in result.ablations] == [
        "Relevance scorer",
        "Diversity-regularised DPP selection",
        "Temporal bandwidth $\\sigma$",
    ]
    assert (
        "Added by the planner: a sweep of temporal bandwidth $\\sigma$ (hyper-parameter, "
        "0.05 in the paper)" in result.reasoning
    )


def test_reviewer_mode_never_plans_what_the_paper_ablates(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    diversity = {
        "name": "diversity term",
        "kind": "loss term",
        "quote": "$\\lambda = 0.3$ trades relevance against diversity",
        "value": "0.3",
        "alternatives": [],
        "ablated": False,  # the model missed it: §4.3 removes the diversity term
    }
    flagged = {**DPP, "ablated": True}
    reply = {"components": [diversity, flagged, {**SCORER, "ablated": False}], "metrics": []}
    fake_llm.responder = responder([json.dumps(reply)], [json.dumps(REASONING)])
    result = run(fake_llm, tmp_path, mode="reviewer", k=1)
    assert [a.name for a in result.ablations] == ["Relevance scorer"]
    assert "ablated" in str(fake_llm.requests[0]["response_format"])
    assert (
        "Already ablated in the paper, so not planned again: diversity term; "
        "diversity-regularised DPP selection." in result.reasoning
    )
    assert "diversity term" in fake_llm.requests[1]["messages"][3]["content"]


def test_the_strategy_needs_our_protocol_and_prompts(tmp_path: Path) -> None:
    with pytest.raises(PlanConfigError, match="works with protocol 'ablationkit' only"):
        PlanConfig.build(strategy="decomposed", protocol="ablationbench")
    with pytest.raises(PlanConfigError, match="writes its own"):
        PlanConfig.build(strategy="decomposed", prompt_file=tmp_path / "p.j2")
    assert PlanConfig.build(strategy="decomposed").strategy == "decomposed"


def _cli(cli: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_plans_the_sample_decomposed(cli: str, tmp_path: Path) -> None:
    respond = responder([json.dumps(COMPONENTS)], [json.dumps(REASONING)])
    with FakeLLMServer(responder=respond) as server:
        common = ["--model", "test-model", "--api-base", server.url]
        result = _cli(cli, "plan", "--sample", "--strategy", "decomposed", *common, "-o", tmp_path)
        assert result.returncode == 0, result.stderr
        bench = _cli(
            cli,
            "bench",
            "plan",
            "sample",
            "--ids",
            "kestrel-sample",
            "--run",
            tmp_path / "run",
            "--strategy",
            "decomposed",
            *common,
        )
        assert bench.returncode == 0, bench.stderr
        bad = _cli(
            cli,
            "plan",
            "--sample",
            "--strategy",
            "decomposed",
            "--protocol",
            "ablationbench",
            *common,
        )
    (saved,) = tmp_path.glob("*.author.json")
    data = json.loads(saved.read_text("utf-8"))
    assert data["planner"] == "lm-planner-decomposed" and len(data["ablations"]) == 5
    assert data["ablations"][0]["evidence"].startswith("The scorer is a two-layer transformer")
    assert "decomposed planning: listing the method's components" in result.stderr
    bench_plan = json.loads((tmp_path / "run" / "plans" / "kestrel-sample.json").read_text())
    assert bench_plan["planner"] == "lm-planner-decomposed"
    assert "plan: 1 done" in bench.stderr
    assert bad.returncode == 2 and "works with protocol 'ablationkit' only" in bad.stderr
