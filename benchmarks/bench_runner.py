"""Batch-runner efficiency: 300 papers planned against the fake server at a fixed latency.

Prints wall time against the ideal ``papers x latency / concurrency`` (goal: within 1.1x) at
concurrency 5 and 50, after one warm-up request per run (imports, connection). The fake
server (``python -m ablationkit.testing``, a real HTTP server on 127.0.0.1 in its own
process) answers every request after ``--latency`` seconds, so the ratio is the runner's own
overhead: loading papers, building prompts, HTTP, parsing, caching, atomic writes.

    python benchmarks/bench_runner.py [--papers 300] [--latency 1.0] [--concurrency 5 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ablationkit.bench import Run

PLAN = json.dumps(
    {
        "reasoning": "Two components matter.",
        "ablations": [
            {
                "name": "Drop the gate",
                "ablated_part": "the gate",
                "action": "REMOVE",
                "replacement": None,
                "metrics": ["accuracy"],
            },
            {
                "name": "Other encoder",
                "ablated_part": "the encoder",
                "action": "REPLACE",
                "replacement": ["LSTM", "Transformer"],
                "metrics": ["accuracy"],
            },
        ],
    }
)


def write_dataset(path: Path, n: int) -> None:
    body = "We describe the gate, the encoder and the training loss in detail. " * 40
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            text = (
                f"# Paper {i}\n\n## Abstract\n\nA method ({i}).\n\n## 1 Introduction\n\n"
                f"{body}\n\n## 2 Method\n\n{body}\n\n## 3 Experiments\n\n{body}\n"
            )
            handle.write(
                json.dumps(
                    {"id": f"p{i:04d}", "title": f"Paper {i}", "text": text, "ground_truth": []}
                )
                + "\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=300)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[5, 50])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "data.jsonl"
        write_dataset(dataset, args.papers)
        print(f"{args.papers} papers, {args.latency:.2f} s per request")
        for concurrency in args.concurrency:
            # The server runs in its own process (python -m ablationkit.testing), as a real
            # provider would: its work must not share this process's interpreter lock.
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ablationkit.testing",
                    "--latency",
                    str(args.latency),
                    "--reply",
                    PLAN,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert server.stdout is not None
                url = server.stdout.readline().strip()
                run = Run(Path(tmp) / f"run-{concurrency}", concurrency=concurrency)
                # Warm-up outside the timing: importing the openai SDK costs ~2 s of CPU
                # once per process, which a real run pays once and a 6 s ideal cannot hide.
                run.client.complete("warm-up", "bench-model", api_base=url, cache=False)
                start = time.perf_counter()
                report = run.plan(dataset, model="bench-model", api_base=url)
                wall = time.perf_counter() - start
                assert len(report.done) == args.papers and not report.failed, report.failed
            finally:
                server.terminate()
                server.wait(timeout=10)
            ideal = args.papers * args.latency / concurrency
            print(
                f"concurrency {concurrency:>3}: wall {wall:7.2f} s, ideal {ideal:7.2f} s, "
                f"ratio {wall / ideal:.3f}x (goal <= 1.1x)"
            )


if __name__ == "__main__":
    main()
