"""OpenAI-compatible chat completions over a thin HTTP/1.1 client on asyncio streams.

Why not the openai SDK for these: importing it costs 0.6-1.3 s of CPU before the first
request of a run can go out, and its request and response handling (httpx, pydantic models)
about 1.7 ms of CPU per request, against 0.15 ms here (``benchmarks/bench_cli_e2e.py``;
httpx alone: 1.2 ms). On a server on this machine or the local network (vLLM, llama.cpp,
Ollama, LM Studio, the embedded model's loopback server) that CPU, not the server, bounds a
batch run of thousands of papers.

What it covers: plain ``http://`` servers without a proxy in the environment (see
``thin_path_for``); https providers and proxied servers keep the SDK, which handles TLS and
proxies (``backend_openai``). It behaves as the SDK path does, so ``LMClient`` cannot tell
them apart: the same request body (``backend_openai._request``), the same retryable and
final errors with the same texts (``TransientError`` / ``ModelCallError``, the SDK's
"Error code: N - message" inside), the same ``timeout`` (connecting, and every wait for the
next bytes of the reply), the same streaming contract (``on_token``, ``StopGeneration``, a
stream cut short is retried), and a connection that ends early is closed at once, so the
server frees its slot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import os
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ablationkit import __version__
from ablationkit.lm import progress
from ablationkit.lm.backend_openai import TokenCallback, TransientError, _request, timed_out
from ablationkit.lm.keys import redact
from ablationkit.lm.retry import parse_retry_after
from ablationkit.lm.routes import Route, is_loopback
from ablationkit.lm.types import Completion, Message, ModelCallError, StopGeneration, TokenUsage

# The longest header or server-sent-event line accepted (asyncio's default is 64 KiB; a
# server may send a long reply as one event).
LINE_LIMIT = 1 << 24
# The most bytes one reply may have: a chat completion is a few MB at most; a server that
# sends without end (a body or an event line that never ends) must not fill the memory.
MAX_REPLY_BYTES = 64 << 20
# Idle keep-alive connections kept per server: one per request in flight is enough, since
# the client's concurrency limit bounds those.
MAX_IDLE = 512


def thin_path_for(base_url: str | None) -> bool:
    """Whether requests to ``base_url`` can take this path: plain http and no proxy
    configured for its host in the environment (``HTTP_PROXY`` / ``NO_PROXY``), which the
    SDK would honour."""
    if not base_url:
        return False
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme != "http" or not host:
        return False
    names = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
    if not any(os.environ.get(name) for name in names):
        return True  # the usual case, without importing urllib.request (20 ms)
    import urllib.request

    return bool(urllib.request.proxy_bypass(host))


def _refused(exc: BaseException) -> bool:
    """Whether connecting failed because nobody listens: ``ConnectionRefusedError``, or
    asyncio's "Multiple exceptions: ..." ``OSError`` when every address of the name (``::1``
    and ``127.0.0.1`` for localhost) refused."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    text = str(exc)
    if not isinstance(exc, OSError) or not text.startswith("Multiple exceptions: "):
        return False
    refused = f"[Errno {errno.ECONNREFUSED}]"
    parts = text.removeprefix("Multiple exceptions: ").split(", [Errno ")
    return all(("[Errno " + p if i else p).startswith(refused) for i, p in enumerate(parts))


class ConnectError(ConnectionError):
    """Connecting failed (refused, unreachable, a name that does not resolve)."""


class RemoteProtocolError(ConnectionError):
    """The server broke HTTP: closed the connection before or during its reply, or sent
    something that is not an HTTP/1.1 response."""


class ReadError(ConnectionError):
    """The connection failed while the reply was read."""


class WriteError(ConnectionError):
    """The connection failed while the request was sent."""


class ReplyTooLarge(Exception):
    """The reply went past ``MAX_REPLY_BYTES``: refused, not retried (it would again)."""


