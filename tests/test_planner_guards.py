"""Guard rails on the LM planner's output: the pure detectors, then the planner's re-ask,
drop, short-plan and loop handling against scripted replies over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from ablationkit.planner.guards import (
    PROMPT_EXAMPLE_JSON,
    PROMPT_EXAMPLES,
    example_copy,
    placeholder,
)
from ablationkit.schema import Ablation

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
