"""USD per million tokens, our own table. An unknown model has an unknown cost (None),
never a crash and never a made-up number; the embedded model costs nothing."""

from __future__ import annotations

from ablationkit.lm.types import TokenUsage

# (input, output) USD per 1M tokens; list prices as published by the providers.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "llama-3.1-405b-instruct": (0.80, 0.80),
}


def price_key(model: str) -> str | None:
    """The table entry for a model id like ``openrouter/openai/gpt-4o-2024-08-06``."""
    name = model.rsplit("/", 1)[-1].lower()
    for key in sorted(PRICES, key=len, reverse=True):
        if name == key or name.startswith(key + "-") or name.startswith(key + "@"):
            return key
    return None


def cost(model: str, usage: TokenUsage, *, local: bool = False) -> float | None:
    if local:
        return 0.0
    key = price_key(model)
    if key is None:
        return None
    price_in, price_out = PRICES[key]
    return (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1e6
