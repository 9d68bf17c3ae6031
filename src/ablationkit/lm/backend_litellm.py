"""Anthropic and Gemini through litellm: an optional extra, imported only when used.

``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set before the import so litellm reads its bundled
price map instead of fetching one from the network.
"""

from __future__ import annotations

import os
from typing import Any

from ablationkit.lm.backend_openai import TokenCallback, TransientError, classify, response_format
from ablationkit.lm.routes import Route
from ablationkit.lm.types import (
    Completion,
    Message,
    ModelUnavailableError,
    StopGeneration,
    TokenUsage,
)


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise ModelUnavailableError(
            "anthropic/… and gemini/… models need litellm: pip install 'ablationkit[cloud]'"
        ) from None
    return litellm


async def call(
    route: Route,
    messages: list[Message],
    *,
    schema: dict[str, Any] | None,
    params: dict[str, Any],
    timeout: float | None,
    api_key: str | None,
    on_token: TokenCallback | None,
) -> Completion:
    litellm = _litellm()
    kwargs: dict[str, Any] = {
        "model": route.model_name,
        "messages": messages,
        "timeout": timeout,
        "num_retries": 0,
        **params,
    }
    if api_key:
        kwargs["api_key"] = api_key
    if schema is not None:
        kwargs["response_format"] = response_format(schema)
    try:
        if on_token is None:
            response = await litellm.acompletion(**kwargs)
            choice = response.choices[0]
            usage = getattr(response, "usage", None)
            return Completion(
                text=choice.message.content or "",
                usage=TokenUsage(
                    getattr(usage, "prompt_tokens", 0) or 0,
                    getattr(usage, "completion_tokens", 0) or 0,
                ),
                model=getattr(response, "model", None) or route.model_name,
                finish_reason=choice.finish_reason,
            )
        pieces: list[str] = []
        finish_reason = None
        usage_out = TokenUsage()
        stream = await litellm.acompletion(
            stream=True, stream_options={"include_usage": True}, **kwargs
        )
        async for chunk in stream:
            stopped = None
            for choice in chunk.choices or []:
                if choice.delta and choice.delta.content:
                    pieces.append(choice.delta.content)
                    try:
                        on_token(choice.delta.content)
                    except StopGeneration as stop:  # the caller ends the reply here
                        stopped = stop
                        break
                finish_reason = choice.finish_reason or finish_reason
            if stopped is not None:
                finish_reason = stopped.finish_reason
                break
            usage = getattr(chunk, "usage", None)
            if usage:
                usage_out = TokenUsage(usage.prompt_tokens or 0, usage.completion_tokens or 0)
        return Completion(
            text="".join(pieces),
            usage=usage_out,
            model=route.model_name,
            finish_reason=finish_reason,
        )
    except (TransientError, ModelUnavailableError):
        raise
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if status == 429 or (isinstance(status, int) and status >= 500):
            raise TransientError(f"HTTP {status}") from exc
        raise classify(exc, route, timeout) from exc
