"""Model ids -> where and how to call them.

``local`` is the embedded model; ``openai/gpt-4o``, ``openrouter/google/gemini-2.5-flash``,
``ollama/llama3.1``, ``vllm/…``, ``llamacpp/…`` and ``lmstudio/…`` are OpenAI-compatible
endpoints; ``anthropic/…`` and ``gemini/…`` go through the optional litellm extra;
``replay:FILE`` serves recorded replies; any id with an explicit ``api_base`` is sent to that
OpenAI-compatible server as it is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ablationkit.lm.keys import redact, register_url_secrets
from ablationkit.lm.types import ModelConfigError, ModelUnavailableError

Kind = Literal["openai", "litellm", "local", "replay"]


@dataclass(frozen=True)
class Route:
    kind: Kind
    model_id: str  # as the user wrote it (cache key, reports)
    model_name: str  # as the endpoint expects it
    base_url: str | None = None
    key_variable: str | None = None
    needs_key: bool = False
    supports_schema: bool = True
    local: bool = False


# provider -> (default base URL, key variable, key required, JSON-schema decoding supported)
OPENAI_COMPATIBLE: dict[str, tuple[str, str | None, bool, bool]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY", True, True),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", True, True),
    "ollama": ("http://127.0.0.1:11434/v1", None, False, True),
    "vllm": ("http://127.0.0.1:8000/v1", "VLLM_API_KEY", False, True),
    "llamacpp": ("http://127.0.0.1:8080/v1", None, False, True),
    "lmstudio": ("http://127.0.0.1:1234/v1", None, False, True),
}
LITELLM_PROVIDERS = {"anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


def check_api_base(url: str) -> str:
    """``url`` without a trailing slash, or ``ModelConfigError`` naming what is wrong with it
    (before any request: the HTTP client's own error for it is a traceback).

    A password in it is registered for redaction: it must not reach an error or a log.
    """
    register_url_secrets(url)
    shown = redact(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises for a port that is not a number in range
        host = parts.hostname
    except ValueError as exc:
        raise ModelConfigError(f"api_base {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ModelConfigError(
            f"api_base {shown!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)"
        )
    if not host:
        raise ModelConfigError(f"api_base {shown!r} names no host")
    if port == 0:
        raise ModelConfigError(f"api_base {shown!r} has port 0")
    return url.strip().rstrip("/")


def is_loopback(url: str | None) -> bool:
    """Whether a server URL points at this machine (localhost, 127.0.0.0/8, ::1)."""
    if not url:
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(model: str, api_base: str | None = None) -> Route:
    model = model.strip()
    if not model:
        raise ModelUnavailableError("empty model id")
    if api_base is not None and api_base.strip():
        api_base = check_api_base(api_base)
    if model == "local" or model.startswith("local:"):
        return Route("local", model, model, local=True)
    if model.startswith("replay:"):
        return Route("replay", model, model)
    provider, _, rest = model.partition("/")
    if api_base:
        name = rest if provider in OPENAI_COMPATIBLE and rest else model
        return Route("openai", model, name, base_url=api_base, key_variable="ABLATIONKIT_API_KEY")
    if provider in OPENAI_COMPATIBLE and rest:
        base, key, needs_key, schema = OPENAI_COMPATIBLE[provider]
        return Route(
            "openai",
            model,
            rest,
            base_url=base,
            key_variable=key,
            needs_key=needs_key,
            supports_schema=schema,
        )
    if provider in LITELLM_PROVIDERS and rest:
        return Route(
            "litellm", model, model, key_variable=LITELLM_PROVIDERS[provider], needs_key=True
        )
    known = ", ".join(
        [
            "local",
            *[f"{p}/…" for p in OPENAI_COMPATIBLE],
            *[f"{p}/…" for p in LITELLM_PROVIDERS],
            "replay:FILE",
        ]
    )
    raise ModelUnavailableError(
        f'unknown model id "{model}": use one of {known}, or give --api-base for an '
        "OpenAI-compatible server"
    )
