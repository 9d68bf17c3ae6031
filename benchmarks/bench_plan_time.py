"""A plan's wall time on the embedded model, against the raw runtime on the same request.

    python benchmarks/bench_plan_time.py [PAPER] [--rounds 2] [--paper-tokens N]

Each round runs, one after the other, each in a fresh process:

* ``cli``: ``ablationkit plan PAPER -o TMP --no-cache`` (what a user runs), timed by the
  wall clock, with the plan's own split (prompt tokens computed, prompt s, generation s);
* ``raw``: the same first request (messages, schema, ``max_tokens``) sent to xllamacpp
  in-process, no HTTP and no ablationkit around it, timed by the runtime itself.

The machine's speed moves from one quarter-hour to the next, so the ratio of a round's two
rows is the figure to read; the absolute seconds say how fast the cores were then. The CLI
row restores the system prompt from disk when an earlier run saved it (``lm.prefix_files``);
the raw row always computes it. Default paper: iSklearn of ``$ABLATIONKIT_SHARED/papers``,
whose author prompt is 5,942 tokens read whole (issue 16's "6,000-token paper").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("ABLATIONKIT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFAULT_PAPER = SHARED / "papers" / "isklearn-irace-automl"

# the raw child: the request the planner's first call sends, straight to the runtime
RAW = """
import json, sys, time
from ablationkit.lm.backend_openai import response_format
from ablationkit.lm.local import (
    EmbeddedConfig, _passive_waits, default_weights_path, runtime_params,
)
from ablationkit.planner.core import plan_schema, prepare_plan

_passive_waits()
import xllamacpp

paper, tokens = sys.argv[1], sys.argv[2]
budget = None if tokens == "default" else int(tokens)
request = prepare_plan(paper, model="local", mode="author", paper_tokens=budget)
server = xllamacpp.Server(runtime_params(default_weights_path(), EmbeddedConfig(), xllamacpp))
body = {
    "messages": request.messages,
    "temperature": 0,
    "max_tokens": request.config.reply_tokens_for(True),
    "response_format": response_format(
        plan_schema(request.k, metrics=request.model_writes_metrics)
    ),
}
started = time.perf_counter()
timings = server.handle_chat_completions(body)["timings"]
print(json.dumps({"wall": time.perf_counter() - started, **timings}))
"""


def run_cli(paper: Path, paper_tokens: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        # the console script of this interpreter's environment, as a user would run it
        script = Path(sys.executable).with_name("ablationkit")
        command = [str(script), "plan", str(paper), "-o", out, "--no-cache"]
        if paper_tokens is not None:
            command += ["--paper-tokens", str(paper_tokens)]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - started
        [written] = Path(out).glob("*.author.json")
        plan = json.loads(written.read_text("utf-8"))
    timings = plan["timings"]
    return {
        "wall": wall,
        "computed": timings.get("prompt_computed") or plan["usage"]["prompt_tokens"],
        "prompt_s": timings["prompt_s"],
        "generation_s": timings["generation_s"],
        "generated": plan["usage"]["completion_tokens"],
        "items": len(plan["ablations"]),
    }


def run_raw(paper: Path, paper_tokens: int | None) -> dict[str, float]:
    tokens = "default" if paper_tokens is None else str(paper_tokens)
    done = subprocess.run(
        [sys.executable, "-c", RAW, str(paper), tokens], check=True, capture_output=True, text=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "wall": found["wall"],
        "computed": found["prompt_n"],
        "prompt_s": found["prompt_ms"] / 1000,
        "generation_s": found["predicted_ms"] / 1000,
        "generated": found["predicted_n"],
        "items": float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper", nargs="?", type=Path, default=DEFAULT_PAPER)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paper-tokens", type=int, default=None, help="0 reads the whole paper")
    args = parser.parse_args()
    budget = "default" if args.paper_tokens is None else args.paper_tokens
    print(f"{args.paper.name}, reading budget {budget}; load {os.getloadavg()[0]:.2f}")
    header = ("round", "run", "computed", "prompt s", "gen s", "tokens", "total s", "items")
    print("{:<6} {:<4} {:>8} {:>9} {:>7} {:>6} {:>8} {:>5}".format(*header))
    for round_ in range(1, args.rounds + 1):
        rows = {
            "cli": run_cli(args.paper, args.paper_tokens),
            "raw": run_raw(args.paper, args.paper_tokens),
        }
        for name, row in rows.items():
            print(
                f"{round_:<6} {name:<4} {row['computed']:>8.0f} {row['prompt_s']:>9.1f} "
                f"{row['generation_s']:>7.1f} {row['generated']:>6.0f} {row['wall']:>8.1f} "
                f"{row['items']:>5}"
            )
        print(f"{round_:<6} cli / raw wall: {rows['cli']['wall'] / rows['raw']['wall']:.2f}x")


if __name__ == "__main__":
    main()
