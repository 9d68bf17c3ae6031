"""What a model call returns, and the errors it can end in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ablationkit.errors import AblationKitError
from ablationkit.schema import Usage

Message = dict[str, Any]


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Completion:
    """One model reply. ``cost`` is in USD and None when the price is unknown; a cached reply
    costs 0. ``timings`` carries the server's own split (prompt/generation ms) when it has one."""

    text: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost: float | None = None
    model: str = ""
    latency: float = 0.0
    cached: bool = False
    finish_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def as_usage(self) -> Usage:
        """This call's tokens and cost, as a plan or judgement records them."""
        return Usage(
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            cost_usd=self.cost,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        data = dict(data)
        data["usage"] = TokenUsage(**data.get("usage") or {})
        return cls(**data)


class StopGeneration(Exception):
    """Raised by an ``on_token`` callback to end a streamed reply where it is (the planner
    stops a reply that loops on one sentence instead of waiting minutes for its token
    limit): the call returns the text so far, with ``finish_reason`` set to this one."""

    def __init__(self, reason: str, finish_reason: str = "stopped") -> None:
        super().__init__(reason)
        self.reason = reason
        self.finish_reason = finish_reason


class ModelError(AblationKitError):
    """A model could not be used or did not answer usefully."""

    exit_code = 3


class ModelUnavailableError(ModelError):
    """Not installed, not configured (no key, no server), or not known."""


class ModelConfigError(ModelUnavailableError):
    """A model setting the user gave is malformed (an ``api_base`` that is not an http(s)
    URL): bad input, so exit code 2 like a malformed file."""

    exit_code = 2


class ModelCallError(ModelError):
    """The call failed for good: retries exhausted, or an error that retrying cannot fix."""


def request_key(
    model: str,
    base_url: str | None,
    messages: list[Message],
    params: dict[str, Any],
    schema: dict[str, Any] | None,
) -> str:
    """Stable hash of everything that determines a reply: the cache and replay key."""
    payload = {
        "model": model,
        "base_url": base_url or "",
        "messages": messages,
        "params": params,
        "schema": schema,
    }
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()
