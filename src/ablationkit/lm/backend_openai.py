"""OpenAI-compatible chat completions through the openai SDK (``base_url`` + key).

Serves OpenAI, OpenRouter, vLLM, Ollama, llama.cpp servers, LM Studio and the embedded model's
loopback server. The SDK's own retries are off: ``LMClient`` retries, so that ``Retry-After``
is honoured and every retry is counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ablationkit.lm import progress
from ablationkit.lm.keys import redact
from ablationkit.lm.retry import parse_retry_after
from ablationkit.lm.routes import Route, is_loopback
from ablationkit.lm.types import Completion, Message, ModelCallError, StopGeneration, TokenUsage

TokenCallback = Callable[[str], None]
_UNUSED = {
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "logit_bias",
    "user",
}


class TransientError(Exception):
    """A failure worth retrying; ``retry_after`` is the server's wish, if it said one.
    ``timed_out``: the attempt already waited its whole timeout, so no backoff is due."""

    def __init__(
        self, reason: str, retry_after: float | None = None, *, timed_out: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.timed_out = timed_out


def timed_out(timeout: float | None) -> TransientError:
    after = f" (no reply for {timeout:g} s)" if timeout is not None else ""
    return TransientError(f"timed out{after}", timed_out=True)


def _refused(exc: BaseException) -> bool:
    """Whether a connection error was a refusal (nobody listens on the port), looking
    through the chain of causes the SDK and httpx wrap it in."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError):
            return True
        pending.extend(e for e in (error.__cause__, error.__context__) if e is not None)
        pending.extend(getattr(error, "exceptions", None) or ())
    return False


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": False},
    }


def _request(
    route: Route,
    messages: list[Message],
    schema: dict[str, Any] | None,
    params: dict[str, Any],
    stream: bool,
) -> dict[str, Any]:
    """The JSON body of a chat request; parameters the SDK does not know travel as they are."""
    body: dict[str, Any] = {"model": route.model_name, "messages": messages, **params}
    if schema is not None and route.supports_schema:
        body["response_format"] = response_format(schema)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        if route.local and progress.wants_progress():  # llama.cpp: prompt_progress chunks
            body["return_progress"] = True
    return body


async def _post(client: Any, body: dict[str, Any], timeout: float | None) -> Any:
    """POST /chat/completions through the SDK's documented ``client.post``.

    ``chat.completions.create`` would first re-validate the body against its TypedDicts,
    about 10 ms of CPU per request: the largest cost of a 50-way concurrent batch run.
    """
    from openai import AsyncStream
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    return await client.post(
        "/chat/completions",
        cast_to=ChatCompletion,
        body=body,
        options={"timeout": timeout},
        stream=bool(body.get("stream")),
        stream_cls=AsyncStream[ChatCompletionChunk],
    )


def _timings(obj: Any) -> dict[str, float]:
    extra = getattr(obj, "model_extra", None) or {}
    timings = extra.get("timings") or {}
    return {k: float(v) for k, v in timings.items() if isinstance(v, (int, float))}


def classify(exc: BaseException, route: Route, timeout: float | None = None) -> Exception:
    """An SDK/transport exception -> TransientError (retry) or ModelCallError (give up).

    A refused connection to a server on this machine is final: a local server that is not
    running will not start during the backoff, and the user needs the hint at once. Remote
    connection errors stay transient (a network blip, a load balancer restarting).
    """
    import openai

    name = route.model_id
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        if status == 429:
            return TransientError("HTTP 429 rate limited", retry_after)
        if status >= 500 or status in (408, 409):
            return TransientError(f"HTTP {status} server error", retry_after)
        hint = ""
        if status in (401, 403):
            hint = f" (check {route.key_variable})" if route.key_variable else ""
        message = redact(" ".join(str(exc.message).split()))[:300]
        return ModelCallError(f"{name}: HTTP {status}{hint}: {message}")
    if isinstance(exc, openai.APITimeoutError):
        return timed_out(timeout)
    transport = type(exc).__module__.split(".")[0] in {
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "h11",
    }
    if isinstance(exc, (openai.APIConnectionError, ConnectionError)) or transport:
        if is_loopback(route.base_url) and _refused(exc):
            return ModelCallError(
                redact(f"{name}: cannot connect to {route.base_url}: is the server running?")
            )
        return TransientError(f"connection failed ({type(exc.__cause__ or exc).__name__})")
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, ValueError)):
        return TransientError("malformed reply (not valid JSON)")
    return ModelCallError(f"{name}: {redact(type(exc).__name__ + ': ' + str(exc))[:300]}")


async def call(
    client: Any,
    route: Route,
    messages: list[Message],
    *,
    schema: dict[str, Any] | None,
    params: dict[str, Any],
    timeout: float | None,
    on_token: TokenCallback | None,
) -> Completion:
    """One attempt. Raises TransientError or ModelCallError; never retries by itself.

    ``timeout`` bounds the connection and every wait for the next bytes of the reply
    (None: no limit, for the embedded model)."""
    kwargs = _request(route, messages, schema, params, stream=on_token is not None)
    try:
        if on_token is None:
            response = await _post(client, kwargs, timeout)
            if not getattr(response, "choices", None):
                raise TransientError("malformed reply (no choices)")
            choice = response.choices[0]
            usage = response.usage
            return Completion(
                text=choice.message.content or "",
                usage=TokenUsage(usage.prompt_tokens or 0, usage.completion_tokens or 0)
                if usage
                else TokenUsage(),
                model=response.model or route.model_name,
                finish_reason=choice.finish_reason,
                timings=_timings(response),
            )
        return await _stream(client, route, kwargs, timeout, on_token)
    except (TransientError, ModelCallError):
        raise
    except Exception as exc:
        raise classify(exc, route, timeout) from exc


async def _stream(
    client: Any,
    route: Route,
    kwargs: dict[str, Any],
    timeout: float | None,
    on_token: TokenCallback,
) -> Completion:
    """One streamed reply, each piece handed to ``on_token`` as it arrives; ``on_token``
    raising ``StopGeneration`` ends the reply there (the stream is closed, so the server
    stops generating)."""
    pieces: list[str] = []
    stopped: StopGeneration | None = None
    usage = TokenUsage()
    finish_reason = None
    model = route.model_name
    timings: dict[str, float] = {}
    stream = await _post(client, kwargs, timeout)
    # Closed however the reading ends (done, the task cancelled, ``on_token`` or a chunk
    # failing): the server sees the connection go at once and frees its slot (llama.cpp stops
    # generating), instead of streaming on until the garbage collector or httpcore notices.
    async with stream:
        async for chunk in stream:
            progress.report_chunk(chunk)  # to whoever shows this call's progress, if anyone
            model = getattr(chunk, "model", None) or model
            timings = _timings(chunk) or timings
            if getattr(chunk, "usage", None):
                usage = TokenUsage(
                    chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0
                )
            for choice in chunk.choices or []:
                delta = choice.delta.content if choice.delta else None
                if delta:
                    pieces.append(delta)
                    try:
                        on_token(delta)
                    except StopGeneration as stop:
                        stopped = stop
                        break
                finish_reason = choice.finish_reason or finish_reason
            if stopped is not None:
                break
    if stopped is not None:
        finish_reason = stopped.finish_reason
    if finish_reason is None:
        raise TransientError("stream ended before the reply was complete")
    return Completion(
        text="".join(pieces), usage=usage, model=model, finish_reason=finish_reason, timings=timings
    )
