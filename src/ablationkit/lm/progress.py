"""What a streaming model call reports while it works, and how fast models run on this machine.

Why: on two CPU cores the embedded model spends minutes reading a paper's prompt before its
first token; without this a user (or a log file) sees nothing all that time.

- ``PromptProgress``: llama.cpp's ``prompt_progress`` (total, cached, processed tokens and the
  server's milliseconds), sent in streamed chunks when the request asks ``return_progress``.
  xllamacpp's in-process server sends one as processing starts and one after each batch.
- ``listening(listener)``: the caller's ``StreamListener`` for every call made in this context
  (a ``ContextVar``: it follows the caller into the client's event loop and its tasks, so no
  signature between the caller and the HTTP backend has to carry it). Backends hand each
  streamed chunk to ``report_chunk``.
- ``RateBook``: prompt and generation tokens/s per model, measured on this machine by the
  progress display and kept in the cache directory, with calibrated figures for the embedded
  models until a measurement exists: the ETA of a first run and ``bench plan --dry-run``'s
  time estimate come from it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import threading
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = [
    "PromptProgress",
    "RateBook",
    "Rates",
    "StreamListener",
    "estimate_seconds",
    "listening",
    "report_chunk",
]


@dataclass(frozen=True)
class PromptProgress:
    """One ``prompt_progress`` report: of ``total`` prompt tokens, ``cached`` came from the
    prompt cache and ``processed`` (cached included) are done, ``ms`` after processing began."""

    total: int
    cached: int
    processed: int
    ms: float

    @classmethod
    def parse(cls, raw: Any) -> PromptProgress | None:
        """From a chunk's ``prompt_progress`` object; None if it is not one."""
        if not isinstance(raw, Mapping):
            return None
        try:
            total = int(raw["total"])
            cached = int(raw.get("cache") or 0)
            processed = int(raw["processed"])
            ms = float(raw.get("time_ms") or 0.0)
        except (KeyError, TypeError, ValueError):
            return None
        if total < 0 or processed < 0:
            return None
        return cls(total, min(cached, total), min(processed, total), max(ms, 0.0))

    @property
    def done(self) -> bool:
        return self.processed >= self.total


class StreamListener(Protocol):
    """Hears every streamed call made while it listens (see ``listening``)."""

    def prompt(self, event: PromptProgress) -> None: ...

    def token(self, piece: str) -> None: ...


_listener: ContextVar[StreamListener | None] = ContextVar(
    "ablationkit_stream_listener", default=None
)


@contextlib.contextmanager
def listening(listener: StreamListener) -> Iterator[StreamListener]:
    """Report the streamed calls made in this context (this thread, or this task and the tasks
    it starts, and coroutines it hands to ``LMClient.run_sync``) to ``listener``."""
    token = _listener.set(listener)
    try:
        yield listener
    finally:
        _listener.reset(token)


def wants_progress() -> bool:
    """Whether someone listens: a backend asks its server for progress reports only then."""
    return _listener.get() is not None


def report_chunk(chunk: Any) -> None:
    """Hand one streamed chunk (the SDK's object or its JSON as a dict) to the listener, if
    any: its ``prompt_progress`` and its text. A display's failure never fails the model
    call: it is logged."""
    listener = _listener.get()
    if listener is None:
        return
    try:
        if isinstance(chunk, Mapping):
            extra: Any = chunk
            choices = chunk.get("choices") or []
            texts = [((c or {}).get("delta") or {}).get("content") for c in choices]
        else:
            extra = getattr(chunk, "model_extra", None) or {}
            choices = getattr(chunk, "choices", None) or []
            texts = [getattr(getattr(c, "delta", None), "content", None) for c in choices]
        event = PromptProgress.parse(extra.get("prompt_progress"))
        if event is not None:
            listener.prompt(event)
        text = "".join(t for t in texts if isinstance(t, str))
        if text:
            listener.token(text)
    except Exception:  # a progress display must not end a plan
        log.debug("progress listener failed", exc_info=True)


# --------------------------------------------------------------------------- rates


