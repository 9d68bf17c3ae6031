"""Loading plans from every supported input, and the errors for inputs we cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablationkit import FormatError, Plan, convert_files, detect_format, dump_plan, load_plan


def test_ground_truth_jsonl_loads_as_is(papers_dir: Path) -> None:
    path = papers_dir / "coles-event-sequences" / "ground_truth.jsonl"
    plan = load_plan(path, mode="author")
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    assert [a.name for a in plan.ablations] == [obj["name"] for obj in lines]
    first = plan.ablations[0].model_dump(mode="json")
    # AblationBench's fields and any extras (here "evidence") survive untouched.
    assert first == lines[0]
    assert plan.paper_id == "ground_truth" and plan.model == "unknown"


def test_json_list_and_plan_json(tmp_path: Path) -> None:
    items = [
        {"name": "a", "ablated_part": "x", "action": "remove", "metrics": ["acc"]},
        {
            "name": "b",
            "ablated_part": "y",
            "action": "REPLACE",
            "replacement": {"lr": [0.1, 1]},
            "metrics": "F1",
        },
    ]
    source = tmp_path / "list.weird-extension"
    source.write_text(json.dumps(items), "utf-8")
    assert detect_format(source.read_text("utf-8")) == "ablation-list"
    plan = load_plan(source, mode="reviewer", model="openai/gpt-4o")
    assert plan.ablations[0].action == "REMOVE"
    assert plan.ablations[1].replacement == {"lr": [0.1, 1]}
    assert plan.ablations[1].metrics == ["F1"]
    plan_file = tmp_path / "p.json"
    plan_file.write_text(dump_plan(plan, "json"), "utf-8")
    assert detect_format(plan_file.read_text("utf-8")) == "plan-json"
    again = load_plan(plan_file)
    assert again == plan
    assert list(json.loads(plan_file.read_text("utf-8"))) == [
        "planner",
        "model",
        "paper_id",
        "mode",
        "reasoning",
        "ablations",
        "usage",
        "timings",
    ]


def test_trajectory_and_json_convert_into_each_other(seeds_dir: Path, tmp_path: Path) -> None:
    seed = seeds_dir / "003_feeef2330d445f64.txt"
    [as_json] = convert_files([seed], "json", tmp_path / "j")
    [as_md] = convert_files([as_json.output], "md", tmp_path / "m")
    assert as_md.output is not None
    md = as_md.output.read_text("utf-8")
    assert "📋 Ablation Plan" in md
    assert Plan.model_validate_json(as_json.output.read_text("utf-8")) == load_plan(as_md.output)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\x00\x01\x02binary", "binary file"),
        (b"\xff\xfe caf\xe9", "not UTF-8"),
        (b'{"planner": "x", ', "invalid JSON"),
        (b'[{"name": "a"}]', "item 0: ablated_part: Field required"),
        (b'{"name": "a", "ablated_part": "b", "action": "ADD"}\n{oops\n', "line 2: invalid JSON"),
        (b"just some notes\n", "not a trajectory"),
        (b"[tool.ruff]\nline-length = 1\n", "not a trajectory"),
        (b'{"name": "a", "ablated_part": "b", "action": "REMOVE"}\n', "does not say its mode"),
        (b'{"planner": "x", "model": "m", "paper_id": "p", "mode": "x", "ablations": []}', "mode"),
    ],
)
def test_bad_inputs_get_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        load_plan(path)
    text = str(info.value)
    assert message in text
    assert text.startswith(f"{path}: ") and "\n" not in text


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        load_plan(tmp_path / "nope.md")
    with pytest.raises(FormatError, match="is a directory"):
        load_plan(tmp_path)


def test_convert_files_keeps_going_and_refuses_overwrites(seeds_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("no plan here", "utf-8")
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "000_f000b98a064e9d7e.txt"
    twin.write_bytes((seeds_dir / "000_f000b98a064e9d7e.txt").read_bytes())
    seeds = sorted(seeds_dir.glob("*.txt"))
    results = convert_files([bad, *seeds, twin], "md", tmp_path / "out")
    assert [r.ok for r in results] == [False, True, True, True, True, True, False]
    assert "would overwrite" in (results[-1].error or "")
    assert len(list((tmp_path / "out").iterdir())) == 5
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_written_files_get_the_users_umask_not_0600(tmp_path: Path) -> None:
    import os
    import stat

    from ablationkit.fsutil import atomic_write_text

    target = tmp_path / "plan.json"
    atomic_write_text(target, "{}")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
