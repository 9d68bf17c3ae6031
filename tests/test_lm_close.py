"""What a client opens, it closes: the streaming HTTP response when a call ends early (a
cancelled plan, a display that fails), and the SQLite cache (its writer thread and
connection) when the client is closed. A closed client used again reopens what it needs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ablationkit.lm import CompletionCache, LMClient, ModelCallError
from ablationkit.lm.types import Completion
from ablationkit.testing import FakeLLMServer, Reply

LONG = Reply(content="word " * 2000, piece_delay=0.05)  # a minute of streaming, unless closed


def wait_until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """A hang guard, not a timing assertion: the reply would go on for a minute."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def cache_writers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "ablationkit-cache"}


# ----------------------------------------------------------------------------- the stream


def test_stream_is_closed_when_the_token_callback_fails() -> None:
    def display(piece: str) -> None:
        raise RuntimeError("the display broke")

    with FakeLLMServer([LONG]) as server:
        lm = LMClient(cache=False, timeout=10)
        with pytest.raises(ModelCallError, match="the display broke"):
            lm.complete("hi", model="m", api_base=server.url, on_token=display)
        wait_until(lambda: server.in_flight == 0, "the stream stayed open after the call ended")
        lm.close()


def test_stream_is_closed_when_the_call_is_cancelled() -> None:
    async def cancel_mid_stream(lm: LMClient, server: FakeLLMServer) -> None:
        started = asyncio.Event()
        call = asyncio.create_task(
            lm.acomplete("hi", model="m", api_base=server.url, on_token=lambda _: started.set())
        )
        await asyncio.wait_for(started.wait(), 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    with FakeLLMServer([LONG]) as server:
        lm = LMClient(cache=False, timeout=10)
        lm.run_sync(cancel_mid_stream(lm, server))
        wait_until(lambda: server.in_flight == 0, "the server's slot stayed taken")
        lm.close()


# ----------------------------------------------------------------------------- the cache


def test_closing_the_client_closes_its_cache(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    before = cache_writers()
    lm = LMClient(cache=path, timeout=10)
    assert lm.complete("hi", model="m", api_base=fake_llm.url).text == "OK"
    writers = cache_writers() - before
    assert writers, "the reply was written behind, by the cache's thread"
    lm.close()
    assert not any(thread.is_alive() for thread in writers), "the writer thread outlived close"
    # the last connection to the file is gone: SQLite folded its write-ahead log into it
    assert not path.with_name("cache.sqlite-wal").exists()
    assert len(CompletionCache(path)) == 1  # and the reply is in the file (flush kept)


def test_closed_client_used_again_reopens_its_cache(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    lm = LMClient(cache=tmp_path / "cache.sqlite", timeout=10)
    lm.complete("hi", model="m", api_base=fake_llm.url)
    lm.close()
    again = lm.complete("hi", model="m", api_base=fake_llm.url)
    assert again.cached and again.text == "OK"  # read from the file, no second request
    fake_llm.script("fresh")
    assert lm.complete("other", model="m", api_base=fake_llm.url).text == "fresh"
    lm.close()
    assert len(fake_llm.requests) == 2
    assert len(CompletionCache(tmp_path / "cache.sqlite")) == 2


def test_a_cache_given_to_the_client_stays_its_owners(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    cache = CompletionCache(tmp_path / "cache.sqlite")
    with LMClient(cache=cache, timeout=10) as lm:
        lm.complete("hi", model="m", api_base=fake_llm.url)
    assert not cache.closed  # the client flushed it, but closing is for whoever opened it
    assert len(cache) == 1
    cache.close()
    assert cache.closed


def test_closed_cache_reopens_on_use_and_closes_again(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path / "c.sqlite")
    cache.put_later("k", Completion(text="first", model="m"))
    cache.close()
    assert cache.closed and not path_has_wal(tmp_path / "c.sqlite")
    assert cache.get("k").text == "first"  # type: ignore[union-attr]
    cache.put_later("k2", Completion(text="second", model="m"))
    assert len(cache) == 2
    cache.close()
    cache.close()  # twice is harmless
    assert len(CompletionCache(tmp_path / "c.sqlite")) == 2


def path_has_wal(path: Path) -> bool:
    return path.with_name(path.name + "-wal").exists()
