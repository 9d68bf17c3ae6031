"""Guard rails on the LM planner's output: the pure detectors, then the planner's re-ask,
drop, short-plan and loop handling against scripted replies over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ablationkit.lm import LMClient
from ablationkit.papers import load_paper, sample_paper_path
from ablationkit.planner import PlanConfig, PlanError, PlanProgress, plan
from ablationkit.planner.guards import (
    PROMPT_EXAMPLE_JSON,
    PROMPT_EXAMPLE_JSON_NO_METRICS,
    PROMPT_EXAMPLES,
    example_copy,
    placeholder,
    whole_sentences,
)
from ablationkit.schema import Ablation, Plan
from ablationkit.testing import FakeLLMServer
from ablationkit.testing.fake_server import Reply

MESH_PAPER = (
    "We reconstruct meshes from point clouds with a point encoder, a deformation decoder and a "
    "normal-consistency loss. We report Chamfer distance and normal consistency."
)


def item(**fields: Any) -> Ablation:
    base: dict[str, Any] = {
        "name": "Drop the normal loss",
        "ablated_part": "the normal-consistency loss",
        "action": "REMOVE",
        "replacement": None,
        "metrics": ["Chamfer distance"],
    }
    return Ablation.model_validate({**base, **fields})


# ------------------------------------------------------------------ example_copy
def test_the_example_word_for_word_is_a_copy() -> None:
    copied = Ablation.model_validate(PROMPT_EXAMPLES[0].ablation)
    assert example_copy(copied, MESH_PAPER) == "fusion encoder"


def test_the_example_component_grafted_onto_an_item_is_a_copy() -> None:
    grafted = item(ablated_part="the deformation decoder of the fusion encoder")
    assert example_copy(grafted, MESH_PAPER) == "fusion encoder"


def test_the_example_name_on_a_paper_without_attention_is_a_copy() -> None:
    renamed = item(name="Number of attention heads", action="REPLACE", replacement=["4", "16"])
    assert example_copy(renamed, MESH_PAPER) == "number of attention heads"


def test_wording_the_paper_itself_uses_is_not_a_copy() -> None:
    paper = "Our transformer fuses both views in a fusion encoder with 8 attention heads."
    own = item(
        name="Number of attention heads",
        ablated_part="the 8 attention heads of the fusion encoder",
        action="REPLACE",
        replacement=["4", "16"],
    )
    assert example_copy(own, paper) is None
    heads = item(name="Number of attention heads", ablated_part="heads of the decoder")
    assert example_copy(heads, "a decoder with 8 attention heads") is None


def test_an_item_about_the_paper_is_not_a_copy() -> None:
    assert example_copy(item(), MESH_PAPER) is None


def test_the_prompt_shows_the_example_the_detector_reads() -> None:
    from ablationkit.papers import load_paper, sample_paper_path
    from ablationkit.planner import render_messages

    paper = load_paper(sample_paper_path())
    system = render_messages(paper, "author", 3, paper_text="", hints="")[0]["content"]
    assert PROMPT_EXAMPLE_JSON in system


# ------------------------------------------------------------------ placeholder
@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"action": "REPLACE", "replacement": None}, "REPLACE with no replacement"),
        ({"action": "ADD", "replacement": ["None"]}, "placeholder value 'None'"),
        ({"action": "REPLACE", "replacement": ["null"]}, "placeholder value 'null'"),
        ({"action": "REPLACE", "replacement": ["N/A"]}, "placeholder value 'N/A'"),
        ({"action": "REPLACE", "replacement": ["TBD"]}, "placeholder value 'TBD'"),
        ({"action": "REPLACE", "replacement": ["..."]}, "placeholder value '...'"),
        ({"action": "REPLACE", "replacement": ["<value>"]}, "placeholder value '<value>'"),
        ({"action": "REPLACE", "replacement": ["a simpler model"]}, "vague value"),
        ({"action": "REPLACE", "replacement": ["a more complex decoder"]}, "vague value"),
        ({"action": "REPLACE", "replacement": ["alternative losses"]}, "vague value"),
        ({"action": "ADD", "replacement": ["other variants of the loss"]}, "vague value"),
        ({"action": "REPLACE", "replacement": ["different schedules"]}, "vague value"),
        ({"metrics": ["return"]}, "placeholder metric 'return'"),
        ({"metrics": ["None"]}, "placeholder metric 'None'"),
        ({"ablated_part": "<component>"}, "ablated part is a placeholder"),
        ({"ablated_part": "..."}, "ablated part is a placeholder"),
    ],
)
def test_placeholders_are_named(fields: dict[str, Any], reason: str) -> None:
    found = placeholder(item(**fields))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"action": "REPLACE", "replacement": ["GRU", "uniform sampling"]},
        {"action": "REPLACE", "replacement": ["0.1", "0.5"]},
        {"action": "REPLACE", "replacement": ["a simpler model (a linear probe)"]},
        {"action": "REPLACE", "replacement": ["random initialization"]},
        {"action": "REPLACE", "replacement": {"lambda": [0.1, 1.0]}},
        {"metrics": ["average return"]},
        {"metrics": []},
    ],
)
def test_concrete_items_pass(fields: dict[str, Any]) -> None:
    assert placeholder(item(**fields)) is None


# ------------------------------------------------------------------ the planner, over HTTP
SCORER = {
    "name": "No learned scorer",
    "ablated_part": "the lightweight relevance scorer",
    "action": "REPLACE",
    "replacement": ["CLIP similarity to the question"],
    "metrics": ["accuracy"],
}
DPP = {
    "name": "Top-K instead of DPP",
    "ablated_part": "diversity-regularised DPP selection",
    "action": "REPLACE",
    "replacement": ["top-K by relevance", "uniform sampling"],
    "metrics": ["accuracy"],
}
BUDGET = {
    "name": "Frame budget",
    "ablated_part": "number of frames K",
    "action": "REPLACE",
    "replacement": ["8", "32"],
    "metrics": ["accuracy"],
}
DISTIL = {
    "name": "No distillation",
    "ablated_part": "answer-likelihood distillation",
    "action": "REMOVE",
    "replacement": None,
    "metrics": ["accuracy"],
}
COPIED = {
    "name": "Number of attention heads",
    "ablated_part": "the 8 attention heads of the fusion encoder",
    "action": "REPLACE",
    "replacement": ["4", "16"],
    "metrics": ["accuracy"],
}
VAGUE = {
    "name": "Simpler scorer",
    "ablated_part": "the relevance scorer",
    "action": "REPLACE",
    "replacement": ["a simpler model"],
    "metrics": ["accuracy"],
}
REASONING = "KESTREL scores frames, selects them with a DPP and distils answer likelihoods."


def reply(*items: dict[str, Any], reasoning: str = REASONING) -> str:
    return json.dumps({"reasoning": reasoning, "ablations": list(items)})


def more(*items: dict[str, Any]) -> str:
    return json.dumps({"ablations": list(items)})


def planned(
    server: FakeLLMServer, tmp_path: Path, notes: list[str] | None = None, **settings: Any
) -> Plan:
    settings.setdefault("model", "m")
    progress = PlanProgress(on_stage=notes.append) if notes is not None else None
    with LMClient(cache=False, timeout=10) as client:
        return plan(
            load_paper(sample_paper_path()),
            client=client,
            api_base=server.url,
            raw_dir=tmp_path,
            progress=progress,
            **settings,
        )


def test_an_item_copying_the_example_is_asked_again_on_the_same_prefix_and_replaced(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    first = reply(SCORER, COPIED, BUDGET)
    fake_llm.script(first, more(DISTIL))
    result = planned(fake_llm, tmp_path, k=3)
    assert [a.name for a in result.ablations] == [
        "No learned scorer",
        "No distillation",
        "Frame budget",
    ]
    assert len(fake_llm.requests) == 2
    main, follow = fake_llm.requests
    # the same conversation, continued: the runtime's prompt cache covers the paper
    assert follow["messages"][:2] == main["messages"]
    assert follow["messages"][2] == {"role": "assistant", "content": first}
    ask = follow["messages"][3]["content"]
    assert '"Number of attention heads": it copies "fusion encoder"' in ask
    assert '"No learned scorer"; "Frame budget"' in ask  # kept: not to be repeated
    schema = follow["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["ablations"]
    assert schema["properties"]["ablations"]["maxItems"] == 1
    assert (
        '(Dropped by the planner: "Number of attention heads" \u2014 it copies' in result.reasoning
    )
    assert result.usage is not None and result.usage.completion_tokens > 0


def test_an_item_still_unusable_after_the_one_re_ask_is_dropped_with_a_note(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    none = {**DISTIL, "name": "Add a term", "action": "ADD", "replacement": ["None"]}
    fake_llm.script(reply(SCORER, none, BUDGET), more(VAGUE), more(DPP))
    notes: list[str] = []
    result = planned(fake_llm, tmp_path, notes, k=3)
    assert len(fake_llm.requests) == 2  # re-asked once, never twice
    assert [a.name for a in result.ablations] == ["No learned scorer", "Frame budget"]
    assert "\"Add a term\" \u2014 ADD with placeholder value 'None'" in result.reasoning
    assert (
        "\"Simpler scorer\" \u2014 REPLACE with vague value 'a simpler model'" in result.reasoning
    )
    assert "warning: the plan has 2 of the 3 ablations asked for" in notes


def test_a_plan_the_model_ended_short_is_completed_by_one_re_ask(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(reply(SCORER, BUDGET), more(dict(SCORER, name="Learned scorer"), DPP))
    notes: list[str] = []
    result = planned(fake_llm, tmp_path, notes, k=4)
    ask = fake_llm.requests[1]["messages"][-1]["content"]
    assert "You gave 2 of the 4 ablations asked for." in ask
    assert 'do not repeat them: "No learned scorer"; "Frame budget"' in ask
    assert "2 new ablations" in ask
    # the repeated item is not taken; the plan stays short and says so, never padded
    assert [a.name for a in result.ablations] == [
        "No learned scorer",
        "Frame budget",
        "Top-K instead of DPP",
    ]
    assert "warning: the plan has 3 of the 4 ablations asked for" in notes


def test_unusable_and_missing_items_share_one_follow_up_call(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(reply(SCORER, VAGUE), more(DPP, DISTIL, BUDGET))
    result = planned(fake_llm, tmp_path, k=4)
    assert len(fake_llm.requests) == 2
    schema = fake_llm.requests[1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["ablations"]["maxItems"] == 3
    assert [a.name for a in result.ablations] == [
        "No learned scorer",
        "Top-K instead of DPP",
        "No distillation",
        "Frame budget",
    ]


def test_a_reply_cut_at_its_token_limit_is_not_asked_for_more(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(Reply(reply(SCORER, BUDGET), finish_reason="length"))
    notes: list[str] = []
    result = planned(fake_llm, tmp_path, notes, k=3)
    assert len(fake_llm.requests) == 1 and len(result.ablations) == 2
    assert "warning: the plan has 2 of the 3 ablations asked for" in notes


def test_a_follow_up_that_cannot_be_used_keeps_the_plan_with_a_warning(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(reply(SCORER, BUDGET), "I cannot think of more.")
    notes: list[str] = []
    result = planned(fake_llm, tmp_path, notes, k=3)
    assert [a.name for a in result.ablations] == ["No learned scorer", "Frame budget"]
    assert any(n.startswith("warning: the follow-up reply could not be used") for n in notes)


def test_placeholder_values_and_metrics_beside_concrete_ones_are_cleaned_without_a_call(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    mixed = {**DPP, "replacement": ["top-K by relevance", "N/A"], "metrics": ["return", "accuracy"]}
    fake_llm.script(reply(SCORER, mixed, BUDGET))
    result = planned(fake_llm, tmp_path, k=3)
    assert len(fake_llm.requests) == 1
    assert result.ablations[1].replacement == ["top-K by relevance"]
    assert result.ablations[1].metrics == ["accuracy"]


def test_a_reasoning_that_restates_the_instructions_gets_a_note_not_a_re_ask(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    parroted = (
        "I will read the method section and list its main components: modules, loss terms, "
        "training procedures, data choices and hyper-parameters. Ablation studies attribute "
        "the method's performance to its major components."
    )
    fake_llm.script(reply(SCORER, DPP, BUDGET, reasoning=parroted))
    notes: list[str] = []
    result = planned(fake_llm, tmp_path, notes, k=3)
    assert len(fake_llm.requests) == 1
    assert "I will read the method section" not in result.reasoning
    assert "Ablation studies attribute" not in result.reasoning
    assert "2 sentence(s) of this reasoning that restated the instructions" in result.reasoning
    assert "warning: the reasoning mostly restates the planner's instructions" in notes
    fake_llm.script(reply(SCORER, DPP, BUDGET))
    assert "restated" not in planned(fake_llm, tmp_path, k=3).reasoning


def test_restated_sentences_go_and_the_papers_own_stay() -> None:
    """Seen on the embedded model in reviewer mode: a whole reasoning made of the prompt's
    rule about reported ablations. Its sentences go; one about the paper stays."""
    from ablationkit.planner.config import PlanConfig
    from ablationkit.planner.core import _instruction_text
    from ablationkit.planner.guards import drop_restated

    instructions = _instruction_text(PlanConfig(mode="reviewer"))
    assert "the list above (read from its experiments)" in instructions  # reviewer-only rule
    reasoning = (
        "I begin with what the paper already ablates, the list above, read from experiments. "
        "Suggest the 5 most important ablation studies that the paper is missing.\n"
        "CoLES never varies the margin of its contrastive loss, so its effect is unknown."
    )
    kept, removed = drop_restated(reasoning, instructions)
    assert removed == 2
    assert kept == reasoning.splitlines()[-1]


def test_the_prompt_asks_for_reasoning_about_the_paper_and_k_items(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(reply(SCORER, DPP, BUDGET))
    planned(fake_llm, tmp_path, k=3)
    system, user = (m["content"] for m in fake_llm.requests[0]["messages"])
    assert "its main components, named as the paper names them" in system
    assert "up to 3" not in system and "[<3 ablation objects" in system
    # a loopback server is on this machine, and the sample names its metrics: the example
    # shows no "metrics", and the planner gives every item the paper's
    assert "do not reuse its wording" in system and PROMPT_EXAMPLE_JSON_NO_METRICS in system
    assert "say why each one you ablate matters" in user


def test_a_model_on_this_machine_writes_no_metrics_the_paper_names(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    """18 generated tokens an item, about 9 s a plan on the embedded model, for a list it
    copied from the prompt's facts every time."""
    bare = [{k: v for k, v in item.items() if k != "metrics"} for item in (SCORER, DPP, BUDGET)]
    fake_llm.script(reply(*bare))
    result = planned(fake_llm, tmp_path, k=3)
    request = fake_llm.requests[0]
    schema = request["response_format"]["json_schema"]["schema"]
    item = schema["properties"]["ablations"]["items"]
    assert "metrics" not in item["properties"] and "metrics" not in item["required"]
    system = request["messages"][0]["content"]
    assert '"metrics"' not in system and "the paper's own metrics: do not write them" in system
    assert [a.metrics for a in result.ablations] == [["accuracy", "latency"]] * 3
    assert [a.name for a in result.ablations] == [i["name"] for i in bare]


