"""How long to wait for a model: before trying a call again, for one attempt, for one paper."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import monotonic, time

# Seconds one attempt may wait on a server: to connect, and between bytes of its reply (for a
# reply that is not streamed, that is the whole reply). Remote providers answer a plan within
# a minute; a server that said nothing for two has hung, and retrying beats waiting.
REMOTE_TIMEOUT = 120.0
# A server on this machine (Ollama, vLLM, llama.cpp, LM Studio) generates at the speed of the
# machine's own hardware, and the batch runner does not stream: a 3000-token plan from a 7B
# model on a laptop takes minutes before the first byte. It gets the old, generous limit.
LOOPBACK_TIMEOUT = 600.0
# The whole of one paper's model calls (retries and the repair round-trip included).
DEFAULT_DEADLINE = 1800.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryEvent:
    """A call is being tried again: attempt ``attempt`` (1-based) failed for ``reason`` and
    the next one starts after ``delay`` seconds. Whatever that attempt streamed is void: a
    display that showed it should start over (see ``planner.stream.ReasoningStream``)."""

    model: str
    attempt: int
    reason: str
    delay: float


RetryCallback = Callable[[RetryEvent], None]


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; a server's ``Retry-After`` wins when given.

    ``sleep`` is injectable so tests can check the waits without waiting.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) + random.uniform(0, 0.1)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


@dataclass
class Deadline:
    """A budget of seconds for one piece of work, a paper: the time its model calls spend
    running, their attempts and the waits between them included.

    Only time spent inside calls counts, not time queued for the client's concurrency limit:
    a batch whose papers wait their turn for the embedded model (one at a time) must not fail
    them for waiting. ``LMClient`` stops retrying, and cuts an attempt short, when it is spent.
    """

    seconds: float
    spent: float = 0.0
    _since: float | None = field(default=None, repr=False)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count the time inside this block against the budget."""
        self._since = monotonic()
        try:
            yield
        finally:
            self.spent += monotonic() - self._since
            self._since = None

    def remaining(self) -> float:
        running = monotonic() - self._since if self._since is not None else 0.0
        return self.seconds - self.spent - running

    def describe(self) -> str:
        return f"no reply within {self.seconds:g} s"
