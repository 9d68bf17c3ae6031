"""Datasets and resumable batch runs, through the fake server: resume, kill, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ablationkit.bench import Run, load_dataset, make_judge
from ablationkit.bench.datasets import hub_instances
from ablationkit.errors import FormatError
from ablationkit.testing import FakeLLMServer, Reply
from fakes import respond, tiny_dataset


def test_datasets(papers_dir: Path, tmp_path: Path) -> None:
    sample = load_dataset("sample")
    assert [i.id for i in sample] == ["kestrel-sample", "gatenorm-sample", "kestrel-sample-review"]
    assert sample[2].mode == "reviewer" and sample[2].reviews
    assert sample[0].load().title.startswith("KESTREL")
    assert sample[1].load().sections[1].role == "method"
    shared = load_dataset(papers_dir)
    assert {i.id for i in shared} >= {"maskgit", "coles-event-sequences"}
    assert all(i.ground_truth and Path(i.path or "").exists() for i in shared)
    assert load_dataset("sample", mode="reviewer", limit=1)[0].mode == "reviewer"
    assert [i.id for i in load_dataset("sample", ids=["gatenorm-sample"])] == ["gatenorm-sample"]
    with pytest.raises(FormatError, match="unknown ids: nope"):
        load_dataset("sample", ids=["nope"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "utf-8")
    with pytest.raises(FormatError, match="duplicate instance id 'a' on lines 1 and 2"):
        load_dataset(bad)
    bad.write_text('{"id": "a", "mode": "sideways"}\n', "utf-8")
    with pytest.raises(FormatError, match="line 1: not a dataset instance"):
        load_dataset(bad)


def test_ablationbench_rows_map_to_instances(tmp_path: Path) -> None:
    """Rows shaped as AblationBench's own harness reads them (its ``types.py`` and judges)."""
    (tmp_path / "data" / "papers" / "p1").mkdir(parents=True)
    (tmp_path / "data" / "papers" / "p1" / "main.tex").write_text(
        "\\documentclass{article}\\title{Gated Things}\\begin{document}\\maketitle"
        "\\begin{abstract}We gate.\\end{abstract}\\section{Method}A gate.\\end{document}",
        "utf-8",
    )
    gt = [{"name": "No gate", "ablated_part": "gate", "action": "REMOVE", "metrics": ["acc"]}]
    author_row = {
        "id": "p1",
        "paper_title": "Gated Things",
        "paper_abstract": "We gate.",
        "paper_path": "data/papers/p1",
        "ablations_in_paper": json.dumps(gt),
    }
    [author] = hub_instances([author_row], "author", papers_root=tmp_path)
    assert author.title == "Gated Things" and author.ground_truth[0].name == "No gate"
    assert author.load().title == "Gated Things"
    jsonl_row = {**author_row, "ablations_in_paper": json.dumps(gt[0]) + "\n" + json.dumps(gt[0])}
    assert len(hub_instances([jsonl_row], "author")[0].ground_truth) == 2
    with pytest.raises(FormatError, match="--papers-root"):
        hub_instances([author_row], "author", papers_root=tmp_path / "elsewhere")[0].load()
    with pytest.raises(FormatError, match=r"row 0.*'ablations_in_paper' is not JSON"):
        hub_instances([{**author_row, "ablations_in_paper": "[{"}], "author")
    with pytest.raises(FormatError, match="row 0: not an AblationBench row"):
        hub_instances([{**author_row, "ablations_in_paper": '[{"name": 1}]'}], "author")

    reviewer_row = {
        "id": "r1",
        "paper_title": "Gated Things",
        "paper_abstract": "We gate.",
        "paper_path": str(tmp_path / "data" / "papers" / "p1"),
        "review_text": json.dumps(["Please ablate the gate.", "Try a wider encoder."]),
        "num_ablation_suggestions": 3,
    }
    [reviewer] = hub_instances([reviewer_row], "reviewer")
    assert reviewer.reviews == ["Please ablate the gate.", "Try a wider encoder."]
    assert reviewer.target_count == 3 and not reviewer.ground_truth
    dataset = tmp_path / "reviewer.jsonl"
    dataset.write_text(reviewer.model_dump_json() + "\n", "utf-8")
    with FakeLLMServer(responder=respond) as server:
        run = Run(tmp_path / "run")
        assert run.plan(dataset, model="m", api_base=server.url, k=2).done == ["r1"]
        assert run.judge(make_judge(["m"], run.client, server.url)).done == ["r1"]
        scores = run.score(resamples=10)
    macro = scores.judges["lm:m"].macro
    # one of two suggestions appears in the reviews, which asked for three ablations
    assert macro.precision == 0.5 and macro.recall == pytest.approx(1 / 3)


