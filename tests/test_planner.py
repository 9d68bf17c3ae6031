"""The planner against scripted replies over real HTTP, and its pure parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablationkit.lm import LMClient
from ablationkit.papers import load_paper, sample_paper_path
from ablationkit.papers.model import Paper, Section
from ablationkit.planner import (
    PlanConfig,
    PlanError,
    PlanProgress,
    ReplyParseError,
    aplan,
    complete_plan,
    extract_hints,
    merge_duplicates,
    parse_plan_reply,
    plan,
    prepare_plan,
)
from ablationkit.planner.budget import fit_to_budget
from ablationkit.schema import Ablation
from ablationkit.testing import FakeLLMServer

GOOD = {
    "reasoning": "KESTREL has a scorer, a DPP selection and distillation.",
    "ablations": [
        {
            "name": "No diversity term",
            "ablated_part": "diversity term lambda of the DPP",
            "action": "REMOVE",
            "replacement": None,
            "metrics": ["accuracy"],
        },
        {
            "name": "Top-K selection",
            "ablated_part": "diversity-regularised DPP selection",
            "action": "REPLACE",
            "replacement": ["top-K by relevance", "uniform sampling"],
            "metrics": ["accuracy", "latency"],
        },
        {
            "name": "Frame budget",
            "ablated_part": "number of frames K",
            "action": "REPLACE",
            "replacement": ["8", "32"],
            "metrics": ["accuracy"],
        },
    ],
}


@pytest.fixture
def sample():  # type: ignore[no-untyped-def]
    return load_paper(sample_paper_path())


def run_plan(server: FakeLLMServer, paper, tmp_path: Path, **kwargs):  # type: ignore[no-untyped-def]
    client = LMClient(cache=False, timeout=10)
    kwargs.setdefault("model", "test-model")
    return plan(paper, client=client, api_base=server.url, raw_dir=tmp_path, **kwargs)


def test_good_reply(fake_llm: FakeLLMServer, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script(json.dumps(GOOD))
    result = run_plan(fake_llm, sample, tmp_path, paper_id="kestrel")
    assert result.planner == "lm-planner" and result.model == "test-model"
    assert result.paper_id == "kestrel" and result.mode == "author"
    assert [a.name for a in result.ablations] == [a["name"] for a in GOOD["ablations"]]
    assert result.reasoning == GOOD["reasoning"]
    assert result.usage is not None and result.usage.prompt_tokens > 500
    assert result.usage.cost_usd is None  # "test-model" has no known price
    request = fake_llm.requests[0]
    assert request["temperature"] == 0
    assert (
        request["response_format"]["json_schema"]["schema"]["properties"]["ablations"]["maxItems"]
        == 5
    )
    user = request["messages"][1]["content"]
    assert "## 3 Method" in user and "Answer-likelihood distillation" in user
    assert "Ablation study" not in user and "Removing the diversity term" not in user
    assert "\\lambda = 0.3" in user  # the paper's hyper-parameters are given as facts


def test_prepared_and_async_plans_send_the_same_request(
    fake_llm: FakeLLMServer, sample, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    fake_llm.script(json.dumps(GOOD), json.dumps(GOOD), json.dumps(GOOD))
    client = LMClient(cache=False, timeout=10)
    config = PlanConfig(k=3, model="m", api_base=fake_llm.url)
    whole = plan(sample, config, client=client, paper_id="x")
    request = prepare_plan(sample, config, client=client)
    assert not fake_llm.requests[1:]  # preparing calls no model
    halves = complete_plan(request, client=client)
    awaited = asyncio.run(aplan(sample, k=3, model="m", api_base=fake_llm.url, client=client))
    sent = [r["messages"] for r in fake_llm.requests]
    assert sent[0] == sent[1] == sent[2]
    assert whole.ablations == halves.ablations == awaited.ablations
    assert halves.paper_id == awaited.paper_id and halves.paper_id.startswith("kestrel-keyframe")


def test_reviewer_mode_reads_the_whole_paper(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    fake_llm.script(json.dumps(GOOD))
    run_plan(fake_llm, sample, tmp_path, mode="reviewer")
    system, user = (m["content"] for m in fake_llm.requests[0]["messages"])
    assert "MISSING" in system and "MISSING" in user
    assert "Removing the diversity term" in user and "Implementation details" in user


def test_messy_reply_is_tolerated(fake_llm: FakeLLMServer, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    messy = """Sure! Here is the plan:
```json
{"reasoning": "Two parts matter.",
 "ablations": [
   {"Name": "Drop distillation", "ablatedPart": "answer-likelihood distillation",
    "Action": "Remove", "metrics": "accuracy, latency",},
   {"name": "Budget", "ablated_part": "frame budget K", "action": "replace with",
    "alternatives": [8, 32], "metrics": ["accuracy"]},
   {"name": "Drop the distillation", "ablated_part": "answer likelihood distillation",
    "action": "REMOVE", "replacement": None, "metrics": ["accuracy"]},
 ]}
```"""
    fake_llm.script(messy)
    result = run_plan(fake_llm, sample, tmp_path, k=2)
    assert len(fake_llm.requests) == 1
    assert [(a.action.value, a.replacement) for a in result.ablations] == [
        ("REMOVE", None),
        ("REPLACE", ["8", "32"]),
    ]  # the near-duplicate was merged
    assert result.ablations[0].metrics == ["accuracy", "latency"]


def test_repair_round_trip(fake_llm: FakeLLMServer, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script("I think you should ablate the scorer.", json.dumps(GOOD))
    notes: list[str] = []
    result = run_plan(fake_llm, sample, tmp_path, k=3, progress=PlanProgress(on_stage=notes.append))
    assert len(result.ablations) == 3 and len(fake_llm.requests) == 2
    repair = fake_llm.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "I think you should ablate the scorer."}
    assert "could not be used: no JSON object or list in the reply" in repair[-1]["content"]
    assert any("asking the model to repair" in n for n in notes)


def test_unrepairable_reply_is_saved(fake_llm: FakeLLMServer, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script(
        '{"reasoning": "cut off', '{"ablations": [{"action": "EXPLODE", "ablated_part": "x"}]}'
    )
    with pytest.raises(PlanError) as info:
        run_plan(fake_llm, sample, tmp_path, paper_id="kestrel")
    message = str(info.value)
    assert 'unknown action "EXPLODE"' in message and "raw reply saved to" in message
    raw = (tmp_path / "kestrel.author.raw.txt").read_text("utf-8")
    assert '"reasoning": "cut off' in raw and "EXPLODE" in raw
    assert "\n" not in message


def test_at_most_k_and_a_sweep_when_all_remove(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    removes = {
        "reasoning": "r",
        "ablations": [
            {
                "name": f"Drop part {i}",
                "ablated_part": f"component number {i} of the model",
                "action": "REMOVE",
                "replacement": None,
                "metrics": [],
            }
            for i in range(6)
        ],
    }
    fake_llm.script(json.dumps(removes))
    result = run_plan(fake_llm, sample, tmp_path, k=4)
    assert len(result.ablations) == 4
    sweep = result.ablations[-1]
    assert sweep.action == "REPLACE" and sweep.replacement == ["8", "32"]  # K = 16 in the paper
    # the symbol is said to be what the paper says it is
    assert sweep.ablated_part == "K, the number of frames, 16 in the paper"
    assert "Added by the planner" in result.reasoning
    assert all(a.metrics for a in result.ablations)  # filled from the paper's metrics


def test_context_budget_drops_appendix_first_never_method(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    fake_llm.script(json.dumps(GOOD))
    notes: list[str] = []
    run_plan(
        fake_llm,
        sample,
        tmp_path,
        mode="reviewer",
        max_context=3600,  # a plan of 5 on this machine has 1000 reply tokens
        progress=PlanProgress(on_stage=notes.append),
    )
    user = fake_llm.requests[0]["messages"][1]["content"]
    assert any("dropped appendix" in n for n in notes), notes
    assert "Implementation details" not in user
    assert "Answer-likelihood distillation" in user and "greedy MAP inference" in user


def test_reading_budget_outlines_what_is_not_the_method_on_this_machine(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A model on this machine reads the method whole, and of the rest the first and last
    paragraphs, when the view is over its reading budget; ``paper_tokens=0`` reads it all
    and a remote model is not budgeted."""
    fake_llm.script(json.dumps(GOOD))
    notes: list[str] = []
    run_plan(
        fake_llm, sample, tmp_path, paper_tokens=300, progress=PlanProgress(on_stage=notes.append)
    )
    budgeted = fake_llm.requests[-1]["messages"][1]["content"]
    assert any(n.startswith("reading budget (300 tokens") for n in notes), notes
    assert "most of 1 Introduction" in " ".join(notes)
    # the method, all of it, even over the budget: the reading budget never cuts it
    for method_words in ("Coarse-to-fine candidates", "greedy MAP inference", "distillation"):
        assert method_words in budgeted
    fake_llm.script(json.dumps(GOOD))
    run_plan(fake_llm, sample, tmp_path, paper_tokens=0)
    whole = fake_llm.requests[-1]["messages"][1]["content"]
    assert len(whole) > len(budgeted) and "omitted" not in whole

    remote = prepare_plan(sample, model="openai/gpt-4o", paper_tokens=None)
    assert remote.dropped == []
    local = prepare_plan(sample, model="test-model", api_base=fake_llm.url, paper_tokens=300)
    assert local.dropped and local.prompt_tokens < remote.prompt_tokens


