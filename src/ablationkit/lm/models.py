"""A model id resolved once into a ``Model``: where to call it, how much it reads, how to
count its tokens, what it costs and what it can do.

Before this module the facts about a model sat in four tables that matched names four ways
(routes, context windows, prices, embedded weights). Now ``routes.resolve`` says where a call
goes (provider, base URL, key), ``FACTS`` below is the one table of what we know about hosted
models, matched by ``family`` (the one rule), and the embedded model's facts come from its
own weights file. The planner asks the ``Model`` and never the embedded server.

How tokens are counted (``Model.tokenizer`` says which):

* ``"gguf-bpe"``: embedded models with a byte-level BPE vocabulary (the bundled Qwen and
  SmolLM2): the weights file's own tokenizer, read from the GGUF header without loading the
  model, so counting never starts it (``lm.gguf``; exact on the bundled models);
* ``"utf8-bytes"``: other GGUF tokenizers: the UTF-8 byte count, an upper bound;
* ``"estimate"``: hosted models, whose tokenizers we do not ship: ``estimate_tokens``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

from ablationkit.lm.routes import Kind, Route, resolve
from ablationkit.lm.types import TokenUsage

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Price:
    """List price in USD per million tokens."""

    input: float
    output: float

    def cost(self, usage: TokenUsage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6


FREE = Price(0.0, 0.0)


@dataclass(frozen=True)
class Facts:
    """What we know about a hosted model family: its context window (tokens) and its price
    (None: unknown, reported as such, never guessed)."""

    context: int
    price: Price | None = None


# The one table of hosted models, keyed by family name (see ``family``). Prices are the
# providers' published list prices.
FACTS: dict[str, Facts] = {
    "gpt-4o": Facts(128_000, Price(2.50, 10.00)),
    "gpt-4o-mini": Facts(128_000, Price(0.15, 0.60)),
    "gpt-4.1": Facts(1_000_000, Price(2.00, 8.00)),
    "gpt-4.1-mini": Facts(1_000_000, Price(0.40, 1.60)),
    "o3-mini": Facts(200_000, Price(1.10, 4.40)),
    "o4-mini": Facts(200_000, Price(1.10, 4.40)),
    "claude": Facts(200_000),
    "claude-3-5-sonnet": Facts(200_000, Price(3.00, 15.00)),
    "claude-3-7-sonnet": Facts(200_000, Price(3.00, 15.00)),
    "claude-sonnet-4": Facts(200_000, Price(3.00, 15.00)),
    "claude-3-5-haiku": Facts(200_000, Price(0.80, 4.00)),
    "gemini": Facts(1_000_000),
    "gemini-2.5-flash": Facts(1_000_000, Price(0.30, 2.50)),
    "gemini-2.5-pro": Facts(1_000_000, Price(1.25, 10.00)),
    "gemini-2.0-flash": Facts(1_000_000, Price(0.10, 0.40)),
    "llama-3.1": Facts(128_000),
    "llama-3.1-405b-instruct": Facts(128_000, Price(0.80, 0.80)),
}
# A model we know nothing about: a window most servers have today.
DEFAULT_CONTEXT = 32_768
_SEPARATORS = ("-", "@", ":")


def family(name: str) -> str | None:
    """The ``FACTS`` key of a model name, or None: the last part of the name (after any
    ``provider/``), lower-cased, is the key itself or begins with it followed by ``-``, ``@``
    or ``:``; the longest such key wins (``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``)."""
    name = name.rsplit("/", 1)[-1].strip().lower()
    for key in sorted(FACTS, key=len, reverse=True):
        if name == key or any(name.startswith(key + sep) for sep in _SEPARATORS):
            return key
    return None


def facts_for(name: str) -> Facts | None:
    key = family(name)
    return FACTS[key] if key is not None else None


def estimate_tokens(text: str) -> int:
    """About 3.5 characters a token for English papers with LaTeX: slightly pessimistic, so an
    estimate errs towards dropping a little more rather than overflowing the context."""
    return int(len(text) / 3.5) + 1


@lru_cache(maxsize=8)
def _gguf_facts(weights: str) -> tuple[int | None, TokenCounter, str]:
    """Trained context length, token counter and its kind of a GGUF file, read once."""
    from ablationkit.lm import gguf

    metadata = gguf.read_metadata(weights)
    counter, kind = gguf.token_counter(metadata)
    return gguf.context_length(metadata), counter, kind


class Model:
    """A resolved model id. Cheap to make: the embedded model's weights are looked at only
    when its context window or token counts are first asked for, and never loaded."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.facts = None if route.local else facts_for(route.model_name)

    # ------------------------------------------------------------------ route
    @property
    def id(self) -> str:
        """The id as the user wrote it (cache keys, reports)."""
        return self.route.model_id

    @property
    def backend(self) -> Kind:
        return self.route.kind

    @property
    def base_url(self) -> str | None:
        return self.route.base_url

    @property
    def local(self) -> bool:
        return self.route.local

    # ------------------------------------------------------------------ capabilities
    @property
    def supports_schema(self) -> bool:
        """Whether a JSON schema constrains the reply (else it is only asked for)."""
        return self.route.supports_schema

    @property
    def supports_streaming(self) -> bool:
        """Whether replies arrive piece by piece (recorded replies come whole)."""
        return self.route.kind != "replay"

    # ------------------------------------------------------------------ size and tokens
    @cached_property
    def context_window(self) -> int:
        """Tokens one request may hold, prompt and reply together. The embedded model: the
        context it is started with (``ABLATIONKIT_LOCAL_CTX``), capped, as llama.cpp caps it,
        by the context the weights were trained for."""
        if self.local:
            from ablationkit.lm.local import config_from_env

            trained, _counter, _kind = self._gguf
            configured = config_from_env().n_ctx
            return min(configured, trained) if trained else configured
        return self.facts.context if self.facts is not None else DEFAULT_CONTEXT

    @property
    def tokenizer(self) -> str:
        """How ``count_tokens`` counts: ``gguf-bpe``, ``utf8-bytes`` or ``estimate``."""
        return self._gguf[2] if self.local else "estimate"

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for this model (see the module docstring for how exact)."""
        if self.local:
            return self._gguf[1](text)
        return estimate_tokens(text)

    @cached_property
    def _gguf(self) -> tuple[int | None, TokenCounter, str]:
        from ablationkit.lm.local import weights_for

        return _gguf_facts(os.fspath(weights_for(self.id)))

    # ------------------------------------------------------------------ money
    @property
    def price(self) -> Price | None:
        if self.local:
            return FREE
        return self.facts.price if self.facts is not None else None

    def cost(self, usage: TokenUsage, reported: str | None = None) -> float | None:
        """USD for ``usage`` (None: unknown price). ``reported`` is the name the server gave
        in its reply (``gpt-4o-2024-08-06`` behind an alias): its price wins when known."""
        if self.local:
            return 0.0
        if reported:
            facts = facts_for(reported)
            if facts is not None and facts.price is not None:
                return facts.price.cost(usage)
        price = self.price
        return price.cost(usage) if price is not None else None

    def __repr__(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"Model({self.id!r}, {self.backend}{where})"


def resolve_model(model: str | Model, api_base: str | None = None) -> Model:
    """``model`` resolved (a ``Model`` is returned as it is); ``ModelUnavailableError`` for an
    unknown id, ``ModelConfigError`` for a malformed ``api_base``."""
    if isinstance(model, Model):
        return model
    return Model(resolve(model, api_base))


__all__ = [
    "DEFAULT_CONTEXT",
    "FACTS",
    "Facts",
    "Model",
    "Price",
    "TokenCounter",
    "estimate_tokens",
    "facts_for",
    "family",
    "resolve_model",
]