class HTTPStatusError(Exception):
    """A reply with status 4xx/5xx. ``message`` is what the SDK's error says: "Error code:
    N", and " - " with the error's message when the body is JSON that has one."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        message = f"Error code: {status}"
        try:
            data = json.loads(body)
        except ValueError:
            pass
        else:
            error = data.get("error", data) if isinstance(data, dict) else None
            text = error.get("message") if isinstance(error, dict) else None
            if isinstance(text, str) and text:
                message += f" - {text}"
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.message = message


class _Connection:
    """One TCP connection to the server; ``reused`` once it served a reply before."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reused = False
        self.answered = False  # the current request's reply has begun

    def usable(self) -> bool:
        """Whether an idle connection can carry another request: the server has not closed
        it (a keep-alive timeout), as far as this side knows yet."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()  # the transport goes at once; nothing to wait for


class Response:
    """A reply's status and headers; its body is read with ``read`` or ``lines``, then the
    connection goes back to its pool (if the server keeps it open) or is closed. ``close``
    closes it whatever was read."""

    def __init__(
        self,
        pool: HTTPPool,
        connection: _Connection,
        status: int,
        headers: dict[str, str],
        timeout: float | None,
        version: str = "HTTP/1.1",
    ) -> None:
        self.pool, self.connection = pool, connection
        self.status, self.headers, self.timeout = status, headers, timeout
        self._done = False
        # HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only if asked to keep
        said = headers.get("connection", "").lower()
        self.keep_alive = "close" not in said and (version != "HTTP/1.0" or "keep-alive" in said)

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._pieces()])

    async def lines(self) -> AsyncGenerator[bytes, None]:
        """The body's lines, without their line ends; linear in the body (each piece is
        searched once, however long a line grows)."""
        line = bytearray()
        pieces = self._pieces()
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                start = 0
                while (end := piece.find(b"\n", start)) != -1:
                    line += piece[start:end]
                    yield bytes(line).removesuffix(b"\r")
                    line.clear()
                    start = end + 1
                line += piece[start:]
        if line:
            yield bytes(line).removesuffix(b"\r")

    async def _pieces(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, at most ``MAX_REPLY_BYTES`` (``ReplyTooLarge``), framed by
        Content-Length, chunked transfer encoding or the end of the connection; each wait for
        bytes bounded by ``timeout``."""
        received = 0
        async for piece in self._framed():
            received += len(piece)
            if received > MAX_REPLY_BYTES:
                raise ReplyTooLarge(f"reply larger than {MAX_REPLY_BYTES >> 20} MiB")
            yield piece

    async def _framed(self) -> AsyncGenerator[bytes, None]:
        reader = self.connection.reader
        keep = self.keep_alive
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                while True:
                    size_line = await _timed(reader.readline(), self.timeout)
                    try:
                        size = int(size_line.split(b";")[0].strip(), 16)
                    except ValueError:
                        raise RemoteProtocolError("malformed chunk size") from None
                    if size == 0:
                        while (await _timed(reader.readline(), self.timeout)).strip():
                            pass  # trailers
                        break
                    async for piece in self._exactly(size):
                        yield piece
                    await _timed(reader.readexactly(2), self.timeout)  # the chunk's CRLF
            elif "content-length" in self.headers:
                try:
                    length = int(self.headers["content-length"])
                except ValueError:
                    raise RemoteProtocolError("malformed Content-Length") from None
                if length > MAX_REPLY_BYTES:  # said before it is sent: refused at once
                    raise ReplyTooLarge(f"reply larger than {MAX_REPLY_BYTES >> 20} MiB")
                async for piece in self._exactly(length):
                    yield piece
            else:  # the body ends with the connection
                keep = False
                while piece := await _timed(reader.read(1 << 16), self.timeout):
                    yield piece
        except asyncio.IncompleteReadError:
            raise RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ) from None
        except (RemoteProtocolError, TimeoutError):  # TimeoutError is an OSError too
            raise
        except (ConnectionError, OSError) as exc:
            raise ReadError(str(exc)) from exc
        self._done = True
        self.pool.release(self.connection, keep=keep)

    async def _exactly(self, length: int) -> AsyncGenerator[bytes, None]:
        reader = self.connection.reader
        while length > 0:
            piece = await _timed(reader.read(min(length, 1 << 16)), self.timeout)
            if not piece:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(piece)
            yield piece

    def close(self) -> None:
        """Drop the connection unless its reply was read to the end (then it is pooled)."""
        if not self._done:
            self._done = True
            self.connection.close()


async def _timed(awaitable: Any, timeout: float | None) -> Any:
    """``awaitable``, failing with ``TimeoutError`` after ``timeout`` seconds (None: never)."""
    if timeout is None:
        return await awaitable
    async with asyncio.timeout(timeout):
        return await awaitable