def test_outline_keeps_a_sections_first_and_last_paragraphs() -> None:
    contributions = "Our contributions are these, in a paragraph long enough to cut."
    paper = Paper(
        title="T",
        abstract="A.",
        sections=[
            Section(
                title="Intro",
                text="Motivation.\n\n" + "Middle. " * 30 + "\n\n" + contributions,
            ),
            Section(title="Method", role="method", text="Method words. " * 200),
        ],
    )
    words = lambda text: len(text.split())  # noqa: E731
    whole = words(paper.to_markdown())
    fitted = fit_to_budget(paper, whole - 20, words, cut_method=False)
    intro, method = fitted.paper.sections
    assert intro.text.startswith("Motivation.") and intro.text.endswith("long enough to cut.")
    assert "Middle" not in intro.text and method.text == paper.sections[1].text
    assert fitted.dropped == ["most of Intro"]
    # a reading budget the method alone exceeds: the rest goes, the method stays whole
    tight = fit_to_budget(paper, 50, words, cut_method=False)
    assert tight.tokens > 50 and tight.paper.sections[1].text == paper.sections[1].text
    assert "contributions" not in tight.paper.sections[0].text
    # the context's limit does cut the method, and says so
    cut = fit_to_budget(paper, 50, words)
    assert "[… truncated]" in cut.paper.sections[1].text


