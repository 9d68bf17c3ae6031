"""Shared fixtures: the project's shared material lives in ``../shared`` beside the repo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ABLATIONKIT_SHARED", REPO.parent / "shared"))


def _require_shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared material missing in CI: {path}")
        pytest.skip(f"shared material not found: {path}")
    return path


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return _require_shared("seeds")


@pytest.fixture(scope="session")
def trajectories_dir() -> Path:
    return _require_shared("trajectories")


@pytest.fixture(scope="session")
def papers_dir() -> Path:
    return _require_shared("papers")


@pytest.fixture(scope="session")
def cli() -> str:
    """Path of the installed console script: CLI tests go through it, as a user would."""
    exe = shutil.which("ablationkit")
    if exe is None:
        pytest.fail("the ablationkit console script is not installed (pip install -e .)")
    return exe


def corpus_files() -> list[Path]:
    root = SHARED / "trajectories"
    return sorted(root.glob("*/*.md")) if root.exists() else []


def seed_files() -> list[Path]:
    root = SHARED / "seeds"
    return sorted(root.glob("*.txt")) if root.exists() else []
