"""``LMClient``: one way to call any model, with retries, a cache, a concurrency limit and
running totals of tokens, money and time.

Create one client per run; its concurrency limit and totals are the run's. ``acomplete`` is
the real implementation; ``complete`` is the same call for code without an event loop (it
also works inside Jupyter's running loop).

How long a call may take: each attempt on an HTTP server is bounded by ``timeout`` (see
``attempt_timeout``), and a ``Deadline`` given to the call bounds all its attempts together.
The embedded model has no per-attempt limit: it runs in this process and always finishes
within its ``max_tokens``, only slowly on a CPU (minutes for a plan); a timeout would throw
that work away and start it again from scratch. A deadline, if given, still applies.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from ablationkit.lm import backend_http, backend_openai
from ablationkit.lm.backend_openai import TokenCallback, TransientError
from ablationkit.lm.cache import CompletionCache
from ablationkit.lm.keys import api_key, redact, register_secret
from ablationkit.lm.models import Model, resolve_model
from ablationkit.lm.replay import ReplayStore
from ablationkit.lm.retry import (
    LOOPBACK_TIMEOUT,
    REMOTE_TIMEOUT,
    Deadline,
    RetryCallback,
    RetryEvent,
    RetryPolicy,
)
from ablationkit.lm.routes import Route, is_loopback
from ablationkit.lm.types import (
    Completion,
    Message,
    ModelCallError,
    ModelConfigError,
    ModelUnavailableError,
    StopGeneration,
    request_key,
)

T = TypeVar("T")
# "auto": OpenAI-compatible servers on plain http (this machine, the local network) get the
# thin HTTP client of ``backend_http``, https providers and proxied servers the openai SDK;
# "sdk": the SDK for every one (the environment variable sets the default for a process).
Transport = Literal["auto", "sdk"]
TRANSPORT_VARIABLE = "ABLATIONKIT_TRANSPORT"


def default_transport() -> Transport:
    """``ABLATIONKIT_TRANSPORT`` if it is "sdk", else "auto"."""
    return "sdk" if os.environ.get(TRANSPORT_VARIABLE, "").strip().lower() == "sdk" else "auto"


@dataclass
class RunUsage:
    """Totals over every call a client made: what a run spent."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unknown_cost_calls: int = 0
    retries: int = 0
    seconds: float = 0.0

    def add(self, completion: Completion) -> None:
        self.calls += 1
        if completion.cached:
            self.cached_calls += 1
            return
        self.prompt_tokens += completion.usage.prompt_tokens
        self.completion_tokens += completion.usage.completion_tokens
        self.seconds += completion.latency
        if completion.cost is None:
            self.unknown_cost_calls += 1
        else:
            self.cost_usd += completion.cost

    def describe(self) -> str:
        money = f"${self.cost_usd:.4f}"
        if self.unknown_cost_calls:
            money += f" + {self.unknown_cost_calls} calls of unknown price"
        return (
            f"{self.calls} calls ({self.cached_calls} cached, {self.retries} retries), "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"{money}, {self.seconds:.1f} s"
        )


def attempt_timeout(route: Route, timeout: float | None = None) -> float | None:
    """Seconds one attempt on ``route`` may wait for its server (None: no limit).

    ``timeout`` (the caller's or the client's) applies to every HTTP server; without one,
    remote servers get ``REMOTE_TIMEOUT`` and servers on this machine the longer
    ``LOOPBACK_TIMEOUT``. The embedded model never has one (see the module docstring).
    """
    if route.local:
        return None
    if timeout is not None:
        return timeout
    return LOOPBACK_TIMEOUT if is_loopback(route.base_url) else REMOTE_TIMEOUT


def _show_whole(on_token: TokenCallback, text: str) -> None:
    """Hand a reply that came whole (cached, replayed, not streamed) to ``on_token``; a
    ``StopGeneration`` it raises has nothing left to stop: the reply is already complete."""
    with contextlib.suppress(StopGeneration):
        on_token(text)