@dataclass(frozen=True)
class Rates:
    """Tokens/s of one model on this machine. ``measured``: from runs here (the median of the
    last few), else calibrated figures (``basis`` says which)."""

    prompt: float
    generation: float
    measured: bool
    basis: str

    def seconds(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens / self.prompt + completion_tokens / self.generation


# The embedded default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) on two idle cores: a
# 6,257-token prompt at about 50 tokens/s (README, "Models"); generation 10 tokens/s, a little
# under what the README's 70-80 s for the sample implies (~2,100 prompt tokens and a stored
# ~450-token reply: 12-16 tokens/s), so that a first ETA errs long. Other GGUF files are
# scaled by their size (time per token grows with the weights read); measured rates replace
# all of these after the first plan.
DEFAULT_WEIGHTS_BYTES = 1_117_320_768
CALIBRATED_PROMPT_TPS = 50.0
CALIBRATED_GENERATION_TPS = 10.0
KEEP = 5  # measurements kept per model and kind
RATES_FILE = "rates.json"


def calibrated(model_id: str) -> Rates | None:
    """Figures for an embedded model before any run here measured it; None for others."""
    if model_id != "local" and not model_id.startswith("local:"):
        return None
    scale = 1.0
    if model_id != "local":
        try:
            from ablationkit.lm.local import weights_for

            size = weights_for(model_id).stat().st_size
        except Exception:  # not installed: a plan would fail anyway, an estimate need not
            size = DEFAULT_WEIGHTS_BYTES
        scale = DEFAULT_WEIGHTS_BYTES / max(size, 1)
    return Rates(
        CALIBRATED_PROMPT_TPS * scale,
        CALIBRATED_GENERATION_TPS * scale,
        measured=False,
        basis="calibrated on 2 idle cores, not yet measured here",
    )


class RateBook:
    """Measured tokens/s per model in ``rates.json`` of the cache directory (written
    atomically). An unreadable file counts as empty: these are estimates, never data."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from ablationkit.lm.cache import default_cache_dir

            path = default_cache_dir() / RATES_FILE
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _samples(self, entry: Any, kind: str) -> list[float]:
        values = entry.get(kind) if isinstance(entry, dict) else None
        if not isinstance(values, list):
            return []
        return [float(v) for v in values if isinstance(v, (int, float)) and v > 0]

    def rates(self, model_id: str) -> Rates | None:
        """Measured figures where there are some (a kind not measured yet is calibrated),
        else the calibrated ones; None for a model with neither."""
        entry = self._read().get(model_id)
        prompt = self._samples(entry, "prompt")
        generation = self._samples(entry, "generation")
        base = calibrated(model_id)
        if not prompt and not generation:
            return base
        prompt_tps = statistics.median(prompt) if prompt else base.prompt if base else None
        generation_tps = (
            statistics.median(generation) if generation else base.generation if base else None
        )
        if prompt_tps is None or generation_tps is None:
            return None
        when = entry.get("updated", "") if isinstance(entry, dict) else ""
        return Rates(
            prompt_tps,
            generation_tps,
            measured=True,
            basis=f"measured on this machine{f' ({when})' if when else ''}",
        )

    def record(
        self, model_id: str, *, prompt: float | None = None, generation: float | None = None
    ) -> None:
        """Add a measurement (tokens/s); the last ``KEEP`` of each kind are kept."""
        from ablationkit.fsutil import atomic_write_text

        if not prompt and not generation:
            return
        with self._lock:
            data = self._read()
            found = data.get(model_id)
            entry: dict[str, Any] = found if isinstance(found, dict) else {}
            for kind, value in (("prompt", prompt), ("generation", generation)):
                if value and value > 0:
                    kept = self._samples(entry, kind)
                    entry[kind] = [*kept, round(value, 2)][-KEEP:]
            entry["updated"] = time.strftime("%Y-%m-%d")
            data[model_id] = entry
            try:
                atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
            except OSError as exc:  # a read-only cache costs the next estimate, nothing else
                log.debug("cannot write %s: %s", self.path, exc)


def estimate_seconds(
    model_id: str, prompt_tokens: int, completion_tokens: int, book: RateBook | None = None
) -> tuple[float, Rates] | None:
    """Seconds to process ``prompt_tokens`` and generate ``completion_tokens`` with a model on
    this machine, and the rates used; None when nothing is known of its speed (a hosted
    model, or a server here that no run has measured)."""
    rates = (book or RateBook()).rates(model_id)
    if rates is None:
        return None
    return rates.seconds(prompt_tokens, completion_tokens), rates
