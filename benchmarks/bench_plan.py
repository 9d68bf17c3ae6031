"""Seconds per paper for ``plan`` on the embedded model, split into load / prompt / generation.

    python benchmarks/bench_plan.py [--model local] [--mode author] [PAPER ...]

Without papers it plans the bundled sample paper and the shared LaTeX projects. The cache is
off, so every figure is real model work; prompt and generation times are the model server's
own measurements, load is paper loading plus prompt building (and, on the first paper,
loading the model).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from ablationkit.lm import LMClient
from ablationkit.papers import sample_paper_path
from ablationkit.planner import plan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "papers"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("papers", nargs="*", type=Path)
    parser.add_argument("--model", default="local")
    parser.add_argument("--mode", default="author", choices=["author", "reviewer"])
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    papers = args.papers or [sample_paper_path(), *sorted(SHARED.glob("*/source"))]
    client = LMClient(cache=False, timeout=3600)
    rows = []
    print(
        f"{'paper':<28}{'load s':>8}{'prompt s':>10}{'gen s':>8}{'total s':>9}"
        f"{'prompt tok':>11}{'gen tok':>9}"
    )
    for paper in papers:
        start = time.perf_counter()
        result = plan(paper, mode=args.mode, k=args.k, model=args.model, client=client)
        wall = time.perf_counter() - start
        t, u = result.timings, result.usage
        assert t is not None and u is not None
        rows.append((t.load_s or 0, t.prompt_s or 0, t.generation_s or 0, wall))
        print(
            f"{result.paper_id[:27]:<28}{t.load_s or 0:>8.1f}{t.prompt_s or 0:>10.1f}"
            f"{t.generation_s or 0:>8.1f}{wall:>9.1f}{u.prompt_tokens:>11}"
            f"{u.completion_tokens:>9}"
        )
    means = [statistics.mean(column) for column in zip(*rows, strict=True)]
    print(f"{'mean':<28}{means[0]:>8.1f}{means[1]:>10.1f}{means[2]:>8.1f}{means[3]:>9.1f}")


if __name__ == "__main__":
    main()
