"""The bench judge stage under the reference protocol, end to end through the CLI and the fake
server: the reference's reply format, its inputs (abstract, reviews, the paper's source), the
judge's own YAML prompts, and judgement files that keep the lines and the seeded draw."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from ablationkit.bench import Run
from ablationkit.testing import FakeLLMServer
from fakes import respond, tiny_dataset

TEX = (
    "\\documentclass{article}\\title{Gated Things}\\begin{document}\\maketitle"
    "\\begin{abstract}We gate.\\end{abstract}\\section{Method}A gate and an encoder."
    "\\end{document}\n"
)
CONFIG = """\
prompts:
  system: REFERENCE SYSTEM
  user: |
    TITLE={{ paper_title }}
    ABSTRACT={{ abstract }}
    REVIEWS={{ official_reviews }}
    PLAN=
    {{ problem_statement }}
    SOURCE=
    {{ paper_source }}
model:
  temperature: 0.0
"""


def _predictions(rows: list[dict[str, Any]]) -> str:
    body = "\n".join(json.dumps(r) for r in rows)
    return f"<discussion>compared</discussion>\n<predictions>\n{body}\n</predictions>"


def reference_judge(body: dict[str, Any]) -> str:
    """Answers as the reference's judges do: author mode reads which list is the paper's,
    reviewer mode labels each plan item; planner requests get the plan."""
    if "response_format" in body:  # the planner asks for JSON by schema; the reference never
        return respond(body)
    user = body["messages"][-1]["content"]
    if "List A (one JSON object per line):" in user:
        side_a = user.split("List A (one JSON object per line):\n")[1].split("\n\nList B")[0]
        paper, plan = ("A", "B") if '"Gate"' in side_a else ("B", "A")
        return _predictions(
            [{f"name_in_{paper}": "Gate", f"name_in_{plan}": "Drop the gate"}]
            if body["model"] != "c"
            else [{f"name_in_{paper}": "Gate", f"name_in_{plan}": None}]
        )
    names = re.findall(r'"name":"([^"]+)"', user)
    return _predictions(
        [{"name_in_plan": n, "appears_in_review": n == "Drop the gate"} for n in names]
    )


def _judgements(run: Path) -> dict[str, dict[str, Any]]:
    """Every judgement file of the run, by judge and paper."""
    found = {}
    for path in (run / "judgements").rglob("*.json"):
        data = json.loads(path.read_text("utf-8"))
        found[f"{data['judge']}/{data['paper_id']}"] = data
    return found


def _cli(cli: str, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if cache is not None:  # a command without a run keeps its cache there, not in ~/.cache
        env["ABLATIONKIT_CACHE_DIR"] = str(cache)
    return subprocess.run(
        [cli, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_reviewer_judge_sees_abstract_reviews_and_source_through_its_yaml(
    cli: str, tmp_path: Path
) -> None:
    (tmp_path / "papers" / "r1").mkdir(parents=True)
    (tmp_path / "papers" / "r1" / "main.tex").write_text(TEX, "utf-8")
    row = {
        "id": "r1",
        "mode": "reviewer",
        "title": "Gated Things",
        "abstract": "We gate.",
        "path": "papers/r1",
        "reviews": ["Please ablate the gate.", "Try a wider encoder."],
        "target_count": 2,
    }
    dataset = tmp_path / "data.jsonl"
    dataset.write_text(json.dumps(row) + "\n", "utf-8")
    config = tmp_path / "judge.yaml"
    config.write_text(CONFIG, "utf-8")
    run = tmp_path / "run"
    with FakeLLMServer(responder=reference_judge) as server:
        assert Run(run).plan(dataset, model="m", api_base=server.url, k=2).done == ["r1"]
        result = _cli(
            cli,
            *("bench", "judge", "--run", str(run), "--judge", "m", "--api-base", server.url),
            *("--judge-protocol", "ablationbench", "--judge-config", str(config), "--seed", "5"),
        )
        assert result.returncode == 0, result.stderr
        [request] = server.requests[1:]
        command = ["bench", "judge", "--run", str(run), "--judge", "m", "--api-base", server.url]
        options = ["--judge-protocol", "ABLATIONBENCH", "--judge-config", str(config)]
        again = _cli(cli, *command, *options, "--seed", "5")
        assert again.returncode == 0 and "1 already done" in again.stderr
        other_seed = _cli(cli, *command, *options, "--seed", "6")
        assert len(server.requests) == 2  # neither rerun asked the model anything
    assert "1 done" in result.stderr
    assert other_seed.returncode == 1
    assert other_seed.stderr.count("\n") == 1 and "other seed (5, now 6)" in other_seed.stderr
    assert request["messages"][0] == {"role": "system", "content": "REFERENCE SYSTEM"}
    assert request["temperature"] == 0 and request["top_p"] == 1
    user = request["messages"][1]["content"]
    assert "TITLE=Gated Things" in user and "ABSTRACT=We gate." in user
    assert "Please ablate the gate." in user and "Try a wider encoder." in user
    assert '<file name="main.tex">\n\\documentclass{article}' in user  # the paper's source
    [verdict] = _judgements(run).values()
    assert verdict["judge"] == "ab:m" and verdict["error"] is None
    assert verdict["draw"] == {"seed": 5}
    assert verdict["lines"] == [
        {"name_in_plan": "Drop the gate", "appears_in_review": True},
        {"name_in_plan": "Other encoder", "appears_in_review": False},
    ]


def test_reference_majority_of_three_writes_lines_and_draws(cli: str, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 2)
    run = tmp_path / "run"
    with FakeLLMServer(responder=reference_judge) as server:
        assert len(Run(run).plan(dataset, model="m", api_base=server.url, k=2).done) == 2
        judges = ("--judge", "a", "--judge", "b", "--judge", "c")
        result = _cli(
            cli,
            *("bench", "judge", "--run", str(run), *judges, "--api-base", server.url),
            *("--judge-protocol", "ablationbench"),
        )
        assert result.returncode == 0, result.stderr
        assert len(server.requests) == 2 + 6
        # every judge shown the paper without its source: our author prompt does not use it
        assert all("<file" not in r["messages"][-1]["content"] for r in server.requests[2:])
    verdicts = _judgements(run)
    assert len(verdicts) == 2
    for verdict in verdicts.values():
        assert verdict["error"] is None and verdict["judge"].startswith("ab:majority")
        # two of three judges matched the gate: the majority keeps the match
        assert verdict["lines"] == [{"name_in_paper": "Gate", "name_in_plan": "Drop the gate"}]
        assert [j["paper_side"] in "AB" for j in verdict["draw"]["judges"]] == [True] * 3
        assert verdict["matches"] == [{"planned": 0, "target": 0}]


def test_eval_judge_runs_the_reference_judge_against_labels(cli: str, tmp_path: Path) -> None:
    gate = {"name": "Gate", "ablated_part": "the gate", "action": "REMOVE", "metrics": []}
    planned = [
        {**gate, "name": "Drop the gate"},
        {**gate, "name": "Other encoder", "ablated_part": "the encoder"},
    ]
    rows = [
        {"paper_id": f"p{i}", "planned": planned, "targets": [gate], "matches": [[0, 0]]}
        for i in range(3)
    ]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    with FakeLLMServer(responder=reference_judge) as server:
        result = _cli(
            cli,
            *("eval-judge", str(labels), "--judge", "m", "--api-base", server.url),
            *("--judge-protocol", "ablationbench", "--seed", "3"),
            cache=tmp_path / "cache",
        )
        assert len(server.requests) == 3
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["judge"] == "ab:m" and report["errors"] == 0
    assert report["pairs"]["f1"] == 1.0
    # stderr says how far it is, a line per labelled plan; stdout stays the JSON alone
    judged = [line for line in result.stderr.splitlines() if line.startswith("judged ")]
    assert len(judged) == 3 and judged[-1].startswith("judged 3/3: p")
    assert all(line.endswith("(1 match)") for line in judged)
