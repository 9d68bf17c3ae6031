"""The critical path of a CLI run (issue 15): what a ``bench plan`` process does before its
first request, while its requests are in flight, and what ``--help`` costs.

Nothing here measures time: ``benchmarks/bench_cli_e2e.py`` does. These tests pin down the
structure that the measured figures rest on: which modules a process imports, how far ahead
of their requests papers are prepared, that every paper is planned once with the requested
number of requests in flight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ablationkit.testing import FakeLLMServer

HANG_GUARD = 120  # seconds: a hang guard only, never a measurement

PLAN = {
    "reasoning": "The gate and the encoder carry the method.",
    "ablations": [
        {
            "name": "Drop the gate",
            "ablated_part": "the gating layer",
            "action": "REMOVE",
            "replacement": None,
            "metrics": ["accuracy"],
        },
        {
            "name": "Other encoder",
            "ablated_part": "the convolutional encoder",
            "action": "REPLACE",
            "replacement": ["LSTM"],
            "metrics": ["accuracy"],
        },
    ],
}


def dataset(path: Path, n: int) -> Path:
    body = "A gating layer selects what the convolutional encoder passes on. " * 20
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            text = f"# Paper {i}\n\n## Abstract\n\nVariant {i}.\n\n## 1 Method\n\n{body}\n"
            row = {"id": f"p{i:03d}", "title": f"Paper {i}", "text": text, "ground_truth": []}
            handle.write(json.dumps(row) + "\n")
    return path


def imported_by(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI in a fresh interpreter, as the console script does, and return the
    process and the modules it had imported when it exited (with, as a module named
    "gc-frozen:N", how many objects the garbage collector had frozen by then)."""
    program = (
        "import atexit, gc, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules) + "
        "[f'gc-frozen:{gc.get_freeze_count()}']), file=sys.stderr))\n"
        "from ablationkit.cli import run\n"
        "sys.argv = ['ablationkit', *sys.argv[1:]]\n"
        "run()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ABLATIONKIT_TRANSPORT"}
    env["ABLATIONKIT_CACHE_DIR"] = str(cwd / "cache")
    result = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=HANG_GUARD,
    )
    modules = set(json.loads(result.stderr.strip().splitlines()[-1]))
    return result, modules


# ------------------------------------------------------------------ start-up


def test_help_imports_no_planner_runner_model_client_or_pydantic(tmp_path: Path) -> None:
    result, modules = imported_by(["--help"], tmp_path)
    assert result.returncode == 0 and "bench" in result.stdout
    heavy = {
        "ablationkit.planner",
        "ablationkit.bench",
        "ablationkit.lm.client",
        "ablationkit.schema",
        "pydantic",
        "openai",
        "httpx2",
        "asyncio",
        "jinja2",
    }
    assert not heavy & modules


def test_bench_plan_on_a_plain_http_server_never_imports_the_openai_sdk(tmp_path: Path) -> None:
    data = dataset(tmp_path / "data.jsonl", 3)
    with FakeLLMServer(default=json.dumps(PLAN)) as server:
        args = ["bench", "plan", str(data), "--run", str(tmp_path / "run")]
        args += ["--model", "m", "--api-base", server.url, "-k", "2"]
        result, modules = imported_by(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "run").rglob("p00*.json"))) >= 3
    assert "openai" not in modules and "httpx2" not in modules


def test_the_process_exits_without_collecting_its_heap(tmp_path: Path) -> None:
    """The interpreter's last collections walked every object of a run (pydantic schemas,
    prompts, the planner's modules): 0.1-0.3 s between the last reply and the exit. The CLI
    freezes the heap once its command is done, so they skip it."""
    data = dataset(tmp_path / "data.jsonl", 2)
    with FakeLLMServer(default=json.dumps(PLAN)) as server:
        args = ["bench", "plan", str(data), "--run", str(tmp_path / "run")]
        args += ["--model", "m", "--api-base", server.url, "-k", "2"]
        result, modules = imported_by(args, tmp_path)
    assert result.returncode == 0, result.stderr
    frozen = next(m for m in modules if m.startswith("gc-frozen:"))
    assert int(frozen.partition(":")[2]) > 10_000
    failed, modules = imported_by(["bench", "plan", "no-such.jsonl", "--run", "r"], tmp_path)
    assert failed.returncode == 2 and "error: " in failed.stderr  # errors too
    assert next(m for m in modules if m.startswith("gc-frozen:")) != "gc-frozen:0"


# ------------------------------------------------------------------ the run


