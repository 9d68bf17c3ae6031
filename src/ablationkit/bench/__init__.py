"""Datasets and resumable batch runs (plan, judge, score)."""

from ablationkit.bench.datasets import Instance, load_dataset, sample_dataset_path
from ablationkit.bench.runner import Run, StageReport, dry_run, make_judge

__all__ = [
    "Instance",
    "Run",
    "StageReport",
    "dry_run",
    "load_dataset",
    "make_judge",
    "sample_dataset_path",
]