class HTTPPool:
    """Keep-alive HTTP/1.1 connections to one server, for one event loop. ``close`` closes
    them (``LMClient`` does when its loop winds down)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        # as httpx would send it: what is not allowed in a path, percent-encoded
        self.prefix = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if parts.port is None else f"{host}:{parts.port}"
        if parts.username is not None or parts.password is not None:
            # credentials in the URL win over the key, as in httpx (under the SDK)
            user = unquote(parts.username or "")
            password = unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.authorization = f"Basic {token}"
        else:
            self.authorization = f"Bearer {api_key}"
        if "\r" in self.authorization or "\n" in self.authorization:
            raise ValueError("a line break in the credentials")  # LMClient refuses it first
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def _connect(self, timeout: float | None) -> _Connection:
        try:
            reader, writer = await _timed(
                asyncio.open_connection(self.host, self.port, limit=LINE_LIMIT), timeout
            )
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectError(str(exc)) from exc
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    def release(self, connection: _Connection, *, keep: bool) -> None:
        """A connection whose reply was read to the end: idle for the next request, or
        closed if the server said so or enough are idle already."""
        connection.reused = True
        if keep and len(self._idle) < MAX_IDLE and connection.usable():
            self._idle.append(connection)
        else:
            self._forget(connection)

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.close()

    async def post(
        self, path: str, body: dict[str, Any], timeout: float | None, *, stream: bool = False
    ) -> Response:
        """Send ``body`` as JSON; the reply's status line and headers are read, its body is
        the caller's to read (``Response.read`` / ``lines``) or to close.

        A request on a reused connection that the server had closed meanwhile (it learns of
        it only now) is sent once more on a new connection, as any keep-alive client does;
        a failure on a new connection is the caller's.
        """
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            f"Authorization: {self.authorization}\r\n"
            "Content-Type: application/json\r\n"
            f"Accept: {'text/event-stream' if stream else 'application/json'}\r\n"
            "Accept-Encoding: identity\r\n"
            f"User-Agent: ablationkit/{__version__}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode("latin-1")
        while True:
            connection = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.usable():
                    connection = candidate
                    break
                self._forget(candidate)
            if connection is None:
                connection = await self._connect(timeout)
            try:
                return await self._exchange(connection, head + data, timeout)
            except (RemoteProtocolError, WriteError):
                self._forget(connection)
                if connection.reused and not connection.answered:
                    continue  # closed while idle: once more, on a new connection
                raise
            except BaseException:
                self._forget(connection)
                raise

    async def _exchange(
        self, connection: _Connection, request: bytes, timeout: float | None
    ) -> Response:
        connection.answered = False
        reader, writer = connection.reader, connection.writer
        try:
            writer.write(request)
            if writer.transport.get_write_buffer_size():  # not all sent at once: wait
                await _timed(writer.drain(), timeout)
        except TimeoutError:  # an OSError too: not a failure of the connection
            raise
        except (ConnectionError, OSError) as exc:
            raise WriteError(str(exc)) from exc
        while True:
            # the status line and headers in one wait (the model's time to answer): one
            # timer per reply, not one per header line
            try:
                head = await _timed(reader.readuntil(b"\r\n\r\n"), timeout)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    connection.answered = True
                    raise RemoteProtocolError("connection closed inside the headers") from None
                raise RemoteProtocolError(
                    "Server disconnected without sending a response."
                ) from None
            except asyncio.LimitOverrunError:
                connection.answered = True
                raise RemoteProtocolError("headers too long") from None
            except TimeoutError:
                raise
            except (ConnectionError, OSError) as exc:
                raise ReadError(str(exc)) from exc
            connection.answered = True
            version, status, headers = _parse_head(head)
            if not 100 <= status < 200:  # 100 Continue and friends, unasked: skipped
                return Response(self, connection, status, headers, timeout, version)

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    """HTTP version, status and headers (names in lower case) of a reply's head."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise RemoteProtocolError("not an HTTP/1.1 response")
    try:
        status = int(parts[1])
    except ValueError:
        raise RemoteProtocolError("malformed status line") from None
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return parts[0], status, headers


def classify(exc: BaseException, route: Route, timeout: float | None = None) -> Exception:
    """A transport or status failure -> TransientError (retry) or ModelCallError (give up),
    with the texts ``backend_openai.classify`` gives for the SDK's exceptions."""
    name = route.model_id
    if isinstance(exc, ReplyTooLarge):
        return ModelCallError(f"{name}: {exc}: refused")
    if isinstance(exc, HTTPStatusError):
        status = exc.status
        retry_after = parse_retry_after(exc.headers.get("retry-after"))
        if status == 429:
            return TransientError("HTTP 429 rate limited", retry_after)
        if status >= 500 or status in (408, 409):
            return TransientError(f"HTTP {status} server error", retry_after)
        hint = ""
        if status in (401, 403):
            hint = f" (check {route.key_variable})" if route.key_variable else ""
        message = redact(" ".join(exc.message.split()))[:300]
        return ModelCallError(f"{name}: HTTP {status}{hint}: {message}")
    if isinstance(exc, TimeoutError):
        return timed_out(timeout)
    if isinstance(exc, ConnectionError):
        cause = exc.__cause__
        if is_loopback(route.base_url) and cause is not None and _refused(cause):
            return ModelCallError(
                redact(f"{name}: cannot connect to {route.base_url}: is the server running?")
            )
        return TransientError(f"connection failed ({type(exc).__name__})")
    if isinstance(exc, ValueError):  # json.JSONDecodeError too
        return TransientError("malformed reply (not valid JSON)")
    return ModelCallError(f"{name}: {redact(type(exc).__name__ + ': ' + str(exc))[:300]}")


