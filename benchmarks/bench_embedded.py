"""Embedded model speed: ablationkit's path (openai SDK over loopback HTTP) against the raw
in-process xllamacpp call, on the same prompts in the same run; and what a shared prompt
prefix saves on the second call.

    python benchmarks/bench_embedded.py [--model local|local:smollm2] [--rounds 3] [--tokens 64]

Both paths generate exactly ``--tokens`` tokens (``ignore_eos``) from prompts that differ in
their first words, so neither benefits from the prompt cache; the ratio of their tokens/s is
the overhead of going through ablationkit.
"""

from __future__ import annotations

import argparse
import statistics
import time

from ablationkit.lm import LMClient
from ablationkit.lm.local import embedded_server

FILLER = (
    "Ablation studies remove or replace one component of a method at a time to measure "
    "its contribution. "
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    start = time.perf_counter()
    server = embedded_server(args.model)
    print(f"model {args.model}: loaded in {time.perf_counter() - start:.1f} s")
    client = LMClient(cache=False, timeout=1800)

    def messages(tag: str, body: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{tag}. {body} Summarise this in detail."}]

    def raw(tag: str) -> float:
        request = {
            "messages": messages(tag, FILLER * 4),
            "max_tokens": args.tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        t0 = time.perf_counter()
        reply = server.raw_chat(request)
        return reply["usage"]["completion_tokens"] / (time.perf_counter() - t0)

    def ours(tag: str) -> float:
        t0 = time.perf_counter()
        reply = client.complete(
            messages(tag, FILLER * 4),
            args.model,
            max_tokens=args.tokens,
            temperature=0,
            ignore_eos=True,
        )
        return reply.usage.completion_tokens / (time.perf_counter() - t0)

    raw(f"warm-up {time.time()}")
    raw_rates, our_rates = [], []
    for round_ in range(args.rounds):  # interleaved, so machine noise hits both alike
        raw_rates.append(raw(f"Round {round_} raw {time.time()}"))
        our_rates.append(ours(f"Round {round_} ours {time.time()}"))
    raw_median, our_median = statistics.median(raw_rates), statistics.median(our_rates)
    print(f"raw xllamacpp:        {raw_median:6.1f} tokens/s end to end (median of {args.rounds})")
    print(f"through ablationkit:  {our_median:6.1f} tokens/s end to end")
    print(f"ratio ablationkit/raw: {our_median / raw_median:.2f}x (goal >= 0.9x)")

    prefix = f"Context {time.time()}: " + FILLER * 12
    cold = client.complete(
        messages("First question", prefix), args.model, max_tokens=16, temperature=0
    )
    second = [{"role": "user", "content": f"First question. {prefix} Summarise its first line."}]
    warm = client.complete(second, args.model, max_tokens=16, temperature=0)
    print(
        f"shared prefix: first call {cold.latency:.2f} s "
        f"(prompt {cold.timings.get('prompt_ms', 0) / 1000:.2f} s for "
        f"{cold.usage.prompt_tokens} tokens), second call {warm.latency:.2f} s "
        f"(prompt {warm.timings.get('prompt_ms', 0) / 1000:.2f} s, "
        f"{int(warm.timings.get('cache_n', 0))} tokens reused)"
    )
    print(f"second-call speed-up: {cold.latency / warm.latency:.1f}x")


if __name__ == "__main__":
    main()
