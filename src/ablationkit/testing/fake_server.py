"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies and faults.

Tests and benchmarks talk to it over real sockets, so the whole client path (the openai SDK,
streaming, retries, timeouts) is exercised, never a mock. Standard library only, so it can be
imported by the pytest plugin at start-up at no cost.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal["hang", "malformed", "truncate", "drop"]


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
    # socketserver's default listen backlog is 5: a burst of 50 new connections overflows it,
    # the kernel drops the SYNs and clients retry after 1 s, then 3 s, which a benchmark then
    # reads as the client's overhead. A real provider's front end accepts such bursts.
    request_queue_size = 1024
    daemon_threads = True


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
        self._httpd = _Listener((host, port), self._handler_class())
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

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm and the
            # client's delayed ACKs each reply would stall ~40 ms, which no real server does.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests read assertions, not access logs

            def _json(
                self,
                status: int,
                payload: Any,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._json(
                        200,
                        {
                            "object": "list",
                            "data": [
                                {"id": server.model, "object": "model", "owned_by": "ablationkit"}
                            ],
                        },
                    )
                else:
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._json(
                        400,
                        {
                            "error": {
                                "message": "invalid JSON body",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                reply = server._next_reply(body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body, reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict[str, Any], reply: Reply) -> None:
                if reply.echo:
                    headers = json.dumps(dict(self.headers.items()))
                    reply = replace(reply, content=f"{reply.content} headers: {headers}".strip())
                wait = server.latency + reply.delay
                if wait and server._stopping.wait(wait):
                    return
                if reply.fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply.fault == "hang":
                    server._stopping.wait(server.hang_seconds)
                    self.close_connection = True
                    return
                if reply.status != 200:
                    kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
                    self._json(
                        reply.status,
                        {"error": {"message": reply.content or kind, "type": kind}},
                        reply.headers,
                    )
                    return
                if reply.fault == "malformed":
                    data = b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                completion = server._completion(body, reply)
                if body.get("stream"):
                    self._stream(body, completion, reply)
                else:
                    self._json(200, completion, reply.headers)

            def _stream(
                self, body: dict[str, Any], completion: dict[str, Any], reply: Reply
            ) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                base = {k: completion[k] for k in ("id", "created", "model")}
                base["object"] = "chat.completion.chunk"
                text = reply.content
                pieces = [text[i : i + 12] for i in range(0, len(text), 12)] or [""]

                def send(payload: dict[str, Any]) -> None:
                    self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                    self.wfile.flush()

                send(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
                        ],
                    }
                )
                for number, piece in enumerate(pieces):
                    if reply.piece_delay and number:
                        time.sleep(reply.piece_delay)
                    if reply.fault == "truncate" and number >= max(1, len(pieces) // 2):
                        return  # the connection closes mid-stream, no [DONE]
                    send(
                        {
                            **base,
                            "choices": [
                                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                            ],
                        }
                    )
                final: dict[str, Any] = {
                    **base,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}],
                }
                if (body.get("stream_options") or {}).get("include_usage"):
                    send(final)
                    final = {**base, "choices": [], "usage": completion["usage"]}
                send(final)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler
