"""Throughput of trajectory parse + render over the shared corpus.

Prints files/s for parse, render and the round trip, beside a baseline measured in the same
run on the same plans: pydantic's JSON round trip (``Plan.to_json`` + ``model_validate_json``).
The ratio is what to compare across machines; absolute figures move with machine load.

    python benchmarks/bench_trajectory.py [--rounds 7] [--corpus ../shared/trajectories]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ablationkit import Plan, parse_trajectory, render_trajectory

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "trajectories"


def _rate(n_files: int, fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_files / min(times), n_files / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    files = sorted(args.corpus.rglob("*.md"))
    files = [f for f in files if f.name != "trajectories.md"]
    texts = [f.read_text(encoding="utf-8") for f in files]
    plans = [parse_trajectory(t) for t in texts]
    jsons = [p.to_json() for p in plans]
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"corpus: {n} files, {mb:.1f} MB, best and median of {args.rounds} rounds")

    cases: dict[str, Callable[[], object]] = {
        "parse": lambda: [parse_trajectory(t) for t in texts],
        "render": lambda: [render_trajectory(p) for p in plans],
        "parse+render": lambda: [render_trajectory(parse_trajectory(t)) for t in texts],
        "baseline: JSON load+dump": lambda: [Plan.model_validate_json(j).to_json() for j in jsons],
    }
    results = {name: _rate(n, fn, args.rounds) for name, fn in cases.items()}
    base = results["baseline: JSON load+dump"][0]
    print(f"{'operation':<26}{'files/s (best)':>16}{'files/s (median)':>18}{'vs baseline':>13}")
    for name, (best, median) in results.items():
        print(f"{name:<26}{best:>16,.0f}{median:>18,.0f}{best / base:>12.2f}x")


if __name__ == "__main__":
    main()
