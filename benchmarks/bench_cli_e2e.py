"""The CLI end to end, as a user runs it: a fresh ``ablationkit bench plan`` process per run.

A fake OpenAI-compatible server (``ablationkit.testing.FakeLLMServer``, a real HTTP server on
127.0.0.1, in a thread of this process) answers every request after ``--latency`` seconds;
``--papers`` generated papers of about ``--paper-kb`` KB are planned at each
``--concurrency``. Unlike ``bench_runner.py`` nothing is warmed up: start-up (interpreter,
imports, the HTTP stack), preparing the papers, the tail (last reply to exit) are all on the
clock, as they are for the user. Per concurrency, medians over ``--rounds`` rounds (the
concurrencies interleaved within each round, so a noisy minute on the shared machine hits
them alike):

* wall: process start to exit; ideal: ``papers x latency / concurrency``; the ratio;
* first: process start to the first request reaching the server (start-up);
* tail: the last reply (its request's arrival + latency) to the process's exit;
* CPU: the child's user+system CPU per paper (``wait4`` resource usage), in ms, in all and
  after its first request (start-up's CPU set apart: /proc/PID/stat then);
* RSS: the child's peak resident memory.

Then ``ablationkit --help`` against ``python -c pass``, paired (one of each per round,
``--help-rounds`` rounds): medians of both and of their difference (goal: within 0.25 s).

    python benchmarks/bench_cli_e2e.py [--papers 200] [--latency 1.0] [--concurrency 5 20 50]
        [--rounds 3] [--help-rounds 10] [--paper-kb 13]
    python benchmarks/bench_cli_e2e.py --papers 10000 --concurrency 200 --rounds 1 --help-rounds 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablationkit.testing import FakeLLMServer

# One valid plan of K items: the planner makes exactly one request per paper with it.
K = 2
PLAN = json.dumps(
    {
        "reasoning": "The gate and the encoder carry the method; both are ablated.",
        "ablations": [
            {
                "name": "Drop the gate",
                "ablated_part": "the gating layer",
                "action": "REMOVE",
                "replacement": None,
                "metrics": ["accuracy"],
            },
            {
                "name": "Other encoder",
                "ablated_part": "the convolutional encoder",
                "action": "REPLACE",
                "replacement": ["LSTM", "Transformer"],
                "metrics": ["accuracy"],
            },
        ],
    }
)

_PARAGRAPHS = [
    "Our model combines a convolutional encoder with a gating layer that selects, for every "
    "token, how much of the encoder's state reaches the decoder. We train it with AdamW at a "
    "learning rate of 3e-4, a batch size of 64 and a warm-up of 2000 steps.",
    "The gating layer is a single linear projection followed by a sigmoid; removing it reduces "
    "the model to a plain encoder-decoder. We report accuracy and F1 on the test split, "
    "averaged over three seeds with standard deviations.",
    "We compare against an LSTM baseline and a Transformer baseline of the same size. The "
    "encoder uses kernel size k = 5 and a hidden size of 512; dropout is 0.1 everywhere.",
    "Table 1 lists the results: the full model reaches 91.2 accuracy against 88.7 for the "
    "strongest baseline. The loss is the cross-entropy of the next token plus an auxiliary "
    "term weighted by lambda = 0.5 that keeps the gate's activations sparse.",
]


def paper_text(index: int, size: int) -> str:
    """A markdown paper of about ``size`` characters: abstract, introduction, method,
    experiments; varied by ``index`` so no two prompts (cache keys) are alike."""
    sections = ["Introduction", "Method", "Experiments", "Related Work"]
    parts = [f"# A Gated Encoder, Variant {index}\n", f"## Abstract\n\nVariant {index}.\n"]
    paragraph_size = sum(len(p) + 1 for p in _PARAGRAPHS) / len(_PARAGRAPHS)
    per_section = max(1, round(size / len(sections) / paragraph_size))
    for number, title in enumerate(sections, start=1):
        parts.append(f"## {number} {title}\n")
        for j in range(per_section):
            parts.append(_PARAGRAPHS[(index + j) % len(_PARAGRAPHS)] + "\n")
    return "\n".join(parts)


def write_dataset(path: Path, n: int, size: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            row = {"id": f"p{i:05d}", "title": f"Paper {i}", "text": paper_text(i, size)}
            handle.write(json.dumps({**row, "ground_truth": []}) + "\n")


class Clock:
    """What the server saw: when the first and the last request arrived (the responder is
    called on arrival). Request bodies are not kept: 10,000 prompts would fill this process."""

    def __init__(self, server: FakeLLMServer) -> None:
        self.server = server
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.pid: int | None = None
        self.first_cpu = 0.0  # the child's CPU seconds when its first request arrived
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        now = time.monotonic()
        with self.lock:
            self.count += 1
            if self.first is None:
                self.first = now
                self.first_cpu = process_cpu(self.pid)
            self.last = now
        self.server.requests.clear()
        return PLAN

    def reset(self, pid: int | None = None) -> None:
        with self.lock:
            self.count, self.first, self.last, self.pid = 0, None, None, pid


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    wall: float
    first: float
    tail: float
    cpu: float
    first_cpu: float
    rss_mb: float


def run_cli(
    cli: Path,
    dataset: Path,
    run_dir: Path,
    url: str,
    concurrency: int,
    clock: Clock,
    source: Path | None = None,
) -> Sample:
    """One ``ablationkit bench plan`` process, timed from spawn to exit (``source``: the
    ``src`` folder of another checkout to run instead of the installed package)."""
    clock.reset()
    command = [
        str(cli),
        "bench",
        "plan",
        str(dataset),
        "--run",
        str(run_dir),
        "--model",
        "bench-model",
        "--api-base",
        url,
        "-k",
        str(K),
        "--concurrency",
        str(concurrency),
    ]
    log = run_dir.with_suffix(".log")
    with log.open("wb") as out:
        start = time.monotonic()
        env = child_env(source)
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        clock.pid = child.pid
        _, status, usage = os.wait4(child.pid, 0)
        end = time.monotonic()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"bench plan failed ({child.returncode}):\n{log.read_text()[-3000:]}")
    assert clock.first is not None and clock.last is not None
    return Sample(
        wall=end - start,
        first=clock.first - start,
        tail=end - (clock.last + clock.server.latency),
        cpu=usage.ru_utime + usage.ru_stime,
        first_cpu=clock.first_cpu,
        rss_mb=usage.ru_maxrss / 1024,
    )


def hints_ms_per_paper(dataset: Path, limit: int = 200, rounds: int = 3) -> float:
    """``extract_hints`` on the papers' author views as the planner runs it, ms per paper
    (the best of ``rounds`` passes over up to ``limit`` papers): its share of the client's
    CPU per paper."""
    from ablationkit.bench.datasets import load_dataset
    from ablationkit.papers import view
    from ablationkit.planner.hints import extract_hints

    texts = [view(i.load(), "author").to_markdown() for i in load_dataset(dataset)[:limit]]
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for text in texts:
            extract_hints(text)
        best = min(best, (time.process_time() - start) / len(texts))
    return 1000 * best


def child_env(source: Path | None = None) -> dict[str, str]:
    """The environment of the measured processes: bytecode is written and read, as for an
    installed package (pip compiles it; PYTHONDONTWRITEBYTECODE would have every start
    compile the modules changed since their last .pyc, which no user pays). ``source``
    goes first on the path: another checkout's code under the same console script."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def help_pairs(
    cli: Path, rounds: int, source: Path | None = None
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of ``python -c pass`` and of ``ablationkit --help``, one of each
    per round. CPU (the child's user + system time) says the same on a busy machine."""
    pairs = {"bare": [sys.executable, "-c", "pass"], "help": [str(cli), "--help"]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, command in pairs.items():
            start = time.perf_counter()
            env = child_env(source)
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
            _, status, usage = os.wait4(child.pid, 0)
            times[name].append((time.perf_counter() - start, usage.ru_utime + usage.ru_stime))
            child.returncode = os.waitstatus_to_exitcode(status)
            assert child.returncode == 0, command
    return times


def report(label: str, samples: dict[int, list[Sample]], papers: int, latency: float) -> float:
    """Print one line per concurrency; return the median client CPU per paper after the
    first request (seconds)."""
    per_paper: list[float] = []
    for concurrency, runs in samples.items():
        ideal = papers * latency / concurrency
        wall = statistics.median(s.wall for s in runs)
        after = statistics.median(s.cpu - s.first_cpu for s in runs) / papers
        print(
            f"{label}concurrency {concurrency:>3}: wall {wall:7.2f} s, ideal {ideal:7.2f} s, "
            f"ratio {wall / ideal:.3f}x [{', '.join(f'{s.wall / ideal:.3f}' for s in runs)}]"
            f" | first request {statistics.median(s.first for s in runs):.2f} s "
            f"(CPU {statistics.median(s.first_cpu for s in runs):.2f} s), "
            f"tail {statistics.median(s.tail for s in runs):.2f} s, "
            f"CPU {1000 * statistics.median(s.cpu for s in runs) / papers:.2f} ms/paper"
            f" ({1000 * after:.2f} after the first request), "
            f"peak RSS {max(s.rss_mb for s in runs):.0f} MB"
        )
        per_paper.append(after)
    return statistics.median(per_paper)


def report_help(label: str, times: dict[str, list[tuple[float, float]]], rounds: int) -> None:
    pairs = list(zip(times["bare"], times["help"], strict=True))
    wall = statistics.median(h[0] - b[0] for b, h in pairs)
    cpu = statistics.median(h[1] - b[1] for b, h in pairs)
    print(
        f"{label}--help: {statistics.median(h[0] for h in times['help']):.3f} s, python -c "
        f"pass: {statistics.median(b[0] for b in times['bare']):.3f} s, difference {wall:.3f} s "
        f"(CPU: {cpu:.3f} s; medians of {rounds} pairs; goal <= 0.25 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--help-rounds", type=int, default=10)
    parser.add_argument("--paper-kb", type=float, default=13.0)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="the src folder of another checkout (e.g. `git archive` of an older commit): "
        "its runs interleaved with this one's, under the same console script",
    )
    args = parser.parse_args()
    cli = Path(sys.executable).with_name("ablationkit")
    if not cli.exists():
        cli = Path(shutil.which("ablationkit") or sys.exit("no ablationkit command installed"))
    sources: dict[str, Path | None] = {"": None}
    if args.baseline_src is not None:
        sources = {"baseline ": args.baseline_src.resolve(), "this     ": None}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "data.jsonl"
        write_dataset(dataset, args.papers, int(args.paper_kb * 1024))
        size = dataset.stat().st_size / max(1, args.papers) / 1024
        print(
            f"{args.papers} papers of {size:.1f} KB, {args.latency:.2f} s per request, "
            f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
        )
        samples = {label: {c: list[Sample]() for c in args.concurrency} for label in sources}
        with FakeLLMServer(latency=args.latency, default=None) as server:
            clock = Clock(server)
            server.responder = clock
            # warm-up, untimed: the .pyc files of every module on the path get written
            warm_up = Path(tmp) / "warm-up.jsonl"
            write_dataset(warm_up, 2, 1024)
            for label, source in sources.items():
                run_dir = Path(tmp) / f"warm-up-{len(label)}-{source is None}"
                run_cli(cli, warm_up, run_dir, server.url, 2, clock, source)
            for round_ in range(args.rounds):
                for concurrency in args.concurrency:
                    for number, (label, source) in enumerate(sources.items()):
                        run_dir = Path(tmp) / f"run-{concurrency}-{round_}-{number}"
                        sample = run_cli(
                            cli, dataset, run_dir, server.url, concurrency, clock, source
                        )
                        assert clock.count == args.papers, f"{clock.count} requests"
                        samples[label][concurrency].append(sample)
                        shutil.rmtree(run_dir, ignore_errors=True)
        cpu = {
            label: report(label, runs, args.papers, args.latency) for label, runs in samples.items()
        }
        hints = hints_ms_per_paper(dataset)
        this = cpu[list(sources)[-1]]
        print(
            f"extract_hints: {hints:.2f} ms per paper, {100 * hints / (1000 * this):.0f}% "
            "of the client's CPU per paper after the first request (median over the "
            "concurrencies)"
        )
    if args.help_rounds:
        for label, source in sources.items():
            report_help(label, help_pairs(cli, args.help_rounds, source), args.help_rounds)


if __name__ == "__main__":
    main()
