"""Ask, parse, and on failure ask once more showing the model its own error.

Planner and judges share this: a reply that cannot be used gets exactly one repair
round-trip; if that fails too, ``RepairFailed`` carries every reply for the caller to save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ablationkit.errors import AblationKitError
from ablationkit.lm.client import LMClient
from ablationkit.lm.models import Model
from ablationkit.lm.types import Completion, Message

T = TypeVar("T")


class RepairFailed(AblationKitError):
    """Both replies were unusable; ``replies`` holds them, ``message`` the last reason."""

    def __init__(self, message: str, replies: list[Completion]) -> None:
        super().__init__(message)
        self.replies = replies


async def acomplete_and_parse(
    client: LMClient,
    messages: list[Message],
    model: str | Model,
    parse: Callable[[Completion], T],
    *,
    instruction: str,
    on_repair: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> tuple[T, list[Completion]]:
    """``parse`` raises ``AblationKitError`` for an unusable reply; ``instruction`` ends the
    repair message ("Reply again with only the JSON object …")."""
    replies: list[Completion] = []
    for attempt in range(2):
        reply = await client.acomplete(messages, model, **kwargs)
        replies.append(reply)
        try:
            return parse(reply), replies
        except AblationKitError as exc:
            if attempt == 1:
                raise RepairFailed(exc.message, replies) from None
            if on_repair is not None:
                on_repair(exc.message)
            messages = [
                *messages,
                {"role": "assistant", "content": reply.text},
                {
                    "role": "user",
                    "content": f"Your reply could not be used: {exc.message}. {instruction}",
                },
            ]
    raise AssertionError("unreachable")


def complete_and_parse(
    client: LMClient,
    messages: list[Message],
    model: str | Model,
    parse: Callable[[Completion], T],
    *,
    instruction: str,
    on_repair: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> tuple[T, list[Completion]]:
    """``acomplete_and_parse`` for synchronous code."""
    result = client.run_sync(
        acomplete_and_parse(
            client, messages, model, parse, instruction=instruction, on_repair=on_repair, **kwargs
        )
    )
    client.flush()
    return result
