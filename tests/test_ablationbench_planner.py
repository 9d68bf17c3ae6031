"""The reference-protocol planner: raw source in, the reply's lines out, nothing added."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablationkit.planner.reference import (
    ReferenceReplyError,
    parse_reference_reply,
    prepare_reference_plan,
    reference_plan,
)

ROW = {"name": "No gate", "ablated_part": "gate", "action": "REMOVE", "metrics": ["acc"]}


def _reply(rows: list[dict[str, object]]) -> str:
    body = "\n".join(json.dumps(r) for r in rows)
    return f"<discussion>The gate matters.</discussion>\n<predictions>\n{body}\n</predictions>"


def test_prepare_reads_the_raw_source_with_the_reference_variables(tmp_path: Path) -> None:
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "main.tex").write_text("\\section{Method} We gate.", "utf-8")
    (paper / "refs.bib").write_text("@misc{x}", "utf-8")
    config = tmp_path / "plan.yaml"
    config.write_text(
        "prompts:\n  system: S\n  user: '{{paper_title}}|{{problem_statement}}|"
        "{{num_ablations}}|{{paper_source}}'\n",
        "utf-8",
    )
    request = prepare_reference_plan(
        paper,
        paper_id="p",
        mode="reviewer",
        k=2,
        title="T",
        abstract="A",
        planner_config=config,
    )
    assert request.messages[0] == {"role": "system", "content": "S"}
    user = request.messages[1]["content"]
    assert user.startswith('T|A|2|<file name="main.tex">\n\\section{Method} We gate.\n</file>')
    assert request.files == ["main.tex", "refs.bib"]


def test_the_plan_keeps_every_line_duplicates_and_beyond_k() -> None:
    rows = [ROW, ROW, *({**ROW, "name": f"n{i}"} for i in range(6))]
    _, ablations = parse_reference_reply(_reply(rows))
    assert len(ablations) == 8 and ablations[0].name == ablations[1].name


@pytest.mark.parametrize(
    "bad",
    [
        {**ROW, "action": "Remove"},  # the reference's Literal is exact
        {k: v for k, v in ROW.items() if k != "metrics"},  # metrics required there
    ],
)
def test_a_line_the_reference_rejects_fails_the_paper(bad: dict[str, object]) -> None:
    with pytest.raises(ReferenceReplyError, match="prediction line 2"):
        parse_reference_reply(_reply([ROW, bad]))


def test_no_predictions_block_is_an_empty_plan_as_there(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.md").write_text("# T\n\nx", "utf-8")
    request = prepare_reference_plan(
        tmp_path / "p", paper_id="p", mode="author", k=5, title="T", abstract="A"
    )
    plan = reference_plan(request, "I have no idea.", model="m")
    assert plan.ablations == [] and plan.planner == "ablationbench-planner"
