"""The completion layer against a real OpenAI-compatible server on 127.0.0.1.

Every fault goes over HTTP: 429 with Retry-After, 5xx, hangs, malformed JSON, truncated
streams and dropped connections. Waits are checked through the injectable sleep, never by
measuring wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from ablationkit.lm import (
    CompletionCache,
    LMClient,
    ModelCallError,
    ModelUnavailableError,
    RetryPolicy,
    resolve,
)
from ablationkit.lm.keys import redact
from ablationkit.lm.models import family, resolve_model
from ablationkit.lm.retry import RetryEvent
from ablationkit.lm.types import TokenUsage
from ablationkit.testing import FakeLLMServer, Reply


class RecordedSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(tmp_path: Path, **kwargs: object) -> tuple[LMClient, RecordedSleep]:
    sleep = RecordedSleep()
    policy = RetryPolicy(max_attempts=kwargs.pop("attempts", 4), sleep=sleep)  # type: ignore[arg-type]
    kwargs.setdefault("cache", tmp_path / "cache.sqlite")
    return LMClient(retry=policy, timeout=kwargs.pop("timeout", 5.0), **kwargs), sleep  # type: ignore[arg-type]


def test_plain_reply_usage_and_cost(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.script("four words of reply")
    lm, _ = client(tmp_path)
    reply = lm.complete(
        "one two three",
        model="openai/gpt-4o",
        api_base=fake_llm.url,
        temperature=0,
        max_tokens=50,
        top_k=5,
    )
    assert reply.text == "four words of reply"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)
    assert reply.cost == pytest.approx((3 * 2.50 + 4 * 10.00) / 1e6)
    assert not reply.cached and reply.finish_reason == "stop"
    sent = fake_llm.requests[-1]
    assert sent["model"] == "gpt-4o" and sent["temperature"] == 0 and sent["max_tokens"] == 50
    assert sent["top_k"] == 5  # unknown parameters travel in the body
    assert sent["messages"] == [{"role": "user", "content": "one two three"}]


def test_retry_after_is_honoured(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.script(Reply(status=429, headers={"Retry-After": "7"}), "ok")
    lm, sleep = client(tmp_path)
    assert lm.complete("hi", model="m", api_base=fake_llm.url).text == "ok"
    assert len(sleep.waits) == 1 and 7.0 <= sleep.waits[0] < 7.2
    assert lm.usage.retries == 1 and len(fake_llm.requests) == 2


@pytest.mark.parametrize(
    "fault",
    [
        Reply(status=500),
        Reply(status=503),
        Reply(fault="malformed"),
        Reply(fault="drop"),
        Reply(fault="hang"),
    ],
    ids=["500", "503", "malformed-json", "dropped-connection", "hang"],
)
def test_transient_faults_are_retried(
    fake_llm: FakeLLMServer, tmp_path: Path, fault: Reply
) -> None:
    fake_llm.script(fault, "recovered")
    lm, sleep = client(tmp_path, timeout=1.0)
    assert lm.complete("hi", model="m", api_base=fake_llm.url).text == "recovered"
    assert lm.usage.retries == 1 and len(sleep.waits) == 1
    assert 0 <= sleep.waits[0] <= 1.0  # first backoff: full jitter under base_delay


def test_truncated_stream_is_retried_and_the_consumer_told(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(
        Reply(content="a long reply that will be cut in the middle", fault="truncate"),
        Reply(content="the complete second reply"),
    )
    lm, _ = client(tmp_path)
    seen: list[str] = []
    retries: list[RetryEvent] = []
    reply = lm.complete(
        "hi", model="m", api_base=fake_llm.url, on_token=seen.append, on_retry=retries.append
    )
    assert reply.text == "the complete second reply"
    # the retry is an event, never text in the stream of tokens
    assert [(e.model, e.attempt) for e in retries] == [("m", 1)]
    assert "before the reply was complete" in retries[0].reason
    assert not any("retrying" in piece for piece in seen)
    assert "".join(seen).endswith("the complete second reply")
    assert fake_llm.requests[-1]["stream"] is True


def test_streaming_gives_tokens_and_usage(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.script("streamed " * 10)
    lm, _ = client(tmp_path)
    pieces: list[str] = []
    reply = lm.complete("count to ten", model="m", api_base=fake_llm.url, on_token=pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == reply.text == "streamed " * 10
    assert reply.usage.completion_tokens == 10 and reply.usage.prompt_tokens == 3


def test_retries_run_out_with_a_clear_error(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.default = Reply(status=429, headers={"Retry-After": "1"})
    lm, sleep = client(tmp_path, attempts=3)
    with pytest.raises(ModelCallError) as info:
        lm.complete("hi", model="openai/gpt-4o", api_base=fake_llm.url)
    assert str(info.value) == "openai/gpt-4o: HTTP 429 rate limited after 3 attempts"
    assert len(sleep.waits) == 2 and len(fake_llm.requests) == 3


def test_client_errors_are_not_retried(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.script(Reply(status=400, content="context length exceeded"))
    lm, sleep = client(tmp_path)
    with pytest.raises(ModelCallError, match=r"HTTP 400.*context length exceeded"):
        lm.complete("hi", model="m", api_base=fake_llm.url)
    assert sleep.waits == [] and len(fake_llm.requests) == 1


def test_schema_is_sent_as_response_format(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fake_llm.script('{"a": 1}')
    lm, _ = client(tmp_path)
    reply = lm.complete("json please", model="m", api_base=fake_llm.url, schema=schema)
    assert json.loads(reply.text) == {"a": 1}
    sent = fake_llm.requests[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema


def test_cache_makes_a_rerun_free(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    fake_llm.script("first answer", "second answer")
    lm, _ = client(tmp_path)
    first = lm.complete("same question", model="openai/gpt-4o", api_base=fake_llm.url)
    again, _ = client(tmp_path)  # a new run, same cache file
    second = again.complete("same question", model="openai/gpt-4o", api_base=fake_llm.url)
    assert second.text == first.text == "first answer"
    assert second.cached and second.cost == 0.0 and len(fake_llm.requests) == 1
    assert again.usage.cached_calls == 1 and again.usage.cost_usd == 0.0
    other = again.complete(
        "same question", model="openai/gpt-4o", api_base=fake_llm.url, temperature=0.7
    )
    assert other.text == "second answer" and len(fake_llm.requests) == 2
    assert len(CompletionCache(tmp_path / "cache.sqlite")) == 2


def test_concurrency_limit_per_client(tmp_path: Path) -> None:
    with FakeLLMServer(default="ok", latency=0.2) as server:
        lm, _ = client(tmp_path, concurrency=3, cache=False)

        async def many() -> list[str]:
            replies = await asyncio.gather(
                *[lm.acomplete(f"q{i}", model="m", api_base=server.url) for i in range(9)]
            )
            return [r.text for r in replies]

        assert lm.run_sync(many()) == ["ok"] * 9
        assert server.max_in_flight == 3


def test_sync_wrapper_inside_a_running_loop(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    lm, _ = client(tmp_path, cache=False)

    async def notebook_cell() -> str:
        return lm.complete("hi", model="m", api_base=fake_llm.url).text  # as in Jupyter

    assert asyncio.run(notebook_cell()) == "OK"


def test_record_and_replay(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    fake_llm.script("recorded answer")
    lm, _ = client(tmp_path, cache=False, record_to=recording)
    lm.complete("question", model="m", api_base=fake_llm.url, temperature=0)
    fake_llm.stop()
    replay, _ = client(tmp_path, cache=False)
    reply = replay.complete("question", model=f"replay:{recording}", temperature=0)
    assert reply.text == "recorded answer" and reply.cost == 0.0
    with pytest.raises(ModelCallError, match="never recorded"):
        replay.complete("another question", model=f"replay:{recording}")


def test_api_keys_from_dotenv_and_never_in_errors(
    fake_llm: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-abcdefghijklmnopqrstuvwxyz"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATIONKIT_API_KEY", raising=False)
    (tmp_path / ".env").write_text(f'export ABLATIONKIT_API_KEY="{secret}"\n', "utf-8")
    fake_llm.script(Reply(status=401, content=f"invalid key {secret}"))
    lm, _ = client(tmp_path)
    with pytest.raises(ModelCallError) as info:
        lm.complete("hi", model="m", api_base=fake_llm.url)
    assert secret not in str(info.value) and "***" in str(info.value)
    assert redact(f"key={secret}") == "key=***"
    assert redact("http://bob:hunter2@10.0.0.1/v1") == "http://bob:***@10.0.0.1/v1"
    assert fake_llm.requests  # the key was used: the request went out with it


def test_missing_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    lm, _ = client(tmp_path)
    with pytest.raises(ModelUnavailableError, match="no API key: set OPENAI_API_KEY"):
        lm.complete("hi", model="openai/gpt-4o")


def test_routes_and_prices() -> None:
    assert resolve("openrouter/google/gemini-2.5-flash").model_name == "google/gemini-2.5-flash"
    assert resolve("ollama/llama3.1").base_url == "http://127.0.0.1:11434/v1"
    assert resolve("local").local and resolve("local:smollm2").kind == "local"
    assert resolve("anthropic/claude-3-5-sonnet-20240620").kind == "litellm"
    assert resolve("my-model", "http://127.0.0.1:9/v1").model_name == "my-model"
    with pytest.raises(ModelUnavailableError, match="unknown model id"):
        resolve("mystery-model")
    assert family("anthropic/claude-3-5-sonnet-20240620") == "claude-3-5-sonnet"
    assert family("openai/gpt-4o-mini") == "gpt-4o-mini"
    assert (
        resolve_model("somebody/unknown-model", "http://127.0.0.1:9/v1").cost(TokenUsage(10, 10))
        is None
    )
    assert resolve_model("local").cost(TokenUsage(10, 10)) == 0.0


def test_litellm_models_need_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("litellm") is not None:
        pytest.skip("litellm is installed here")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-used-0000")
    lm, _ = client(tmp_path, cache=False)
    with pytest.raises(ModelUnavailableError, match=r"pip install 'ablationkit\[cloud\]'"):
        lm.complete("hi", model="anthropic/claude-3-5-sonnet-20240620")
    assert os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP") == "True"  # set before any import


def test_cache_writes_behind_but_reads_its_own_queue(tmp_path: Path) -> None:
    from ablationkit.lm.types import Completion

    cache = CompletionCache(tmp_path / "c.sqlite")
    replies = [Completion(text=f"reply {i}", model="m") for i in range(200)]
    for i, reply in enumerate(replies):
        cache.put_later(f"k{i}", reply)
    got = cache.get("k199")  # queued or written: either way it is found at once
    assert got is not None and got.text == "reply 199"
    cache.flush()
    other = CompletionCache(tmp_path / "c.sqlite")  # another process's view of the file
    assert len(other) == 200 and other.get("k7").text == "reply 7"  # type: ignore[union-attr]
    cache.close()


def test_attempt_timeouts_by_kind_of_server() -> None:
    from ablationkit.lm.client import attempt_timeout

    assert attempt_timeout(resolve("openai/gpt-4o")) == 120.0  # remote: a hang is retried soon
    assert attempt_timeout(resolve("ollama/llama3.1")) == 600.0  # this machine's hardware
    assert attempt_timeout(resolve("m", "http://localhost:8000/v1")) == 600.0
    assert attempt_timeout(resolve("m", "http://[::1]:8000/v1"), 5.0) == 5.0
    # the embedded model computes in this process: no attempt limit, whatever is asked
    assert attempt_timeout(resolve("local")) is None
    assert attempt_timeout(resolve("local:smollm2"), 5.0) is None