def _timings(data: dict[str, Any]) -> dict[str, float]:
    timings = data.get("timings")
    if not isinstance(timings, dict):
        return {}
    return {k: float(v) for k, v in timings.items() if isinstance(v, (int, float))}


def _usage(data: Any) -> TokenUsage:
    if not isinstance(data, dict):
        return TokenUsage()
    return TokenUsage(data.get("prompt_tokens") or 0, data.get("completion_tokens") or 0)


async def call(
    pool: HTTPPool,
    route: Route,
    messages: list[Message],
    *,
    schema: dict[str, Any] | None,
    params: dict[str, Any],
    timeout: float | None,
    on_token: TokenCallback | None,
) -> Completion:
    """One attempt, as ``backend_openai.call``: raises TransientError or ModelCallError and
    never retries by itself."""
    body = _request(route, messages, schema, params, stream=on_token is not None)
    response: Response | None = None
    try:
        response = await pool.post("/chat/completions", body, timeout, stream=bool(on_token))
        if response.status >= 400:
            raise HTTPStatusError(response.status, response.headers, await response.read())
        if on_token is None:
            return _completion(json.loads(await response.read()), route)
        return await _stream(response, route, on_token)
    except (TransientError, ModelCallError):
        raise
    except Exception as exc:
        raise classify(exc, route, timeout) from exc
    finally:
        if response is not None:
            response.close()  # a no-op once the body was read to its end


def _completion(data: Any, route: Route) -> Completion:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise TransientError("malformed reply (no choices)")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    return Completion(
        text=message.get("content") or "",
        usage=_usage(data.get("usage")),
        model=data.get("model") or route.model_name,
        finish_reason=choice.get("finish_reason"),
        timings=_timings(data),
    )


async def _events(response: Response) -> AsyncGenerator[tuple[str | None, str], None]:
    """Server-sent events as (event name, data), as the SDK's decoder reads them."""
    event: str | None = None
    data: list[str] = []
    lines = response.lines()
    async with contextlib.aclosing(lines):
        async for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = None, []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    if data:
        yield event, "\n".join(data)


async def _stream(response: Response, route: Route, on_token: TokenCallback) -> Completion:
    """One streamed reply, as ``backend_openai._stream``: each piece handed to ``on_token``
    as it arrives; ``on_token`` raising ``StopGeneration`` ends the reply there (the
    connection is closed, so the server stops generating)."""
    reply = _StreamedReply(route, on_token)
    events = _events(response)
    async with contextlib.aclosing(events):
        async for event, payload in events:
            if payload.startswith("[DONE]"):
                break
            if event is not None and event != "error":
                continue  # the chat API sends data-only events; others are not ours
            if reply.take(event, json.loads(payload)):
                break
    if reply.stopped is not None:
        reply.finish_reason = reply.stopped.finish_reason
    if reply.finish_reason is None:
        raise TransientError("stream ended before the reply was complete")
    return Completion(
        text="".join(reply.pieces),
        usage=reply.usage,
        model=reply.model,
        finish_reason=reply.finish_reason,
        timings=reply.timings,
    )


class _StreamedReply:
    """What the chunks of a streamed reply said so far."""

    def __init__(self, route: Route, on_token: TokenCallback) -> None:
        self.route, self.on_token = route, on_token
        self.pieces: list[str] = []
        self.stopped: StopGeneration | None = None
        self.usage = TokenUsage()
        self.finish_reason: str | None = None
        self.model = route.model_name
        self.timings: dict[str, float] = {}

    def take(self, event: str | None, chunk: Any) -> bool:
        """Add one chunk; whether the reply ends here (``on_token`` stopped it). An error
        event is final, as the SDK's stream raises it (an ``APIError``)."""
        if not isinstance(chunk, dict):
            return False
        if chunk.get("error") is not None or event == "error":
            error = chunk.get("error")
            text = error.get("message") if isinstance(error, dict) else None
            detail = redact(f"APIError: {text or 'An error occurred during streaming'}")[:300]
            raise ModelCallError(f"{self.route.model_id}: {detail}")
        progress.report_chunk(chunk)  # to whoever shows this call's progress, if anyone
        self.model = chunk.get("model") or self.model
        self.timings = _timings(chunk) or self.timings
        if chunk.get("usage"):
            self.usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                self.pieces.append(content)
                try:
                    self.on_token(content)
                except StopGeneration as stop:
                    self.stopped = stop
                    return True
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return False


__all__ = ["HTTPPool", "call", "classify", "thin_path_for"]
