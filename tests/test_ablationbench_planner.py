"""The reference-protocol planner: raw source in, the reply's lines out, nothing added."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _reference_responder(n_lines: int) -> Any:
    def respond(body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        assert '<file name="' in user  # the raw source view, not our parsed one
        assert "response_format" not in body  # the reference asks for no JSON schema
        return _reply([{**ROW, "name": f"item {i}"} for i in range(n_lines)])

    return respond


def test_cli_plan_under_the_reference_protocol_keeps_the_whole_reply(
    tmp_path: Path, cli: str
) -> None:
    import subprocess

    from ablationkit.testing import FakeLLMServer

    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "paper.md").write_text("# Gated\n\n## Abstract\n\nWe gate.\n\n## 1 Method\n\nA gate.")
    with FakeLLMServer(responder=_reference_responder(7)) as server:
        done = subprocess.run(
            [
                *(cli, "plan", str(paper), "--protocol", "ablationbench", "--mode", "reviewer"),
                *("--model", "m", "--api-base", server.url, "--json"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        asked = server.requests[0]["messages"][-1]["content"]
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert len(plan["ablations"]) == 7  # more than k, none merged or cut
    assert plan["planner"] == "ablationbench-planner"
    assert "Name the 2 most important ablations" in asked  # k defaults to 2 in reviewer mode


def test_batch_under_the_reference_protocol_takes_k_per_instance_mode(tmp_path: Path) -> None:
    from ablationkit.bench import Run
    from ablationkit.testing import FakeLLMServer

    rows = []
    for i, mode in enumerate(("author", "reviewer")):
        folder = tmp_path / f"p{i}"
        folder.mkdir()
        (folder / "main.md").write_text("# T\n\n## Abstract\n\nA.\n\n## 1 Method\n\nM.", "utf-8")
        row: dict[str, Any] = {"id": f"p{i}", "paper_title": "T", "paper_path": f"p{i}"}
        row["mode"] = mode
        if mode == "author":
            row["ablations_in_paper"] = json.dumps([ROW])
        else:
            row["num_ablation_suggestions"] = 2
        rows.append(row)
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    with FakeLLMServer(responder=_reference_responder(3)) as server:
        report = Run(tmp_path / "run").plan(
            dataset, model="m", api_base=server.url, protocol="ablationbench"
        )
        asked = sorted(r["messages"][-1]["content"] for r in server.requests)
    assert report.failed == {} and sorted(report.done) == ["p0", "p1"]
    assert any("Propose the 5 most important" in a for a in asked)
    assert any("Name the 2 most important" in a for a in asked)


def test_dry_run_under_the_reference_protocol_counts_the_raw_source(tmp_path: Path) -> None:
    from ablationkit.bench.runner import dry_run

    folder = tmp_path / "p0"
    folder.mkdir()
    (folder / "main.md").write_text("# T\n\n## 1 Method\n\n" + "word " * 2000, "utf-8")
    row = {"id": "p0", "paper_title": "T", "paper_path": "p0", "mode": "author"}
    row["ablations_in_paper"] = json.dumps([ROW])
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(json.dumps(row), "utf-8")
    ours = dry_run(dataset, model="openai/gpt-4o")
    theirs = dry_run(dataset, model="openai/gpt-4o", protocol="ablationbench")
    assert theirs.requests == 1 and theirs.failed == {}
    assert theirs.prompt_tokens > 2000  # every word of the file, unparsed
    assert theirs.cost_usd_estimate is not None and ours.cost_usd_estimate is not None


def test_our_planner_can_read_the_raw_source_whole(tmp_path: Path) -> None:
    from ablationkit.planner import PlanConfig, prepare_plan

    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "main.tex").write_text(
        "\\documentclass{article}\\title{Gated}\\begin{document}\\maketitle"
        "\\section{Method}We gate.\\section{Experiments}It works. % a comment kept raw\n"
        "\\end{document}",
        "utf-8",
    )
    config = PlanConfig(model="openai/gpt-4o", source="raw")
    request = prepare_plan(paper, config)
    user = request.messages[-1]["content"]
    assert '<file name="main.tex">' in user and "% a comment kept raw" in user
    assert request.dropped == []
    parsed = prepare_plan(paper, PlanConfig(model="openai/gpt-4o"))
    assert "It works" not in parsed.messages[-1]["content"]  # the author view stops at Method
