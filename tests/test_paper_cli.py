"""``ablationkit paper`` through the installed console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ablationkit.papers import ROLES, sample_paper_path


def run(cli: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_outline_table(cli: str) -> None:
    result = run(cli, "paper", sample_paper_path())
    assert result.returncode == 0, result.stderr
    assert "KESTREL" in result.stdout
    for expected in ("Method", "method", "Ablation study", "ablation", "appendix"):
        assert expected in result.stdout


def test_json_outline(cli: str, papers_dir: Path) -> None:
    result = run(cli, "paper", papers_dir / "maskgit", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"title", "abstract", "sections"}
    assert data["title"] == "MaskGIT: Masked Generative Image Transformer"
    assert all(set(s) == {"number", "title", "level", "role", "words"} for s in data["sections"])
    assert all(s["role"] in ROLES for s in data["sections"])
    roles = {s["title"]: s["role"] for s in data["sections"]}
    assert roles["Method"] == "method" and roles["Ablation Studies"] == "ablation"


def test_author_view_markdown(cli: str, papers_dir: Path) -> None:
    result = run(cli, "paper", papers_dir / "coles-event-sequences", "--view", "author")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# CoLES: Contrastive Learning for Event Sequences")
    assert "## 3 Problem formulation and overview of the CoLES method" in result.stdout
    assert "Discussion of design choices" not in result.stdout
    assert "## 4 Experiments" not in result.stdout


def test_reviewer_view_has_everything(cli: str) -> None:
    result = run(cli, "paper", sample_paper_path(), "--view", "reviewer")
    assert (
        "### 4.3 Ablation study" in result.stdout and "## A Implementation details" in result.stdout
    )
    result = run(cli, "paper", sample_paper_path(), "--view", "reviewer", "--no-appendix")
    assert "Implementation details" not in result.stdout


def test_method_override(cli: str, papers_dir: Path) -> None:
    result = run(cli, "paper", papers_dir / "maskgit", "--json", "--method-section", "3.2")
    roles = {s["number"]: s["role"] for s in json.loads(result.stdout)["sections"]}
    assert roles["3.2"] == "method" and roles["3.1"] == "other"


def test_bad_inputs_get_one_line_and_no_traceback(cli: str, tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.pdf": "no such file or directory",
        tmp_path / "empty.txt": "empty file",
        tmp_path / "fake.pdf": "corrupt or unreadable PDF",
        tmp_path / "junk.tex": "binary data",
    }
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "fake.pdf").write_text("not a pdf", "utf-8")
    (tmp_path / "junk.tex").write_bytes(bytes(range(256)) * 8)
    for path, message in cases.items():
        result = run(cli, "paper", path)
        assert result.returncode != 0
        assert result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr and str(path) in result.stderr
        assert "Traceback" not in result.stderr
    debug = run(cli, "--debug", "paper", tmp_path / "fake.pdf")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