LOOP = "The scorer is the most important part of this method here. "


def streamed_plan(server: FakeLLMServer, tmp_path: Path, seen: list[str], notes: list[str]) -> Plan:
    with LMClient(cache=False, timeout=10) as client:
        return plan(
            load_paper(sample_paper_path()),
            client=client,
            api_base=server.url,
            model="m",
            k=3,
            raw_dir=tmp_path,
            progress=PlanProgress(on_token=seen.append, on_stage=notes.append),
        )


def test_a_stream_looping_in_its_reasoning_is_stopped_and_only_the_ablations_asked_for(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    looping = '{"reasoning": "The DPP matters. ' + LOOP * 40 + 'TAIL-NEVER-READ"'
    fake_llm.script(looping, more(SCORER, DPP, BUDGET))
    seen: list[str] = []
    notes: list[str] = []
    result = streamed_plan(fake_llm, tmp_path, seen, notes)
    assert fake_llm.requests[0]["stream"] is True
    streamed = "".join(seen)
    assert streamed.count(LOOP.strip()) < 5 and "TAIL" not in streamed  # stopped early
    kept = "The DPP matters. " + LOOP.strip()  # what it wrote, each sentence once
    follow = fake_llm.requests[1]
    assert follow["messages"][2] == {
        "role": "assistant",
        "content": json.dumps({"reasoning": kept}),
    }
    assert "You gave 0 of the 3 ablations asked for." in follow["messages"][3]["content"]
    schema = follow["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["ablations"]  # no reasoning to loop in again
    assert result.reasoning == kept and len(result.ablations) == 3
    assert any("kept repeating one sentence" in n for n in notes)


def test_a_stream_looping_in_its_ablations_goes_to_the_repair_path(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    looping = '{"reasoning": "r.", "ablations": [{"name": "' + LOOP * 40 + 'TAIL"'
    fake_llm.script(looping, reply(SCORER, DPP, BUDGET))
    result = streamed_plan(fake_llm, tmp_path, [], [])
    repair = fake_llm.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "TAIL" not in repair[-2]["content"]
    assert "kept repeating one sentence" in repair[-1]["content"]
    assert len(result.ablations) == 3


def test_a_plan_that_loops_twice_fails_with_the_raw_reply_saved(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    loop = '{"reasoning": "r.", "ablations": [{"name": "' + LOOP * 10
    fake_llm.script(loop, loop)
    with pytest.raises(PlanError, match="kept repeating one sentence"):
        streamed_plan(fake_llm, tmp_path, [], [])
    (raw,) = tmp_path.glob("*.author.raw.txt")
    assert raw.read_text("utf-8").count(LOOP.strip()) >= 6  # both replies


def test_a_looping_reasoning_whose_follow_up_gives_nothing_fails(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script('{"reasoning": "' + LOOP * 10, "no idea")
    with pytest.raises(PlanError, match="follow-up gave no usable ablation"):
        streamed_plan(fake_llm, tmp_path, [], [])
    assert len(fake_llm.requests) == 2


def test_replies_on_this_machine_are_budgeted_for_k_items(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(reply(SCORER, BUDGET), more(DPP))
    planned(fake_llm, tmp_path, k=3)
    main, follow = fake_llm.requests
    assert main["max_tokens"] == 200 + 160 * 3 and follow["max_tokens"] == 200 + 160 * 1
    schema = main["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["reasoning"]["maxLength"] == 800
    assert PlanConfig().reply_tokens_for(local=False) == 3000  # the remote cap, as before
    assert PlanConfig(k=3).reply_tokens_for(local=True) == 680


def test_the_ablationbench_protocol_is_not_guarded(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    rows = "\n".join(json.dumps(r) for r in (COPIED, VAGUE))
    fake_llm.script(f"<discussion>d</discussion>\n<predictions>\n{rows}\n</predictions>")
    with LMClient(cache=False, timeout=10) as client:
        result = plan(
            sample_paper_path(),
            client=client,
            api_base=fake_llm.url,
            model="m",
            protocol="ablationbench",
            mode="author",
        )
    assert len(fake_llm.requests) == 1 and [a.name for a in result.ablations] == [
        "Number of attention heads",
        "Simpler scorer",
    ]
    assert fake_llm.requests[0]["max_tokens"] == 3000


# ------------------------------------------------------------------ planner-added sweeps
MESH = """# Contrastive Mesh Fitting

## Abstract

We fit meshes to point clouds with a contrastive loss.

## 1 Method

Each point is masked when $m_i = 1$. We train a point encoder with a contrastive loss whose
margin is $c = 0.2$, and a deformation decoder.

## 2 Experiments

We report Chamfer distance and normal consistency.
"""
REMOVES = [
    {
        "name": f"No {part}",
        "ablated_part": f"the {part}",
        "action": "REMOVE",
        "replacement": None,
        "metrics": ["Chamfer distance"],
    }
    for part in ("point encoder", "contrastive loss", "deformation decoder")
]


def _mesh_plan(server: FakeLLMServer, tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "mesh.md"
    path.write_text(text, "utf-8")
    server.script(reply(*REMOVES, reasoning="The encoder, the loss and the decoder matter."))
    with LMClient(cache=False, timeout=10) as client:
        return plan(path, client=client, api_base=server.url, model="m", k=3, raw_dir=tmp_path)


def test_a_planner_added_sweep_says_which_quantity_its_symbol_is(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    sweep = _mesh_plan(fake_llm, tmp_path, MESH).ablations[-1]
    assert sweep.ablated_part == "c, the margin of the contrastive loss, 0.2 in the paper"
    assert sweep.name == "Sensitivity to the margin of the contrastive loss (c)"
    assert sweep.replacement == ["0.1", "0.4"]


def test_numbers_for_another_quantity_do_not_stop_the_sweep(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    """MaskGIT on the embedded model: "mask ratio 15%, 20%, 25%" (BERT's, not MaskGIT's)
    kept out the sweep of its T = 8 decoding steps, one of the paper's own ablations."""
    ratio = {**BUDGET, "name": "Mask ratio", "ablated_part": "the mask ratio"}
    ratio["replacement"] = ["15%", "20%"]
    margin = {**ratio, "name": "Margin of the loss", "ablated_part": "the contrastive margin"}
    path = tmp_path / "mesh.md"
    path.write_text(MESH, "utf-8")
    for last, swept in ((ratio, True), (margin, False)):
        fake_llm.script(reply(*REMOVES[:2], last, reasoning="The encoder and the loss matter."))
        with LMClient(cache=False, timeout=10) as client:
            result = plan(path, client=client, api_base=fake_llm.url, model="m", k=3)
        assert (result.ablations[-1].name == last["name"]) is not swept
        assert ("Added by the planner" in result.reasoning) is swept


def test_an_undefined_symbol_or_a_mask_indicator_is_never_swept(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    bare = MESH.replace("with a contrastive loss whose\nmargin is $c = 0.2$", "and set $c = 0.2$")
    result = _mesh_plan(fake_llm, tmp_path, bare)
    assert [a.name for a in result.ablations] == [r["name"] for r in REMOVES]
    assert "Added by the planner" not in result.reasoning


def test_an_item_that_ablates_a_label_of_the_prompts_facts_is_a_placeholder() -> None:
    """Seen on the embedded model (MaskGIT, author mode): "the hyper-parameters and their
    values in the paper" and "the design choice stated in the paper" as ablated parts, with
    the listed facts as replacements."""
    from ablationkit.planner.guards import placeholder
    from ablationkit.schema import Ablation

    for part in (
        "the hyper-parameters and their values in the paper",
        "Design choice stated in the paper",
        "the metrics mentioned in the paper",  # seen on MaskGIT, reading the whole paper
        "the value of a hyper-parameter in the paper",  # CoLES, an ensemble's sample
    ):
        item = Ablation(name="Sweep", ablated_part=part, action="REPLACE", replacement=["T = 8"])
        assert "prompt's label" in (placeholder(item) or "")
    fine = Ablation(
        name="Design choice", ablated_part="the mask scheduling function", action="REMOVE"
    )
    assert placeholder(fine) is None
    # a label's words followed by the paper's own words are a component, not the label
    named = Ablation(name="m", ablated_part="metrics mentioned in Table 2 as FID", action="REMOVE")
    assert placeholder(named) is None


def test_a_reasoning_cut_by_the_schema_ends_on_a_whole_sentence() -> None:
    sentences = "The gate matters to the results. " * 23  # 759 characters
    cut = sentences + "The paper's"
    assert whole_sentences(cut, 800) == sentences.rstrip()
    assert whole_sentences("Short and unfinished", 800) == "Short and unfinished"
    assert whole_sentences(sentences.rstrip(), 800) == sentences.rstrip()
    # one sentence that runs to the limit: kept, and marked as cut
    long = "word " * 160
    assert whole_sentences(long, 800) == long.rstrip() + " …"
