"""Hand-made trajectories: the edge cases of the format that the corpus does not show."""

from __future__ import annotations

import pytest

from ablationkit import Ablation, Plan, TrajectoryFormatError, parse_trajectory, render_trajectory


def _plan(**kwargs: object) -> Plan:
    base: dict[str, object] = {
        "planner": "lm-planner",
        "model": "openrouter/google/gemini-2.5-flash",
        "paper_id": "toy-paper",
        "mode": "author",
        "reasoning": "Short reasoning.",
        "ablations": [
            Ablation(name="Drop A", ablated_part="module A", action="REMOVE", metrics=["FID"]),
        ],
    }
    base.update(kwargs)
    return Plan.model_validate(base)


def test_model_with_slashes_round_trips() -> None:
    plan = _plan()
    text = render_trajectory(plan)
    assert "# lm-planner/openrouter/google/gemini-2.5-flash/toy-paper\n" in text
    back = parse_trajectory(text)
    assert back.model == "openrouter/google/gemini-2.5-flash" and back.paper_id == "toy-paper"


def test_author_box_is_purple_and_reviewer_green() -> None:
    assert "#9c27b0" in render_trajectory(_plan(mode="author"))
    assert "#4caf50" in render_trajectory(_plan(mode="reviewer"))
    assert parse_trajectory(render_trajectory(_plan(mode="reviewer"))).mode == "reviewer"


@pytest.mark.parametrize(
    "replacement",
    [None, [], {}, ["a"], {"lr": "0.1, 0.01", "a*b\\c": "x"}, ["**bold**: looks like a key"]],
)
def test_replacement_shapes_round_trip(replacement: object) -> None:
    ablation = Ablation(
        name="X", ablated_part="p", action="REPLACE", replacement=replacement, metrics=["acc"]
    )
    plan = _plan(ablations=[ablation])
    back = parse_trajectory(render_trajectory(plan))
    assert back.ablations[0].replacement == replacement


def test_metrics_with_commas_use_a_list() -> None:
    ablation = Ablation(
        name="X",
        ablated_part="p",
        action="ADD",
        replacement=["extra head"],
        metrics=["F1, macro", "acc"],
    )
    text = render_trajectory(_plan(ablations=[ablation]))
    assert "- **Metrics**: \n  - F1, macro\n  - acc\n" in text
    assert parse_trajectory(text).ablations[0].metrics == ["F1, macro", "acc"]


def test_empty_plan_and_empty_reasoning_round_trip() -> None:
    plan = _plan(ablations=[], reasoning="")
    text = render_trajectory(plan)
    assert render_trajectory(parse_trajectory(text)) == text


def test_crlf_bom_and_final_newline_are_kept() -> None:
    text = "\ufeff" + render_trajectory(_plan()).replace("\n", "\r\n") + "\r\n"
    plan = parse_trajectory(text)
    assert plan.ablations[0].name == "Drop A"
    assert render_trajectory(plan) == text


def test_tolerant_parse_of_reordered_fields_and_lowercase_action() -> None:
    text = render_trajectory(_plan()).replace(
        "- **Ablated Part**: module A\n- **Action**: REMOVE\n",
        "- **Action**: remove\n- **Ablated Part**: module A\n",
    )
    plan = parse_trajectory(text)
    assert plan.ablations[0].action == "REMOVE"
    assert plan.ablations[0].ablated_part == "module A"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("Ablation Plan", "Plan"), 'no "Ablation Plan" box'),
        (lambda t: t.replace("# lm-planner/openrouter/google/", "# lm-planner-"), "is not"),
        (lambda t: t.replace("- **Action**: REMOVE\n", ""), 'has no "Action"'),
        (lambda t: t.replace("- **Action**: REMOVE", "- **Action**: DELETE"), "action"),
        (lambda t: t.replace("- **Metrics**: FID", "- **Colour**: red"), 'unknown field "Colour"'),
        (lambda t: t.replace("### Drop A\n", "Drop A\n"), 'expected "### <ablation name>"'),
        (lambda t: t + "\ntrailing junk", "unexpected text after the plan box"),
        (lambda t: t.replace("#9c27b0", "#000000").replace("#f3e5f5", "#000000"), "colour"),
    ],
)
def test_broken_trajectories_name_the_problem(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    text = mutate(render_trajectory(_plan()))
    with pytest.raises(TrajectoryFormatError) as info:
        parse_trajectory(text, where="x.md")
    assert message in str(info.value)
    assert str(info.value).startswith("x.md: ")
    assert "\n" not in str(info.value)


def test_unknown_colour_accepted_with_explicit_mode() -> None:
    text = render_trajectory(_plan()).replace("#9c27b0", "#000").replace("#f3e5f5", "#000")
    assert parse_trajectory(text, mode="reviewer").mode == "reviewer"