def test_run_plan_judge_score_and_resume(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 6)
    with FakeLLMServer(responder=respond) as server:
        run = Run(tmp_path / "run", concurrency=3)
        report = run.plan(dataset, model="m", api_base=server.url, k=2)
        assert sorted(report.done) == [f"paper-{i:03d}" for i in range(6)] and not report.failed
        assert len(server.requests) == 6
        judged = run.judge(make_judge(["m"], run.client, server.url))
        assert len(judged.done) == 6 and len(server.requests) == 12
        again = Run(tmp_path / "run", concurrency=3)  # a new process resuming the run
        assert again.plan(dataset, model="m", api_base=server.url, k=2).skipped
        assert len(again.judge(make_judge(["m"], again.client, server.url)).skipped) == 6
        assert len(server.requests) == 12  # nothing was asked twice
        scores = again.score(resamples=100)
    lm = scores.judges["lm:m"]
    assert lm.papers == 6 and lm.macro.precision == 0.5 and lm.macro.recall == 1
    saved = json.loads((tmp_path / "run" / "scores.json").read_text("utf-8"))
    assert saved["model"] == "m" and saved["plans"] == 6
    manifest = json.loads((tmp_path / "run" / "run.json").read_text("utf-8"))
    assert set(manifest["stages"]) == {"plan", "judge:lm:m"}
    with pytest.raises(Exception, match="planned with other model"):
        Run(tmp_path / "run").plan(dataset, model="other-model", api_base="http://127.0.0.1:9")


def test_one_failing_paper_never_stops_the_others(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 5)

    def flaky(body: dict) -> Reply | str:  # type: ignore[type-arg]
        if "variant 3" in body["messages"][1]["content"]:
            return Reply(status=400, content="this paper is cursed")
        return respond(body)

    with FakeLLMServer(responder=flaky) as server:
        run = Run(tmp_path / "run", concurrency=2)
        report = run.plan(dataset, model="m", api_base=server.url)
        assert len(report.done) == 4 and list(report.failed) == ["paper-003"]
        assert "HTTP 400" in report.failed["paper-003"]
        failures = json.loads((tmp_path / "run" / "failures.json").read_text("utf-8"))
        assert "paper-003" in failures["plan"]
        server.responder = respond  # the provider recovers: a rerun finishes the job
        rerun = Run(tmp_path / "run", concurrency=2).plan(dataset, model="m", api_base=server.url)
        assert rerun.done == ["paper-003"] and len(rerun.skipped) == 4


def test_a_paper_that_cannot_be_read_fails_alone(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 3)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 and then nothing")
    with dataset.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "broken", "path": str(broken)}) + "\n")
    with FakeLLMServer(responder=respond) as server:
        run = Run(tmp_path / "run", concurrency=4)
        report = run.plan(dataset, model="m", api_base=server.url, k=2)  # the fake's 2 items
        assert sorted(report.done) == ["paper-000", "paper-001", "paper-002"]
        assert list(report.failed) == ["broken"] and "broken.pdf" in report.failed["broken"]
        assert len(server.requests) == 3  # the unreadable paper cost no model call


def test_killed_run_resumes_without_repeating_calls(cli: str, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 12)
    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=respond, latency=0.4) as server:
        command = [
            cli,
            "bench",
            "plan",
            str(dataset),
            "--run",
            str(run_dir),
            "--model",
            "m",
            "--api-base",
            server.url,
            "--concurrency",
            "2",
            "-k",
            "2",  # the fake planner's two ablations: no plan is short and asked again
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while len(list((run_dir / "plans").glob("*.json"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        planned_before = {p.stem for p in (run_dir / "plans").glob("*.json")}
        asked_before = len(server.requests)
        assert 4 <= len(planned_before) < 12
        time.sleep(0.5)  # let requests that were in flight finish on the server side
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert finished.returncode == 0, finished.stderr
        assert len(list((run_dir / "plans").glob("*.json"))) == 12
        asked_for = [r["messages"][1]["content"] for r in server.requests[asked_before:]]
    # The second run asked only for papers that had no plan; each at most once.
    repeated = [
        pid
        for pid in planned_before
        if any(f"variant {int(pid.split('-')[1])}." in text for text in asked_for)
    ]
    assert repeated == []
    assert len(asked_for) <= 12 - len(planned_before)
    assert "12 already done" not in finished.stderr and "0 failed" in finished.stderr


def test_dry_run_calls_no_model(cli: str, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 3)
    result = subprocess.run(
        [
            cli,
            "bench",
            "plan",
            str(dataset),
            "--run",
            str(tmp_path / "r"),
            "--model",
            "openai/gpt-4o",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["requests"] == 3 and summary["prompt_tokens"] > 300
    assert summary["cost_usd_estimate"] > 0
    assert not (tmp_path / "r" / "plans").exists()


def test_bench_cli_end_to_end(cli: str, tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 3)
    env = {**os.environ, "COLUMNS": "200"}
    with FakeLLMServer(responder=respond) as server:
        common = ["--run", str(tmp_path / "run")]
        steps = [
            ["bench", "plan", str(dataset), *common, "--model", "m", "--api-base", server.url],
            ["bench", "judge", *common, "--judge", "m", "--api-base", server.url],
            ["bench", "score", *common],
        ]
        outputs = []
        for step in steps:
            result = subprocess.run(
                [cli, *step], capture_output=True, text=True, env=env, timeout=120, check=False
            )
            assert result.returncode == 0, result.stderr
            outputs.append(result)
    assert "plan: 3 done" in outputs[0].stderr
    # k=5 asked, the fake planner gives 2 ablations of which 1 matches: precision is 1/5
    assert "lm:m" in outputs[2].stdout and "0.200" in outputs[2].stdout
