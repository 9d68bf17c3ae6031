"""One completion layer over cloud providers, OpenAI-compatible servers and an embedded
offline model: ``complete(messages, model)`` -> ``Completion``."""

from ablationkit.lm.cache import CompletionCache
from ablationkit.lm.client import LMClient, RunUsage, acomplete, complete, default_client
from ablationkit.lm.retry import RetryPolicy
from ablationkit.lm.routes import Route, resolve
from ablationkit.lm.types import (
    Completion,
    ModelCallError,
    ModelError,
    ModelUnavailableError,
    TokenUsage,
)

__all__ = [
    "Completion",
    "CompletionCache",
    "LMClient",
    "ModelCallError",
    "ModelError",
    "ModelUnavailableError",
    "RetryPolicy",
    "Route",
    "RunUsage",
    "TokenUsage",
    "acomplete",
    "complete",
    "default_client",
    "resolve",
]