def test_papers_are_prepared_just_ahead_of_their_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never more papers prepared than requests sent plus one per slot: prepared all at
    once, they hold the interpreter while the first requests should go out, and their
    prompts fill memory on a large dataset."""
    import ablationkit.bench.runner as runner
    from ablationkit.bench import Run
    from ablationkit.lm import LMClient

    prepared = 0
    lock = threading.Lock()
    original = runner.prepare_instance

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal prepared
        with lock:
            prepared += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "prepare_instance", counting)
    ahead: list[int] = []

    def respond(body: dict[str, Any]) -> str:
        with lock:
            ahead.append(prepared - len(ahead) - 1)  # prepared, less the requests so far
        return json.dumps(PLAN)

    concurrency = 3
    with FakeLLMServer(responder=respond, default=None, latency=0.05) as server:
        lm = LMClient(concurrency=concurrency, cache=False)
        report = Run(tmp_path / "run", client=lm, concurrency=concurrency).plan(
            dataset(tmp_path / "data.jsonl", 24), model="m", api_base=server.url, k=2
        )
        lm.close()
    assert len(report.done) == 24 and not report.failed
    assert len(ahead) == 24 and max(ahead) <= concurrency - 1, ahead
    assert server.max_in_flight == concurrency


def test_a_paper_read_from_a_file_is_prepared_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing a PDF or a LaTeX folder can take seconds: not on the loop that serves every
    request in flight. A paper given as text is prepared on the loop (a few ms)."""
    import ablationkit.bench.runner as runner
    from ablationkit.bench import Run
    from ablationkit.lm import LMClient

    threads: dict[str, str] = {}
    original = runner.prepare_instance

    def where(instance: Any, *args: Any, **kwargs: Any) -> Any:
        threads[instance.id] = threading.current_thread().name
        return original(instance, *args, **kwargs)

    monkeypatch.setattr(runner, "prepare_instance", where)
    (tmp_path / "paper.md").write_text(
        "# On Files\n\n## Abstract\n\nRead from a file.\n\n## 1 Method\n\nA gating layer.\n",
        "utf-8",
    )
    rows = [
        {"id": "from-file", "path": "paper.md", "ground_truth": []},
        {"id": "as-text", "text": "# As Text\n\n## 1 Method\n\nA gating layer.\n"},
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    with FakeLLMServer(default=json.dumps(PLAN)) as server:
        lm = LMClient(cache=False)
        report = Run(tmp_path / "run", client=lm).plan(data, model="m", api_base=server.url, k=2)
        lm.close()
    assert sorted(report.done) == ["as-text", "from-file"], report.failed
    assert threads["as-text"] == "ablationkit-lm"  # the client's event-loop thread
    assert threads["from-file"] != "ablationkit-lm"


def test_one_failing_preparation_fails_its_paper_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ablationkit.bench.runner as runner
    from ablationkit.bench import Run
    from ablationkit.errors import FormatError
    from ablationkit.lm import LMClient

    original = runner.prepare_instance

    def fail_one(instance: Any, *args: Any, **kwargs: Any) -> Any:
        if instance.id == "p001":
            raise FormatError("unreadable", where="p001")
        return original(instance, *args, **kwargs)

    monkeypatch.setattr(runner, "prepare_instance", fail_one)
    with FakeLLMServer(default=json.dumps(PLAN)) as server:
        lm = LMClient(cache=False, concurrency=2)
        report = Run(tmp_path / "run", client=lm, concurrency=2).plan(
            dataset(tmp_path / "data.jsonl", 5), model="m", api_base=server.url, k=2
        )
        lm.close()
    assert sorted(report.done) == ["p000", "p002", "p003", "p004"]
    assert report.failed == {"p001": "p001: unreadable"}
    assert len(server.requests) == 4


def test_a_new_run_checks_no_plan_file_before_its_first_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new run has no plans folder: nothing to resume, so no paper's plan file is looked
    for (10,000 of them took 0.5 s before the first request). A resumed run checks them."""
    from ablationkit.bench import Run
    from ablationkit.bench.store import RunStore
    from ablationkit.lm import LMClient

    looked: list[str] = []
    original = RunStore.finished_plan

    def counting(self: RunStore, paper_id: str) -> Any:
        looked.append(paper_id)
        return original(self, paper_id)

    monkeypatch.setattr(RunStore, "finished_plan", counting)
    data = dataset(tmp_path / "data.jsonl", 4)
    with FakeLLMServer(default=json.dumps(PLAN)) as server:
        lm = LMClient(cache=False)
        first = Run(tmp_path / "run", client=lm).plan(data, model="m", api_base=server.url, k=2)
        assert len(first.done) == 4 and looked == []
        again = Run(tmp_path / "run", client=lm).plan(data, model="m", api_base=server.url, k=2)
        lm.close()
    assert again.done == [] and sorted(again.skipped) == ["p000", "p001", "p002", "p003"]
    assert sorted(looked) == ["p000", "p001", "p002", "p003"]
