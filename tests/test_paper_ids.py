"""A paper's id is its slug (project folder or title), never a generic main file's stem.

Plans are saved as ``<paper_id>.<mode>.json``: with ids taken from the main file's stem,
every ``main.tex`` was ``main`` and each plan overwrote the one before.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablationkit.lm import LMClient
from ablationkit.papers import sample_paper_path
from ablationkit.plan_io import save_plan
from ablationkit.planner import PlanConfig, plan, prepare_plan
from ablationkit.testing import FakeLLMServer
from fakes import PLAN, respond

LATEX = (
    "\\documentclass{article}\\title{Gated Things: Sparse Gates for Tiny Encoders}"
    "\\begin{document}\\maketitle\\begin{abstract}We gate.\\end{abstract}"
    "\\section{Method}A gate and an encoder.\\section{Experiments}It works.\\end{document}"
)
MARKDOWN = (
    "# Sparse Mixture Gates for Tiny Transformers\n\n## Abstract\n\nWe gate.\n\n"
    "## 1 Method\n\nA gate and an encoder.\n\n## 2 Experiments\n\nIt works.\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def test_importable_where_it_was() -> None:
    from ablationkit.planner import paper_id_for as from_package
    from ablationkit.planner.core import paper_id_for as from_core
    from ablationkit.planner.ids import paper_id_for

    assert from_package is from_core is paper_id_for


@pytest.mark.parametrize(
    "stem",
    [
        *("main", "paper", "ms", "manuscript", "article", "root", "index", "document"),
        *("arxiv", "submission", "full", "text", "source", "draft", "camera-ready", "final"),
        *("main_v2", "paper-final", "Main", "main2", "paper_camera_ready", "main (1)", "ms-rev2"),
    ],
)
def test_a_generic_main_file_takes_its_project_folders_name(tmp_path: Path, stem: str) -> None:
    from ablationkit.planner.ids import paper_id_for

    assert paper_id_for(write(tmp_path / "nerf-lite" / f"{stem}.tex", LATEX)) == "nerf-lite"


@pytest.mark.parametrize("stem", ["kestrel", "gated_things", "2403.12345v2", "main_results_v2"])
def test_a_named_file_keeps_its_stem(tmp_path: Path, stem: str) -> None:
    from ablationkit.planner.ids import paper_id_for

    path = write(tmp_path / "downloads" / f"{stem}.pdf", "x")
    assert paper_id_for(path) == stem
    assert paper_id_for(path, title="Attention Is All You Need") == stem


def test_generic_folders_are_skipped_and_meta_slugs_win(tmp_path: Path) -> None:
    from ablationkit.planner.ids import paper_id_for

    nested = write(tmp_path / "proj-x" / "source" / "latex" / "main.tex", LATEX)
    assert paper_id_for(nested) == "proj-x"
    assert paper_id_for(nested.parent) == "proj-x"  # a folder: as before, generic ones skipped
    assert paper_id_for(tmp_path / "proj-x") == "proj-x"
    write(tmp_path / "proj-x" / "meta.json", json.dumps({"slug": "the-slug"}))
    assert paper_id_for(nested) == paper_id_for(tmp_path / "proj-x") == "the-slug"
    write(tmp_path / "proj-x" / "meta.json", "{not json")
    assert paper_id_for(nested) == "proj-x"


def test_a_title_slug_for_standalone_files_and_untitled_fallbacks(tmp_path: Path) -> None:
    from ablationkit.planner.ids import paper_id_for, title_slug

    title = "KESTREL: Keyframe Selection with Temporal Relevance for Efficient Long-Video QA"
    slug = title_slug(title)
    assert slug == "kestrel-keyframe-selection-with-temporal-relevance-for"
    assert len(slug) <= 60 and slug == slug.lower()
    assert title_slug("Über Ç-Nets: $\\beta$-VAEs, 10× faster") == "uber-c-nets-beta-vaes-10-faster"
    assert title_slug("") == title_slug("(untitled)") == ""
    pdf = write(tmp_path / "downloads" / "paper.pdf", "x")
    assert paper_id_for(pdf, title=title) == slug  # a PDF's folder is incidental
    assert paper_id_for(pdf) == "paper"  # "downloads" names no paper
    filed = write(tmp_path / "gan-study" / "paper.pdf", "x")
    assert paper_id_for(filed) == "gan-study"
    assert paper_id_for(filed, title=title) == slug
    tex = write(tmp_path / "my-proj" / "main.tex", LATEX)
    assert paper_id_for(tex, title=title) == "my-proj"  # a LaTeX main file: its project
    only_generic = write(tmp_path / "src" / "main.tex", LATEX)
    assert paper_id_for(only_generic, title=title, within=tmp_path) == slug
    assert paper_id_for(only_generic, within=tmp_path) == "main"  # nothing better


def test_two_main_tex_projects_no_longer_overwrite_each_other(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(json.dumps(PLAN), json.dumps(PLAN))
    out = tmp_path / "plans"
    with LMClient(cache=False, timeout=10) as client:
        for name in ("alpha-net", "beta-net"):
            paper = write(tmp_path / name / "main.tex", LATEX)
            result = plan(paper, client=client, model="m", api_base=fake_llm.url, k=2)
            assert result.paper_id == name
            save_plan(result, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha-net.author.json",
        "alpha-net.author.md",
        "beta-net.author.json",
        "beta-net.author.md",
    ]


def test_a_markdown_paper_takes_its_title_after_loading(
    fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    paper = write(tmp_path / "inbox" / "paper.md", MARKDOWN)
    request = prepare_plan(paper, PlanConfig(model="m", api_base=fake_llm.url, k=2))
    assert request.paper_id == "sparse-mixture-gates-for-tiny-transformers"
    explicit = prepare_plan(paper, PlanConfig(model="m", api_base=fake_llm.url), paper_id="mine")
    assert explicit.paper_id == "mine"  # an id given (a dataset row's, a run's) stays
    assert not fake_llm.requests  # preparing calls no model


def test_the_sample_keeps_its_meta_slug(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    config = PlanConfig(model="m", api_base=fake_llm.url, k=2)
    assert prepare_plan(sample_paper_path(), config).paper_id == "kestrel-sample"
    assert prepare_plan(sample_paper_path() / "main.tex", config).paper_id == "kestrel-sample"
    copy = tmp_path / "kestrel-copy"
    shutil.copytree(sample_paper_path(), copy)
    (copy / "meta.json").unlink()
    assert prepare_plan(copy / "main.tex", config).paper_id == "kestrel-copy"


def test_cli_plan_of_main_tex_names_the_files_after_the_project(
    cli: str, fake_llm: FakeLLMServer, tmp_path: Path
) -> None:
    fake_llm.script(json.dumps(PLAN))
    paper = write(tmp_path / "gated-things" / "main.tex", LATEX)
    out = tmp_path / "out"
    args = ["--model", "m", "--api-base", fake_llm.url, "-k", "2", "--out-dir", str(out)]
    done = subprocess.run(
        [cli, "plan", str(paper), *args, "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "gated-things.author.json",
        "gated-things.author.md",
    ]


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    from ablationkit.app import AppServer, AppSettings

    with FakeLLMServer(responder=respond) as llm:
        settings = AppSettings(
            model="fake", api_base=llm.url, port=0, max_upload_mb=1, cache=False, k=1
        )
        with AppServer(settings) as server:
            yield server.url


def test_app_upload_of_main_tex_is_named_by_its_title_not_the_temp_folder(app: str) -> None:
    url = f"{app}/api/plan?" + urllib.parse.urlencode({"filename": "main.tex"})
    request = urllib.request.Request(url, data=LATEX.encode(), headers={"X-AblationKit": "1"})
    with urllib.request.urlopen(request, timeout=60) as response:
        events = [json.loads(line) for line in response.read().decode().splitlines()]
    assert events[-1]["type"] == "plan", events[-1]
    assert events[-1]["plan"]["paper_id"] == "gated-things-sparse-gates-for-tiny-encoders"
