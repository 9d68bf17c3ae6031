"""One completion layer over cloud providers, OpenAI-compatible servers and an embedded
offline model: ``complete(messages, model)`` -> ``Completion``.

The names are imported lazily, as in ``ablationkit``: the CLI imports ``lm.keys`` (the
redactor) for every command, and that must not cost the client, the cache and asyncio.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "CompletionCache": "ablationkit.lm.cache",
    "LMClient": "ablationkit.lm.client",
    "RunUsage": "ablationkit.lm.client",
    "acomplete": "ablationkit.lm.client",
    "complete": "ablationkit.lm.client",
    "default_client": "ablationkit.lm.client",
    "Deadline": "ablationkit.lm.retry",
    "RetryPolicy": "ablationkit.lm.retry",
    "Model": "ablationkit.lm.models",
    "resolve_model": "ablationkit.lm.models",
    "RetryEvent": "ablationkit.lm.retry",
    "close_default_client": "ablationkit.lm.client",
    "Route": "ablationkit.lm.routes",
    "resolve": "ablationkit.lm.routes",
    "Completion": "ablationkit.lm.types",
    "ModelCallError": "ablationkit.lm.types",
    "ModelConfigError": "ablationkit.lm.types",
    "ModelError": "ablationkit.lm.types",
    "ModelUnavailableError": "ablationkit.lm.types",
    "TokenUsage": "ablationkit.lm.types",
}

__all__ = [
    "Completion",
    "CompletionCache",
    "Deadline",
    "LMClient",
    "Model",
    "ModelCallError",
    "ModelConfigError",
    "ModelError",
    "ModelUnavailableError",
    "RetryEvent",
    "RetryPolicy",
    "Route",
    "RunUsage",
    "TokenUsage",
    "acomplete",
    "close_default_client",
    "complete",
    "default_client",
    "resolve",
    "resolve_model",
]

if TYPE_CHECKING:
    from ablationkit.lm.cache import CompletionCache
    from ablationkit.lm.client import (
        LMClient,
        RunUsage,
        acomplete,
        close_default_client,
        complete,
        default_client,
    )
    from ablationkit.lm.models import Model, resolve_model
    from ablationkit.lm.retry import Deadline, RetryEvent, RetryPolicy
    from ablationkit.lm.routes import Route, resolve
    from ablationkit.lm.types import (
        Completion,
        ModelCallError,
        ModelConfigError,
        ModelError,
        ModelUnavailableError,
        TokenUsage,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ablationkit.lm' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
