"""The public API: every advertised name is importable from ``ablationkit``, lazily."""

from __future__ import annotations

import subprocess
import sys

import ablationkit


def test_every_public_name_resolves() -> None:
    missing = [name for name in ablationkit.__all__ if getattr(ablationkit, name, None) is None]
    assert not missing


def test_import_is_light() -> None:
    # The CLI starts fast because `import ablationkit` pulls in none of the heavy modules.
    code = (
        "import sys, ablationkit; heavy = [m for m in ('pydantic', 'openai', 'pymupdf', "
        "'pylatexenc', 'xllamacpp', 'jinja2') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_models_command(cli: str) -> None:
    result = subprocess.run(
        [cli, "models"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    for expected in ("local", "local:smollm2", "openai/<model>", "anthropic/<model>", "replay:"):
        assert expected in result.stdout


def test_a_notebook_user_finds_the_whole_pipeline_at_the_top() -> None:
    import ablationkit

    for name in ("aplan", "read_run", "Run", "load_dataset", "build_site", "Judgement"):
        assert name in ablationkit.__all__  # test_every_public_name_resolves imports them
