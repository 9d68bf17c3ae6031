"""AblationBench's paper folders (marker markdown, no LaTeX) load, plan and run (issue 12 §1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ablationkit.errors import FormatError
from ablationkit.papers import load_paper
from ablationkit.testing import FakeLLMServer
from fakes import respond

MARKER = """# KESTREL: Gated Memory for Event Streams

<span id="page-0-0"></span>Ann Author, Bob Author

## Abstract

We propose a gated memory for event streams.

## <span id="page-1-0"></span>1 Introduction

Event streams are everywhere ![](_page_1_Figure_1.jpeg)

## <span id="page-2-1"></span>3 Method

Our method gates the memory with a learned gate $g_t$ and a contrastive loss with margin 0.2.

## <span id="page-4-0"></span>4 Experiments

We report accuracy and AUROC.

### 4.3 Ablations

Removing the gate hurts accuracy.
"""


def _marker_folder(root: Path, paper_id: str) -> Path:
    folder = root / paper_id
    folder.mkdir(parents=True)
    (folder / f"{paper_id}.md").write_text(MARKER, "utf-8")
    (folder / f"{paper_id}_meta.json").write_text(json.dumps({"table_of_contents": []}), "utf-8")
    (folder / "_page_1_Figure_1.jpeg").write_bytes(b"\xff\xd8\xff\xe0not really a jpeg")
    (folder / "notes.md").write_text("# scratch", "utf-8")  # the folder-named file wins
    return folder


def test_a_marker_folder_without_latex_loads_as_markdown(tmp_path: Path) -> None:
    paper = load_paper(_marker_folder(tmp_path, "Kestrel_Gated"))
    titles = [s.title for s in paper.walk()]
    assert "Method" in titles and not any("span" in t for t in titles)
    method = next(s for s in paper.walk() if s.title == "Method")
    assert method.role == "method"
    assert "learned gate" in method.text


def test_a_folder_with_latex_and_markdown_reads_the_latex(tmp_path: Path) -> None:
    folder = _marker_folder(tmp_path, "both")
    (folder / "main.tex").write_text(
        "\\documentclass{article}\\title{From LaTeX}\\begin{document}\\maketitle"
        "\\section{Method}Latex method text.\\end{document}",
        "utf-8",
    )
    paper = load_paper(folder)
    assert "Latex method text" in paper.to_markdown()


def test_a_folder_with_neither_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "figure.jpeg").write_bytes(b"x")
    with pytest.raises(FormatError, match=r"neither a LaTeX main file .* nor a markdown paper"):
        load_paper(tmp_path / "empty")


@pytest.mark.parametrize("mode", ["author", "reviewer"])
def test_a_marker_folder_plans_in_both_modes(mode: str, tmp_path: Path, cli: str) -> None:
    folder = _marker_folder(tmp_path, "kestrel")
    with FakeLLMServer(responder=respond) as server:
        done = subprocess.run(
            [
                *(cli, "plan", str(folder), "--mode", mode, "-k", "2", "--model", "fake"),
                *("--api-base", server.url, "-o", str(tmp_path / "out"), "--json"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    names = [a["name"] for a in plan["ablations"]]
    if mode == "author":
        assert plan["mode"] == mode and names == ["Drop the gate", "Other encoder"]
    else:  # its section "4.3 Ablations" already removes the gate: not proposed again
        assert plan["mode"] == mode and names == ["Other encoder"]
        assert "Drop the gate" in plan["reasoning"]


def test_a_reviewer_run_over_marker_folders_has_no_failures(tmp_path: Path) -> None:
    from ablationkit.bench import Run

    papers = tmp_path / "papers"
    rows = []
    for i in range(3):
        paper_id = f"Paper_{i}"
        _marker_folder(papers, paper_id)
        rows.append(
            {
                "id": paper_id,
                "paper_title": f"Paper {i}",
                "paper_abstract": "A gated memory.",
                "paper_path": f"papers/{paper_id}",
                "review_text": json.dumps(["Please ablate the gate.", "What about the loss?"]),
                "num_ablation_suggestions": 2,
                "mode": "reviewer",
            }
        )
    dataset = tmp_path / "reviewer.jsonl"
    dataset.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    with FakeLLMServer(responder=respond) as server:
        run = Run(tmp_path / "run")
        report = run.plan(dataset, model="fake", api_base=server.url, k=2, mode="reviewer")
    assert report.failed == {}
    assert sorted(report.done) == ["Paper_0", "Paper_1", "Paper_2"]