def test_ablationbench_format_and_errors() -> None:
    reasoning, ablations = parse_plan_reply(
        "<discussion>\nWhy.\n</discussion>\n<predictions>\n"
        '{"name": "A", "ablated_part": "a", "action": "REMOVE", "metrics": ["m"]}\n'
        '{"name": "B", "ablated_part": "b", "action": "REPLACE", "replacement": ["x"], '
        '"metrics": ["m"]}\n</predictions>'
    )
    assert reasoning == "Why." and [a.name for a in ablations] == ["A", "B"]
    for bad, message in [
        ("no json here", "no JSON"),
        ('{"reasoning": "x"}', 'no "ablations"'),
        ('{"ablations": []}', "is empty"),
        ('{"a": [1, 2', "cut off"),
    ]:
        with pytest.raises(ReplyParseError, match=message):
            parse_plan_reply(bad)


def test_merge_duplicates_keeps_rank_and_unions_values() -> None:
    a = Ablation(
        name="Mask schedule",
        ablated_part="cosine mask schedule",
        action="REPLACE",
        replacement=["linear"],
        metrics=["FID"],
    )
    b = Ablation(
        name="Masking schedule function",
        ablated_part="the cosine mask schedule",
        action="REPLACE",
        replacement=["linear", "cubic"],
        metrics=["IS"],
    )
    c = Ablation(name="Remove schedule", ablated_part="cosine mask schedule", action="REMOVE")
    merged = merge_duplicates([a, b, c])
    assert merged == [a, c] and a.replacement == ["linear", "cubic"] and a.metrics == ["FID", "IS"]


def test_merge_duplicates_ignores_generic_words() -> None:
    """The embedded model's iSklearn plan: five items on five components, which shared only
    "replace", "different" and "component" (or "remove" and "component") pairwise."""

    def item(name: str, part: str, action: str, replacement: list[str] | None) -> Ablation:
        return Ablation(
            name=name, ablated_part=part, action=action, replacement=replacement, metrics=["MSE"]
        )

    plan = [
        item("Remove Preprocessing", "the Preprocessing component", "REMOVE", None),
        item(
            "Replace Prediction with a Different Model",
            "the Prediction component",
            "REPLACE",
            ["Random Forest"],
        ),
        item("Remove Scaling", "the Scaling component", "REMOVE", None),
        item(
            "Replace Feature Extraction with a Different Algorithm",
            "the feature extraction component",
            "REPLACE",
            ["PCA", "LDA"],
        ),
        item("Remove the preprocessing", "the preprocessing stage", "REMOVE", None),
    ]
    merged = merge_duplicates([a.model_copy() for a in plan])
    assert [a.name for a in merged] == [a.name for a in plan[:4]]
    assert merged[1].replacement == ["Random Forest"]


def test_merge_duplicates_needs_every_distinctive_word() -> None:
    """Two levels of one sampling scheme are two ablations; words that most of the plan's
    items share (here "of the pipeline") name the setting, not the component."""
    plan = [
        Ablation(
            name=f"{level} sampling",
            ablated_part=f"the {level} sampling of the pipeline",
            action="REPLACE",
            replacement=["5 folds"],
            metrics=["MSE"],
        )
        for level in ("Bottom-level", "Mid-level", "Top-level")
    ]
    again = plan[1].model_copy(update={"name": "Mid-level"})
    assert [a.name for a in merge_duplicates([*plan, again])] == [a.name for a in plan]


def test_hints_find_values_and_metrics(sample) -> None:  # type: ignore[no-untyped-def]
    hints = extract_hints(sample.to_markdown())
    values = {s.name: s.value for s in hints.settings}
    assert values["K"] == "16" and values["\\lambda"] == "0.3" and values["\\sigma"] == "0.05"
    assert "accuracy" in hints.metrics
