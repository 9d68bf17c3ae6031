"""Datasets and resumable batch runs (plan, judge, score)."""

from ablationkit.bench.datasets import Instance, load_dataset, sample_dataset_path
from ablationkit.bench.runner import Run, StageReport, dry_run, make_judge
from ablationkit.bench.store import RunRecord, RunStore, Scores, read_run

__all__ = [
    "Instance",
    "Run",
    "RunRecord",
    "RunStore",
    "Scores",
    "StageReport",
    "dry_run",
    "load_dataset",
    "make_judge",
    "read_run",
    "sample_dataset_path",
]
