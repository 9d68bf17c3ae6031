"""Site build speed for a benchmark-sized run: 350 papers, two LM judges.

The run is made once against the fake server (``python -m ablationkit.testing`` semantics, in
process). Prints the time of ``build_site`` (scores with 1000 bootstrap resamples per judge and
mode, 351 pages) beside a baseline measured in the same run: reading and validating the same
plan and judgement files, which any view of the run has to do. The ratio is what to compare.

    python benchmarks/bench_site.py [--papers 350] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ablationkit.bench import Run, make_judge
from ablationkit.schema import Judgement, Plan
from ablationkit.site import build_site
from ablationkit.testing import FakeLLMServer, plan_or_verdict
from bench_runner import PLAN

VERDICT = {"reasoning": "The first matches.", "matches": [{"planned": 0, "ground_truth": 0}]}
respond = plan_or_verdict(json.loads(PLAN), VERDICT)


def make_run(root: Path, papers: int) -> Path:
    dataset = root / "data.jsonl"
    truth = [{"name": "Gate", "ablated_part": "the gate", "action": "REMOVE", "metrics": ["acc"]}]
    with dataset.open("w", encoding="utf-8") as handle:
        for i in range(papers):
            text = f"# Paper {i}\n\n## Abstract\n\nGates.\n\n## 1 Method\n\nA gate ({i}).\n"
            row = {"id": f"p{i:04d}", "title": f"Paper {i}", "text": text, "ground_truth": truth}
            handle.write(json.dumps(row) + "\n")
    with FakeLLMServer(responder=respond) as server:
        run = Run(root / "run", concurrency=32)
        run.plan(dataset, model="bench-model", api_base=server.url, k=2)
        for judge in ("judge-a", "judge-b"):
            run.judge(make_judge([judge], run.client, server.url))
    return root / "run"


def read_run(run: Path) -> int:
    plans = [Plan.model_validate_json(p.read_text("utf-8")) for p in run.glob("plans/*.json")]
    verdicts = [
        Judgement.model_validate_json(p.read_text("utf-8")) for p in run.glob("judgements/*/*.json")
    ]
    return len(plans) + len(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=350)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp), args.papers)
        baseline, build = [], []
        for round_ in range(args.rounds):
            start = time.perf_counter()
            read_run(run)
            baseline.append(time.perf_counter() - start)
            start = time.perf_counter()
            report = build_site([run], Path(tmp) / f"site-{round_}")
            build.append(time.perf_counter() - start)
        best_base, best_build = min(baseline), min(build)
        print(f"{args.papers} papers, 2 judges, {report.pages} pages")
        print(f"read + validate the run: {best_base:6.3f} s (baseline)")
        ratio = best_build / best_base
        print(f"build_site:              {best_build:6.3f} s  ({ratio:.1f}x baseline)")


if __name__ == "__main__":
    main()
