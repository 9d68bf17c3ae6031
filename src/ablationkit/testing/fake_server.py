"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies and faults.

Tests and benchmarks talk to it over real sockets, so the whole client path (the openai SDK,
streaming, retries, timeouts) is exercised, never a mock. Standard library only, so it can be
imported by the pytest plugin at start-up at no cost.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal["hang", "malformed", "truncate", "drop"]
log = logging.getLogger(__name__)


@dataclass
class Reply:
    """One scripted answer. ``status`` other than 200 sends an error body (with ``headers``,
    e.g. ``{"Retry-After": "1"}``); ``fault`` breaks the exchange in a chosen way. ``echo``
    quotes the request's headers in the reply or error message, as a careless server does when
    it reports what it rejected: the hostile case for keeping API keys out of every output."""

    content: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fault: Fault | None = None
    piece_delay: float = 0.0  # between streamed pieces, to watch a reply arrive
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None
    echo: bool = False  # append the request's headers (Authorization too) to the content


Responder = Callable[[dict[str, Any]], "Reply | str"]


def _words(messages: Any) -> int:
    total = 0
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            total += sum(
                len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict)
            )
    return total


class _Listener(ThreadingHTTPServer):
    """The socket server; ``fake`` is the ``FakeLLMServer`` whose script its handlers serve."""

    # socketserver's default listen backlog is 5: a burst of 50 new connections overflows it,
    # the kernel drops the SYNs and clients retry after 1 s, then 3 s, which a benchmark then
    # reads as the client's overhead. A real provider's front end accepts such bursts.
    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeLLMServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)


class FakeLLMServer:
    """``with FakeLLMServer(["first reply", Reply(status=429, headers=...)]) as server:``.

    Replies are served in order; when the script runs out, ``default`` (or ``responder``,
    a function of the request body) answers. ``latency`` is added to every request.
    ``requests`` records each request body received, in order.
    """

    def __init__(
        self,
        replies: Iterable[Reply | str] = (),
        *,
        responder: Responder | None = None,
        default: Reply | str | None = "OK",
        latency: float = 0.0,
        model: str = "fake-model",
        host: str = "127.0.0.1",
        port: int = 0,
        hang_seconds: float = 30.0,
    ) -> None:
        self._script: deque[Reply | str] = deque(replies)
        self.responder = responder
        self.default = default
        self.latency = latency
        self.model = model
        self.hang_seconds = hang_seconds
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was serving at once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd = _Listener((host, port), self)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}/v1"

    def start(self) -> FakeLLMServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *replies: Reply | str) -> None:
        """Queue more replies."""
        with self._lock:
            self._script.extend(replies)

    # ------------------------------------------------------------------ behaviour
    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            scripted = self._script.popleft() if self._script else None
        reply = scripted
        if reply is None and self.responder is not None:
            reply = self.responder(body)
        if reply is None:
            reply = self.default if self.default is not None else Reply(status=500)
        return Reply(content=reply) if isinstance(reply, str) else reply

    @contextmanager
    def _serving(self) -> Iterator[None]:
        """Count a request as in flight while its reply is being served."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        usage = reply.usage or {
            "prompt_tokens": _words(body.get("messages")),
            "completion_tokens": len(reply.content.split()),
        }
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": reply.finish_reason,
                    "message": {"role": "assistant", "content": reply.content},
                }
            ],
            "usage": usage,
        }


_NOT_FOUND = {"error": {"message": "not found", "type": "not_found"}}


class _Handler(BaseHTTPRequestHandler):
    """One connection to the fake server; what to answer comes from ``self.server.fake``."""

    server: _Listener
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm and the client's
    # delayed ACKs each reply would stall ~40 ms, which no real server does.
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakeLLMServer:
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read assertions, not access logs

    def handle_one_request(self) -> None:
        """A client that goes away mid-request or mid-reply is normal (every test of
        cancellation does it): one debug line, not socketserver's traceback on stderr."""
        try:
            super().handle_one_request()
        except ConnectionError as exc:  # BrokenPipe, ConnectionReset, ConnectionAborted
            log.debug("fake LLM server: client %s went away (%s)", self.client_address, exc)
            self.close_connection = True

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            model = {"id": self.fake.model, "object": "model", "owned_by": "ablationkit"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._json(404, _NOT_FOUND)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)  # read first: the connection stays usable either way
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, _NOT_FOUND)
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            error = {"message": "invalid JSON body", "type": "invalid_request_error"}
            self._json(400, {"error": error})
            return
        reply = self.fake._next_reply(body)
        with self.fake._serving():
            self._answer(body, reply)

    def _answer(self, body: dict[str, Any], reply: Reply) -> None:
        if reply.echo:
            reply = self._with_echo(reply)
        if self._fault_before_reply(reply):
            return
        if reply.status != 200:
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            error = {"message": reply.content or kind, "type": kind}
            self._json(reply.status, {"error": error}, reply.headers)
            return
        if reply.fault == "malformed":
            self._malformed()
            return
        completion = self.fake._completion(body, reply)
        if body.get("stream"):
            self._stream(body, completion, reply)
        else:
            self._json(200, completion, reply.headers)

    # ------------------------------------------------------------------ echo and faults
    def _with_echo(self, reply: Reply) -> Reply:
        """The reply with the request's headers quoted in it, as a careless server does."""
        headers = json.dumps(dict(self.headers.items()))
        return replace(reply, content=f"{reply.content} headers: {headers}".strip())

    def _fault_before_reply(self, reply: Reply) -> bool:
        """Wait out the latency, then break the exchange if ``reply`` says so (drop the
        connection, or hang until ``hang_seconds`` pass). Whether the request is done."""
        fake = self.fake
        wait = fake.latency + reply.delay
        if wait and fake._stopping.wait(wait):
            return True  # the server is stopping
        if reply.fault == "drop":
            self.close_connection = True
            self.connection.close()
            return True
        if reply.fault == "hang":
            fake._stopping.wait(fake.hang_seconds)
            self.close_connection = True
            return True
        return False

    def _malformed(self) -> None:
        """A 200 whose JSON body breaks off."""
        data = b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # ------------------------------------------------------------------ writing replies
    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()

    def _stream(self, body: dict[str, Any], completion: dict[str, Any], reply: Reply) -> None:
        """The completion as server-sent events in 12-character pieces (``truncate``: the
        connection closes halfway, without ``[DONE]``), usage last if the request asked."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {k: completion[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk"

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        text = reply.content
        pieces = [text[i : i + 12] for i in range(0, len(text), 12)] or [""]
        self._event(chunk({"role": "assistant"}))
        for number, piece in enumerate(pieces):
            if reply.piece_delay and number:
                time.sleep(reply.piece_delay)
            if reply.fault == "truncate" and number >= max(1, len(pieces) // 2):
                return  # the connection closes mid-stream, no [DONE]
            self._event(chunk({"content": piece}))
        final = chunk({}, reply.finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event(final)
            final = {**base, "choices": [], "usage": completion["usage"]}
        self._event(final)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
