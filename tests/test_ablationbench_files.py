"""AblationBench's folders and configs: read as its harness writes them, written as it reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ablationkit.ablationbench.config import load_prompt_config
from ablationkit.ablationbench.files import (
    read_judge_output,
    read_planner_output,
    write_judge_output,
    write_planner_output,
)
from ablationkit.ablationbench.scoring import AuthorLine, ReviewerLine
from ablationkit.ablationbench.source import raw_source
from ablationkit.errors import FormatError

ROW = {
    "name": "No KL",
    "ablated_part": "KL term",
    "action": "REMOVE",
    "replacement": None,
    "metrics": ["FID"],
}


def test_planner_folder_round_trips_byte_for_byte(tmp_path: Path) -> None:
    # in the order the folder lists them, so that the summary file compares byte for byte
    plans = {"empty": [], "paper-1_a": [ROW, {**ROW, "name": "Größe", "action": "REPLACE"}]}
    write_planner_output(tmp_path, plans, {"paper-1_a": 0.25})
    text = (tmp_path / "paper-1_a.jsonl").read_text("utf-8")
    assert not text.endswith("\n")  # the reference writes no final newline
    assert text.splitlines()[0] == json.dumps(ROW, separators=(",", ":"))
    assert (tmp_path / "empty.jsonl").read_bytes() == b""
    out = read_planner_output(tmp_path)
    assert out.plans == plans
    assert out.costs == {"empty": 0.0, "paper-1_a": 0.25}
    copy = tmp_path / "copy"
    write_planner_output(copy, out.plans, out.costs)
    for name in ("paper-1_a.jsonl", "empty.jsonl", "plans.json"):
        assert (copy / name).read_bytes() == (tmp_path / name).read_bytes()


def test_judge_folder_lines_in_both_modes_without_evaluations_json(tmp_path: Path) -> None:
    author = tmp_path / "author"
    author.mkdir()
    (author / "p1.jsonl").write_text(
        '{"name_in_paper": "A", "name_in_plan": ["x", "y"]}\n'
        '{"name_in_paper": "B", "name_in_plan": null}',  # no final newline
        "utf-8",
    )
    got = read_judge_output(author, "author")
    assert got.lines == {"p1": [AuthorLine("A", ["x", "y"]), AuthorLine("B", None)]}
    assert got.costs == {}
    reviewer = tmp_path / "reviewer"
    write_judge_output(
        reviewer,
        {"p2": [ReviewerLine("x", True), ReviewerLine("x", True)]},
        [{"id": "p2", "cost": 0.5}],
    )
    back = read_judge_output(reviewer, "reviewer")
    assert back.lines["p2"] == [ReviewerLine("x", True), ReviewerLine("x", True)]
    assert back.costs == {"p2": 0.5}


def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"name_in_paper": "A"}\n{not json\n', "utf-8")
    with pytest.raises(FormatError, match=r"p\.jsonl: line 2: not JSON"):
        read_judge_output(tmp_path, "author")
    (tmp_path / "p.jsonl").write_text('{"name_in_plan": 3}\n', "utf-8")
    with pytest.raises(FormatError, match="line 1"):
        read_judge_output(tmp_path, "reviewer")


def test_an_id_that_is_a_path_is_never_written(tmp_path: Path) -> None:
    for bad in ("../escape", "a/b", "..", ".hidden"):
        with pytest.raises(FormatError, match="cannot be an AblationBench file name"):
            write_planner_output(tmp_path / "out", {bad: [ROW]}, {})
    assert not (tmp_path / "escape.jsonl").exists()


def test_a_symlinked_plan_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps(ROW), "utf-8")
    folder = tmp_path / "plans"
    folder.mkdir()
    os.symlink(secret, folder / "p.jsonl")
    with pytest.raises(FormatError, match="refused"):
        read_planner_output(folder)


def test_raw_source_lists_files_pattern_by_pattern_and_stays_inside(tmp_path: Path) -> None:
    paper = tmp_path / "paper"
    (paper / "sec").mkdir(parents=True)
    (paper / "main.tex").write_text("\\section{Method}", "utf-8")
    (paper / "sec" / "b.tex").write_text("B", "utf-8")
    (paper / "refs.bib").write_text("@article{x}", "utf-8")
    (paper / "notes.txt").write_text("not read: the reference's pattern is '.txt'", "utf-8")
    (paper / "paper.md").write_text("# Title", "utf-8")
    outside = tmp_path / "outside.tex"
    outside.write_text("SECRET", "utf-8")
    os.symlink(outside, paper / "link.tex")
    got = raw_source(paper)
    assert got.files == ["main.tex", "sec/b.tex", "refs.bib", "paper.md"]
    assert got.text.startswith('<file name="main.tex">\n\\section{Method}\n</file>\n')
    assert "SECRET" not in got.text and "not read" not in got.text
    assert got.warnings == ["link.tex: outside the paper's folder or not a regular file; skipped"]


def test_prompt_config_renders_in_a_sandbox(tmp_path: Path) -> None:
    config = tmp_path / "plan.yaml"
    config.write_text(
        "prompts:\n  system: |-\n    You plan ablations.\n"
        "  user: |-\n    {{paper_title}} / {{num_ablations}}\n    {{paper_source}}\n",
        "utf-8",
    )
    loaded = load_prompt_config(config)
    messages = loaded.messages(paper_title="T", num_ablations=5, paper_source="S")
    assert messages == [
        {"role": "system", "content": "You plan ablations."},
        {"role": "user", "content": "T / 5\nS"},
    ]
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        "prompts:\n  system: s\n  user: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n",
        "utf-8",
    )
    with pytest.raises(FormatError, match="user prompt template"):
        load_prompt_config(evil).render_user()
    (tmp_path / "bad.yaml").write_text("prompts: [1, 2]\n", "utf-8")
    with pytest.raises(FormatError, match=r"prompts\.system"):
        load_prompt_config(tmp_path / "bad.yaml")


def test_judge_eval_macro_mean_over_instances(tmp_path: Path) -> None:
    from ablationkit.ablationbench.judge_eval import evaluate_judge_folder, load_label_rows

    labels = tmp_path / "labels.jsonl"
    rows = [
        {
            "id": "gpt-4o/p1",
            "labels": '{"name_in_paper": "A", "name_in_plan": "x"}\n'
            '{"name_in_paper": "B", "name_in_plan": null}',
        },
        {"id": "gpt-4o/p2", "labels": '{"name_in_paper": "A", "name_in_plan": null}'},
        {"id": "gpt-4o/p3", "labels": '{"name_in_paper": "A", "name_in_plan": "y"}'},
    ]
    labels.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    judge = tmp_path / "judge" / "gpt-4o"
    judge.mkdir(parents=True)
    # p1: A right, B wrongly matched -> P 1/2, R 1, F1 2/3
    (judge / "p1.jsonl").write_text(
        '{"name_in_paper": "A", "name_in_plan": "x"}\n{"name_in_paper": "B", "name_in_plan": "z"}'
    )
    (judge / "p2.jsonl").write_text('{"name_in_paper": "A", "name_in_plan": null}')
    # p3 has no judge file: 0
    got = evaluate_judge_folder(load_label_rows(labels), tmp_path / "judge", "author")
    assert got["per_instance"]["gpt-4o/p1"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3}
    )
    # p2: labels and judge both all-null; the reference's pandas reads that column as NaN,
    # which is truthy, so it scores perfect agreement; the format's meaning gives 0
    assert got["per_instance"]["gpt-4o/p2"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert got["unjudged"] == 1
    assert got["macro"]["f1"] == pytest.approx((2 / 3 + 1) / 3)
    plain = evaluate_judge_folder(
        load_label_rows(labels), tmp_path / "judge", "author", faithful_nulls=False
    )
    assert plain["per_instance"]["gpt-4o/p2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    escape = tmp_path / "escape.jsonl"
    escape.write_text(json.dumps({"id": "../../etc/x", "labels": ""}), "utf-8")
    with pytest.raises(FormatError, match="refused"):
        evaluate_judge_folder(load_label_rows(escape), tmp_path / "judge", "author")


def test_eval_judge_cli_scores_a_judge_folder_in_the_reference_format(
    tmp_path: Path, cli: str
) -> None:
    import subprocess

    labels = tmp_path / "labels.jsonl"
    rows = [
        {"id": "m/p1", "labels": '{"name_in_plan": "x", "appears_in_review": true}'},
        {"id": "m/p2", "labels": '{"name_in_plan": "y", "appears_in_review": false}'},
    ]
    labels.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    folder = tmp_path / "judge" / "m"
    folder.mkdir(parents=True)
    (folder / "p1.jsonl").write_text('{"name_in_plan": "x", "appears_in_review": true}')
    (folder / "p2.jsonl").write_text('{"name_in_plan": "y", "appears_in_review": false}')
    done = subprocess.run(
        [
            *(cli, "eval-judge", str(labels), "--judge-output", str(tmp_path / "judge")),
            *("--mode", "reviewer"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    # p2: both say "does not appear": 0 in the reference's macro mean, no harm pooled
    assert found["macro"]["f1"] == pytest.approx(0.5)
    assert found["pooled"]["f1"] == pytest.approx(1.0)