def _as_messages(messages: str | list[Message]) -> list[Message]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


@dataclass
class LMClient:
    """Calls models. ``cache`` is True (the default cache file), False, a path, or a
    ``CompletionCache`` (which stays its owner's to close); ``record_to`` appends every fresh
    reply to a replay file. ``close`` (or ``with``) closes what the client opened: its event
    loop, HTTP clients and cache; a closed client used again opens them again.
    ``timeout``: seconds one attempt may wait on an HTTP server, to connect and between bytes
    of the reply (None: 120 s for remote servers, 600 s on this machine; see
    ``attempt_timeout``). ``transport``: how OpenAI-compatible servers are called (see
    ``Transport``); both ways retry, fail and stream alike."""

    concurrency: int = 8
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache: CompletionCache | str | Path | bool = True
    record_to: str | Path | None = None
    api_base: str | None = None
    usage: RunUsage = field(default_factory=RunUsage)
    transport: Transport = field(default_factory=default_transport)

    def __post_init__(self) -> None:
        self._owns_cache = not isinstance(self.cache, CompletionCache)
        if self.cache is True:
            self._cache: CompletionCache | None = CompletionCache()
        elif self.cache is False or self.cache is None:
            self._cache = None
        elif isinstance(self.cache, CompletionCache):
            self._cache = self.cache
        else:
            self._cache = CompletionCache(self.cache)
        self._recorder = ReplayStore(self.record_to) if self.record_to else None
        self._replays: dict[str, ReplayStore] = {}
        self._semaphores: dict[tuple[int, bool], asyncio.Semaphore] = {}
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ public API
    async def acomplete(
        self,
        messages: str | list[Message],
        model: str | Model = "local",
        *,
        schema: dict[str, Any] | None = None,
        api_base: str | None = None,
        timeout: float | None = None,
        deadline: Deadline | float | None = None,
        on_token: TokenCallback | None = None,
        on_retry: RetryCallback | None = None,
        cache: bool = True,
        **params: Any,
    ) -> Completion:
        """Send one chat request and return its ``Completion``.

        ``model`` is an id (resolved here, with ``api_base``) or a ``Model`` resolved once by
        the caller (its own route wins). ``schema`` asks for JSON-schema constrained output
        where the backend supports it; ``on_token`` streams the reply as it is generated, and
        ``on_retry`` hears of every retry (a ``RetryEvent``: what was streamed is void);
        other keyword arguments (``temperature``, ``max_tokens``, ``seed``, …) are passed to
        the model as they are. ``timeout`` overrides the client's per-attempt limit;
        ``deadline`` (a ``Deadline`` shared by several calls, or seconds for this one) bounds
        the call with all its retries.
        """
        resolved = resolve_model(model, api_base or self.api_base)
        route = resolved.route
        chat = _as_messages(messages)
        use_cache = cache and self._cache is not None and route.kind != "replay"
        key = request_key(route.model_id, route.base_url, chat, params, schema) if use_cache else ""
        if use_cache and self._cache is not None:
            hit = self._cache.get(key)  # an indexed read: cheaper than a thread hop
            if hit is not None:
                hit.cached, hit.cost, hit.latency = True, 0.0, 0.0
                if on_token is not None:
                    _show_whole(on_token, hit.text)
                self._count(hit)
                return hit
        # the key without model and server: only a replay file and a recording use it (a
        # second JSON encoding and hash of a long prompt is not free on every call)
        replay_key = ""
        if route.kind == "replay" or self._recorder is not None:
            replay_key = request_key("", None, chat, params, schema)
        if route.kind == "replay":
            completion = self._replay(route, replay_key)
            if on_token is not None:
                _show_whole(on_token, completion.text)
            self._count(completion)
            return completion
        if isinstance(deadline, (int, float)):
            deadline = Deadline(float(deadline))
        streamed = on_token if resolved.supports_streaming else None
        async with self._semaphore(route):
            completion = await self._call_with_retries(
                resolved,
                chat,
                schema,
                params,
                attempt_timeout(route, timeout if timeout is not None else self.timeout),
                streamed,
                deadline,
                on_retry,
            )
        if on_token is not None and streamed is None:
            _show_whole(on_token, completion.text)
        if use_cache and self._cache is not None:
            # written by the cache's own thread: a commit per reply through the loop's
            # executor added ~100 ms to every request at 50 in flight
            self._cache.put_later(key, completion)
        if self._recorder is not None:
            self._recorder.record(replay_key, completion)
        self._count(completion)
        return completion

    def complete(
        self, messages: str | list[Message], model: str | Model = "local", **kwargs: Any
    ) -> Completion:
        """``acomplete`` for synchronous code; the reply is in the cache when it returns."""
        completion = self.run_sync(self.acomplete(messages, model, **kwargs))
        self.flush()  # waits here, in the caller's thread, never on the event loop
        return completion

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that uses this client from synchronous code.

        Sync calls share one long-lived event loop in a daemon thread, so HTTP connections,
        the concurrency limit and the embedded model's client persist between calls, and it
        works the same inside Jupyter's running loop.
        """
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._loop.run_forever, daemon=True, name="ablationkit-lm"
                )
                thread.start()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C here stops the work on the loop too
            raise

    def prefetch(self, model: Model) -> threading.Thread | None:
        """Start importing the openai SDK in a background thread if calls to ``model`` will
        need it (an https provider, a proxied server; see ``Transport``), and return that
        thread. A batch calls this as soon as it knows its model: the import (0.6-1.3 s)
        then overlaps loading the dataset and writing the run's files, instead of delaying
        the first request. A plain-http server needs no SDK: None."""
        route = model.route
        if route.kind != "openai" or "openai" in sys.modules:
            return None
        if self.transport == "auto" and backend_http.thin_path_for(route.base_url):
            return None
        thread = threading.Thread(
            target=_import_quietly, args=("openai",), name="ablationkit-prefetch", daemon=True
        )
        thread.start()
        return thread

    # ------------------------------------------------------------------ internals
    def _count(self, completion: Completion) -> None:
        with self._lock:
            self.usage.add(completion)

    def _semaphore(self, route: Route) -> asyncio.Semaphore:
        loop_id = id(asyncio.get_running_loop())
        key = (loop_id, route.local)
        semaphore = self._semaphores.get(key)
        if semaphore is None:
            # The embedded model computes one reply at a time; queue here, not in its server.
            semaphore = asyncio.Semaphore(1 if route.local else max(1, self.concurrency))
            self._semaphores[key] = semaphore
        return semaphore

    def _replay(self, route: Route, key: str) -> Completion:
        path = route.model_id.partition(":")[2]
        store = self._replays.get(path)
        if store is None:
            if not Path(path).is_file():
                raise ModelUnavailableError("no such replay file", where=path)
            store = self._replays[path] = ReplayStore(path)
        completion = store.get(key)
        if completion is None:
            raise ModelCallError(f"request {key[:12]} was never recorded", where=path)
        return Completion(**{**completion.__dict__, "cost": 0.0})

    async def _endpoint(self, route: Route, messages: list[Message]) -> tuple[Route, str]:
        """The route to call and the key to send: the embedded model's loopback server
        (started on first use, holding ``messages``' system prompt when an earlier run saved
        it), or the route's server with its key (checked here)."""
        if route.local:
            from ablationkit.lm.local import ready_server

            server = await asyncio.to_thread(ready_server, route.model_id, messages)
            route = Route("openai", route.model_id, "local", base_url=server.base_url, local=True)
            return route, "local"
        key = api_key(route.key_variable) or ""
        if route.needs_key and not key:
            raise ModelUnavailableError(
                f"{route.model_id}: no API key: set {route.key_variable} in the "
                "environment or in .env"
            )
        register_secret(key)  # whatever a server echoes of it stays out of the output
        if "\r" in key or "\n" in key:  # sent as it is, it would add headers of its own
            raise ModelConfigError(
                f"{route.model_id}: {route.key_variable} holds a line break: not a key"
            )
        return route, key

    def _http_pool(self, route: Route, key: str) -> backend_http.HTTPPool:
        """This loop's keep-alive connections to ``route``'s server (thin path)."""
        cache_key = (id(asyncio.get_running_loop()), route.base_url or "", key)
        pool = self._clients.get(cache_key)
        if pool is None:
            pool = self._clients[cache_key] = backend_http.HTTPPool(
                route.base_url or "", key or "not-needed"
            )
        return pool

    def _openai_client(self, route: Route, key: str) -> Any:
        """This loop's openai SDK client for ``route``'s server."""
        cache_key = (id(asyncio.get_running_loop()), route.base_url or "", key, "sdk")
        client = self._clients.get(cache_key)
        if client is None:
            import openai

            try:
                client = openai.AsyncOpenAI(
                    base_url=route.base_url,
                    api_key=key or "not-needed",
                    max_retries=0,
                    timeout=REMOTE_TIMEOUT,  # every request passes its own
                )
            except Exception as exc:  # httpx's InvalidURL for what urlsplit let through
                raise ModelConfigError(
                    redact(f"api_base {route.base_url!r} is not a valid URL ({exc})")
                ) from None
            self._clients[cache_key] = client
        return client

    async def _wind_down_loop(self) -> None:
        """Before the loop stops: close its HTTP clients, finish the async generators (a
        stream abandoned by a failed call is closed by a task the loop schedules), and let
        such tasks end, so none is destroyed pending ("Task was destroyed but it is pending!"
        on stderr at exit)."""
        await self._close_loop_clients()
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks(loop) if task is not current]
        if pending:
            await asyncio.wait(pending, timeout=2.0)

    async def _close_loop_clients(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._clients if k[0] == loop_id]:
            client = self._clients.pop(key)
            await client.close()
        for semaphore_key in [k for k in self._semaphores if k[0] == loop_id]:
            del self._semaphores[semaphore_key]

    async def aclose(self) -> None:
        """Close the HTTP clients this event loop opened, once the cache has every reply."""
        await asyncio.to_thread(self.flush)
        await self._close_loop_clients()

    def flush(self) -> None:
        """Wait until every reply is written to the cache."""
        if self._cache is not None:
            self._cache.flush()

    def close(self) -> None:
        """Close everything the synchronous calls opened, their event loop and the cache this
        client opened (its writer thread and connection), once every reply is written. Used
        again, the client opens them again: the loop on the next sync call, the cache file on
        the next read or write."""
        self.flush()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._wind_down_loop(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
        self._loop = None
        if self._cache is not None and self._owns_cache:
            self._cache.close()

    def __enter__(self) -> LMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _attempt(
        self,
        route: Route,
        messages: list[Message],
        schema: dict[str, Any] | None,
        params: dict[str, Any],
        timeout: float | None,
        on_token: TokenCallback | None,
    ) -> Completion:
        if route.kind == "litellm":
            from ablationkit.lm import backend_litellm

            key = api_key(route.key_variable)
            register_secret(key)
            return await backend_litellm.call(
                route,
                messages,
                schema=schema,
                params=params,
                timeout=timeout,
                api_key=key,
                on_token=on_token,
            )
        call_route, key = await self._endpoint(route, messages)
        # The timeout covers connecting and each read. A server that trickles bytes forever
        # is bounded by the call's deadline, not here: a whole-attempt limit would also cut
        # off a slow but healthy stream of a long reply.
        if self.transport == "auto" and backend_http.thin_path_for(call_route.base_url):
            return await backend_http.call(
                self._http_pool(call_route, key),
                call_route,
                messages,
                schema=schema,
                params=params,
                timeout=timeout,
                on_token=on_token,
            )
        return await backend_openai.call(
            self._openai_client(call_route, key),
            call_route,
            messages,
            schema=schema,
            params=params,
            timeout=timeout,
            on_token=on_token,
        )

    async def _call_with_retries(
        self,
        model: Model,
        messages: list[Message],
        schema: dict[str, Any] | None,
        params: dict[str, Any],
        timeout: float | None,
        on_token: TokenCallback | None,
        deadline: Deadline | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Completion:
        loop = self._retry_loop(
            model, messages, schema, params, timeout, on_token, deadline, on_retry
        )
        if deadline is None:
            return await loop
        with deadline.running():
            if deadline.remaining() <= 0:
                loop.close()
                raise ModelCallError(f"{model.id}: {deadline.describe()}")
            try:
                return await asyncio.wait_for(loop, timeout=deadline.remaining())
            except TimeoutError:
                if deadline.remaining() > 0:
                    raise  # not ours: let it surface as it is
                raise ModelCallError(f"{model.id}: {deadline.describe()}") from None

    async def _retry_loop(
        self,
        model: Model,
        messages: list[Message],
        schema: dict[str, Any] | None,
        params: dict[str, Any],
        timeout: float | None,
        on_token: TokenCallback | None,
        deadline: Deadline | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Completion:
        route = model.route
        last: TransientError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            start = time.perf_counter()
            try:
                completion = await self._attempt(route, messages, schema, params, timeout, on_token)
            except TransientError as exc:
                last = exc
            else:
                completion.latency = time.perf_counter() - start
                if route.local:
                    completion.model = route.model_id  # not the server's file path
                completion.cost = model.cost(completion.usage, reported=completion.model)
                return completion
            if attempt == self.retry.max_attempts:
                break
            # After a timeout the attempt itself was the wait: backing off as well would only
            # double a hung server's cost.
            delay = 0.0 if last.timed_out else self.retry.delay(attempt, last.retry_after)
            if deadline is not None and delay >= deadline.remaining():
                raise ModelCallError(
                    redact(f"{route.model_id}: {deadline.describe()} (last: {last.reason})")
                )
            with self._lock:
                self.usage.retries += 1
            if on_retry is not None:  # what was streamed is void: the display starts over
                on_retry(RetryEvent(route.model_id, attempt, last.reason, delay))
            await self.retry.sleep(delay)
        reason = last.reason if last else "failed"
        raise ModelCallError(
            redact(f"{route.model_id}: {reason} after {self.retry.max_attempts} attempts")
        )


def _import_quietly(name: str) -> None:
    """Import ``name`` ahead of its use; a failure is left for the use to report."""
    with contextlib.suppress(Exception):
        importlib.import_module(name)


_default: LMClient | None = None
_default_lock = threading.Lock()


def default_client() -> LMClient:
    """The process's one client for calls that were given none (``plan()``, ``complete()``):
    created on first use, closed at exit. A new client per call would leave its event-loop
    thread, HTTP connections and cache connection behind each time, and its totals unseen."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LMClient()
            atexit.register(close_default_client)
        return _default


def close_default_client() -> None:
    """Close the default client (at exit; tests call it to start afresh)."""
    global _default
    with _default_lock:
        client, _default = _default, None
    if client is not None:
        client.close()


async def acomplete(
    messages: str | list[Message],
    model: str | Model = "local",
    *,
    schema: dict[str, Any] | None = None,
    **params: Any,
) -> Completion:
    """Call a model with the process-wide default client (see ``LMClient.acomplete``)."""
    return await default_client().acomplete(messages, model, schema=schema, **params)


def complete(
    messages: str | list[Message],
    model: str | Model = "local",
    *,
    schema: dict[str, Any] | None = None,
    **params: Any,
) -> Completion:
    """Synchronous ``acomplete``."""
    return default_client().complete(messages, model, schema=schema, **params)


__all__ = [
    "LMClient",
    "RunUsage",
    "acomplete",
    "close_default_client",
    "complete",
    "default_client",
]
