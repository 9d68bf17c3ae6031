"""The completion layer against a real OpenAI-compatible server on 127.0.0.1.

Every fault goes over HTTP: 429 with Retry-After, 5xx, hangs, malformed JSON, truncated
streams and dropped connections. Waits are checked through the injectable sleep, never by
measuring wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
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


# ------------------------------------------------------------------ the thin HTTP path
# OpenAI-compatible servers on plain http are called without the openai SDK (lm.backend_http);
# https providers and proxied servers keep the SDK. Both must be indistinguishable to callers.


def test_plain_http_server_is_called_without_importing_the_sdk(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    program = (
        "import sys\n"
        "from ablationkit.lm import LMClient\n"
        "lm = LMClient(cache=False)\n"
        f"print(lm.complete('hi', model='m', api_base={fake_llm.url!r}).text)\n"
        "print('openai' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "all_proxy"}}
    env.pop("ABLATIONKIT_TRANSPORT", None)
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.split() == ["OK", "False"], result.stderr


def test_thin_path_only_for_plain_http_without_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from ablationkit.lm.backend_http import thin_path_for

    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert thin_path_for("http://127.0.0.1:8000/v1") and thin_path_for("http://gpu-box:8000/v1")
    assert not thin_path_for("https://api.openai.com/v1") and not thin_path_for(None)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert not thin_path_for("http://gpu-box:8000/v1")  # the SDK goes through the proxy
    assert thin_path_for("http://127.0.0.1:8000/v1")  # bypassed: no proxy for this host


def _outcome(
    transport: str, url: str, tmp_path: Path, *, stream: bool = False, **params: object
) -> tuple[object, ...]:
    """What a call returned or raised, its retries and waits, through one transport."""
    sleep = RecordedSleep()
    lm = LMClient(
        retry=RetryPolicy(max_attempts=2, sleep=sleep),
        timeout=1.0,
        cache=False,
        transport=transport,  # type: ignore[arg-type]
    )
    pieces: list[str] = []
    try:
        reply = lm.complete(
            "one two three",
            model="m",
            api_base=url,
            on_token=pieces.append if stream else None,
            **params,
        )
    except ModelCallError as exc:
        result: tuple[object, ...] = ("error", str(exc))
    else:
        result = (reply.text, reply.usage, reply.model, reply.finish_reason, "".join(pieces))
    finally:
        lm.close()
    return (*result, lm.usage.retries, len(sleep.waits))


FAULTS = {
    "plain": [Reply(content="a plain reply", usage={"prompt_tokens": 7, "completion_tokens": 3})],
    "streamed": [Reply(content="streamed " * 5)],
    "400-json-message": [Reply(status=400, content="context length exceeded")],
    "401-echo": [Reply(status=401, content="rejected", echo=True)],
    "429-twice": [Reply(status=429, headers={"Retry-After": "2"})] * 2,
    "500-then-ok": [Reply(status=500), "recovered"],
    "malformed-then-ok": [Reply(fault="malformed"), "recovered"],
    "dropped-twice": [Reply(fault="drop")] * 2,
    "hang-then-ok": [Reply(fault="hang"), "recovered"],
    "truncated-then-ok": [Reply(content="cut " * 20, fault="truncate"), "whole"],
    "stalled-stream-then-ok": [Reply(content="slow " * 4, piece_delay=1.5), "whole"],
    "length": [Reply(content="cut off", finish_reason="length")],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_thin_path_and_sdk_give_the_same_replies_errors_and_retries(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABLATIONKIT_API_KEY", "sk-test-0123456789abcdefghij")
    stream = fault in {"streamed", "truncated-then-ok", "stalled-stream-then-ok"}
    outcomes = []
    for transport in ("auto", "sdk"):
        with FakeLLMServer(FAULTS[fault], hang_seconds=5) as server:
            outcomes.append(_outcome(transport, server.url, tmp_path, stream=stream))
            sent = server.requests[0]
        assert sent["messages"] == [{"role": "user", "content": "one two three"}]
        assert sent.get("stream", False) is stream
    # the echoed request headers differ in their wording (the SDK sends more): cut them off
    texts = [repr(o) for o in outcomes]
    assert all("sk-test-0123456789" not in text for text in texts)
    if fault == "401-echo":
        assert all('"Bearer ***"' in text for text in texts)
        outcomes = [tuple(str(x).split(" headers: ")[0] for x in o) for o in outcomes]
    assert outcomes[0] == outcomes[1]


class RawServer:
    """A loopback HTTP server speaking raw bytes, for what FakeLLMServer does not do (chunked
    bodies, closing keep-alive connections, error events): ``answer(request_body)`` returns
    the bytes to send; ``close_after`` closes each connection after that many replies."""

    def __init__(self, answer: Callable[[bytes], bytes], close_after: int = 0) -> None:
        self.answer, self.close_after = answer, close_after
        self.connections = 0
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the client went away: its test says what it saw
            self._serve_connection(conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            served = 0
            while True:
                length = None
                line = reader.readline()
                if not line:
                    return
                while line not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    line = reader.readline()
                body = reader.read(length or 0)
                self.requests += 1
                conn.sendall(self.answer(body))
                served += 1
                if self.close_after and served >= self.close_after:
                    return


def _chunked(data: bytes, size: int = 7) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def _sse(*events: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + (
        b"data: [DONE]\n\n"
    )


def _chunk(content: str | None = None, finish: str | None = None) -> dict[str, object]:
    delta = {"content": content} if content is not None else {}
    return {"model": "raw", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_chunked_replies_streamed_and_whole(tmp_path: Path) -> None:
    whole = json.dumps(
        {
            "model": "raw",
            "choices": [{"message": {"content": "whole reply"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 2},
        }
    ).encode()
    events = _sse(
        _chunk("hello "),
        _chunk("world"),
        _chunk(finish="stop"),
        {"model": "raw", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}},
    )

    def answer(body: bytes) -> bytes:
        streamed = json.loads(body).get("stream")
        kind = b"text/event-stream" if streamed else b"application/json"
        head = b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nTransfer-Encoding: chunked\r\n"
        return head + b"\r\n" + _chunked(events if streamed else whole)

    with RawServer(answer) as server:
        lm, _ = client(tmp_path, cache=False)
        pieces: list[str] = []
        streamed = lm.complete("hi", model="m", api_base=server.url, on_token=pieces.append)
        plain = lm.complete("hi again", model="m", api_base=server.url)
        lm.close()
    assert pieces == ["hello ", "world"] and streamed.text == "hello world"
    assert streamed.usage == TokenUsage(2, 2) and streamed.finish_reason == "stop"
    assert plain.text == "whole reply" and plain.usage == TokenUsage(2, 2)


def _json_reply(text: str, close: bool = False) -> bytes:
    data = json.dumps(
        {"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    ).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + data


def test_keep_alive_connection_is_reused(tmp_path: Path) -> None:
    with RawServer(lambda body: _json_reply("ok")) as server:
        lm, _ = client(tmp_path, cache=False)
        replies = [lm.complete(f"q{i}", model="m", api_base=server.url).text for i in range(5)]
        lm.close()
    assert replies == ["ok"] * 5 and server.connections == 1


def test_connection_the_server_closed_while_idle_is_replaced_without_a_retry(
    tmp_path: Path,
) -> None:
    # The server closes each connection after one reply without saying so: the client learns
    # only when it sends the next request there. That is no failure of the server's.
    with RawServer(lambda body: _json_reply("ok"), close_after=1) as server:
        lm, sleep = client(tmp_path, cache=False)
        replies = [lm.complete(f"q{i}", model="m", api_base=server.url).text for i in range(4)]
        lm.close()
    assert replies == ["ok"] * 4 and server.requests == 4
    assert lm.usage.retries == 0 and sleep.waits == []


def test_connection_close_header_is_honoured(tmp_path: Path) -> None:
    with RawServer(lambda body: _json_reply("ok", close=True)) as server:
        lm, _ = client(tmp_path, cache=False)
        replies = [lm.complete(f"q{i}", model="m", api_base=server.url).text for i in range(3)]
        lm.close()
    assert replies == ["ok"] * 3 and server.connections == 3


def test_http_1_0_reply_closes_its_connection_unless_kept_alive(tmp_path: Path) -> None:
    def answer(body: bytes) -> bytes:
        return _json_reply("ok").replace(b"HTTP/1.1", b"HTTP/1.0", 1)

    with RawServer(answer) as server:
        lm, _ = client(tmp_path, cache=False)
        replies = [lm.complete(f"q{i}", model="m", api_base=server.url).text for i in range(3)]
        lm.close()
    assert replies == ["ok"] * 3 and server.connections == 3


def test_error_event_in_a_stream_is_a_one_line_model_error(tmp_path: Path) -> None:
    error = {"error": {"message": "the model crashed", "type": "server_error"}}

    def answer(body: bytes) -> bytes:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        return head + _sse(_chunk("par"), error)

    with RawServer(answer) as server:
        lm, sleep = client(tmp_path, cache=False)
        with pytest.raises(ModelCallError) as info:
            lm.complete("hi", model="m", api_base=server.url, on_token=lambda _: None)
        lm.close()
    assert str(info.value) == "m: APIError: the model crashed"
    assert sleep.waits == []  # the server said what went wrong: not retried


def test_localhost_refused_on_every_address_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lm, sleep = client(tmp_path, cache=False)
    url = f"http://localhost:{port}/v1"  # ::1 and 127.0.0.1: asyncio's "Multiple exceptions"
    with pytest.raises(ModelCallError, match="is the server running"):
        lm.complete("hi", model="m", api_base=url)
    assert sleep.waits == [] and lm.usage.retries == 0


def test_refusal_on_every_address_of_a_name_counts_as_refused() -> None:
    from ablationkit.lm.backend_http import _refused

    def refused(host: str) -> ConnectionRefusedError:
        return ConnectionRefusedError(111, f"Connect call failed ({host!r}, 9)")

    def multiple(*errors: OSError) -> OSError:  # asyncio's wording (create_connection)
        return OSError("Multiple exceptions: " + ", ".join(str(e) for e in errors))

    assert _refused(multiple(refused("::1"), refused("127.0.0.1")))
    unreachable = OSError(101, "Network is unreachable")
    assert not _refused(multiple(refused("::1"), unreachable))
    assert not _refused(OSError("Multiple exceptions: something else"))


@pytest.mark.parametrize(
    ("model", "api_base", "imported"),
    [
        ("openai/gpt-4o", None, True),  # https: the SDK's import overlaps the run's start
        ("m", "http://127.0.0.1:9/v1", False),  # plain http: the thin path needs none
    ],
    ids=["https-provider", "plain-http-server"],
)
def test_prefetch_imports_the_sdk_only_for_models_that_need_it(
    model: str, api_base: str | None, imported: bool
) -> None:
    program = (
        "import sys\n"
        "from ablationkit.lm import LMClient, resolve_model\n"
        "thread = LMClient(cache=False).prefetch("
        f"resolve_model({model!r}, {api_base!r}))\n"
        "if thread is not None:\n"
        "    thread.join(60)\n"
        "print('openai' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "all_proxy"}}
    env.pop("ABLATIONKIT_TRANSPORT", None)
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.strip() == str(imported), result.stderr


# ------------------------------------------------------------------ hostile servers, thin path
# A server on the network may send without end: the client's memory must stay bounded.


def _endless(head: bytes, piece: bytes, limit: int) -> Callable[[bytes], bytes]:
    """An answer of ``head`` and then ``piece`` repeated past ``limit`` bytes (a stand-in
    for a body that never ends: RawServer sends it whole)."""
    return lambda body: head + piece * (limit // len(piece) + 2)


@pytest.mark.parametrize(
    ("head", "piece", "stream"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", b"x" * 4096, False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", b"x" * 4096, False),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", b"data: y" * 512, True),
    ],
    ids=["body-without-end", "huge-content-length", "event-line-without-end"],
)
def test_reply_larger_than_the_limit_fails_at_once_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: bytes, piece: bytes, stream: bool
) -> None:
    from ablationkit.lm import backend_http

    monkeypatch.setattr(backend_http, "MAX_REPLY_BYTES", 1 << 20)
    with RawServer(_endless(head, piece, 1 << 20)) as server:
        lm, sleep = client(tmp_path, cache=False)
        with pytest.raises(ModelCallError) as info:
            lm.complete(
                "hi", model="m", api_base=server.url, on_token=(lambda _: None) if stream else None
            )
        lm.close()
    assert str(info.value) == "m: reply larger than 1 MiB: refused"
    assert sleep.waits == [] and server.requests == 1  # not retried: it would do it again


def test_endless_headers_are_a_protocol_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablationkit.lm import backend_http

    monkeypatch.setattr(backend_http, "LINE_LIMIT", 1 << 16)
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"p" * (1 << 17)
    with RawServer(lambda body: head) as server:
        lm, _ = client(tmp_path, cache=False, attempts=2)
        with pytest.raises(ModelCallError, match=r"connection failed \(RemoteProtocolError\)"):
            lm.complete("hi", model="m", api_base=server.url)
        lm.close()


def test_key_with_a_line_break_is_refused_before_any_request(
    fake_llm: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key with CR/LF in it (a damaged .env) would add headers of its own to the request."""
    from ablationkit.lm import ModelConfigError

    monkeypatch.setenv("ABLATIONKIT_API_KEY", "sk-test-0123456789\r\nX-Injected: yes")
    lm, sleep = client(tmp_path, cache=False)
    with pytest.raises(ModelConfigError) as info:
        lm.complete("hi", model="m", api_base=fake_llm.url)
    lm.close()
    assert str(info.value) == "m: ABLATIONKIT_API_KEY holds a line break: not a key"
    assert fake_llm.requests == [] and sleep.waits == []


def test_space_in_the_server_path_is_percent_encoded() -> None:
    from ablationkit.lm.backend_http import HTTPPool

    pool = HTTPPool("http://127.0.0.1:9/my models/v1", "key")
    assert pool.prefix == "/my%20models/v1" and pool.host_header == "127.0.0.1:9"


def test_one_client_in_successive_event_loops(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    """``asyncio.run`` twice (a script, a notebook's cells): a new loop may get the id of a
    closed one; its connections must not be the closed loop's."""
    lm, _ = client(tmp_path, cache=False)

    async def ask(question: str) -> str:
        return (await lm.acomplete(question, model="m", api_base=fake_llm.url)).text

    assert [asyncio.run(ask(f"q{i}")) for i in range(4)] == ["OK"] * 4
    assert lm.usage.calls == 4
