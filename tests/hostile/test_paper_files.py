"""Attacks on the paper loaders through the files a paper names, and their outcomes.

A paper (or a dataset row) comes from a stranger. Whatever it names, a project reads only
regular files under its own root — the directory given, or the folder of the file given —
resolved, symlinks included. Everything else is skipped with a warning naming the command and
the path, and is never read; absolute and climbing names are not even probed.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from ablationkit.bench import load_dataset
from ablationkit.bench.datasets import hub_instances
from ablationkit.errors import FormatError
from ablationkit.papers import Paper, load_paper
from ablationkit.papers.latex import find_main_tex, load_latex
from ablationkit.testing import FakeLLMServer

SECRET = "TOPSECRET-do-not-leak"
HEAD = "\\documentclass{article}\n\\begin{document}\n\\section{Intro}\nVisible text.\n"
TAIL = "\n\\end{document}\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the project holding files a paper must never read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.tex").write_text(f"\\section{{Leak}}\n{SECRET}\n", "utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "secret.tex").write_text(f"\\section{{Leak}}\n{SECRET}\n", "utf-8")
    (folder / "main.tex").write_text(
        HEAD + f"\\section{{Leak}}\n{SECRET} {'padding ' * 200}" + TAIL, "utf-8"
    )
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project two levels below tmp_path, so ``../../outside`` reaches ``outside``."""
    folder = tmp_path / "a" / "proj"
    folder.mkdir(parents=True)
    return folder


def write_main(project: Path, line: str) -> Path:
    """main.tex with ``line`` on line 5."""
    (project / "main.tex").write_text(HEAD + line + TAIL, "utf-8")
    return project


def everything(paper: Paper) -> str:
    return "\n".join([paper.title, paper.abstract, *(s.title + s.text for s in paper.walk())])


@contextmanager
def spy_on_files() -> Iterator[list[tuple[str, str]]]:
    """Record ``(call, path)`` for every path probed (stat/lstat/readlink) or opened while the
    block runs."""
    seen: list[tuple[str, str]] = []
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, (str, bytes, os.PathLike)):
                seen.append((name, os.fsdecode(os.fspath(path))))
            return real(path, *args, **kwargs)

        patched.append((owner, name, real))
        setattr(owner, name, spy)

    for owner, name in (
        (os, "stat"),
        (os, "lstat"),
        (os, "open"),
        (os, "readlink"),
        (io, "open"),
        (builtins, "open"),
    ):
        wrap(owner, name)
    try:
        yield seen
    finally:
        for owner, name, real in reversed(patched):
            setattr(owner, name, real)


def assert_skipped(paper: Paper, command: str, reason: str) -> None:
    assert SECRET not in everything(paper)
    assert "Visible text." in everything(paper)
    expected = f"main.tex: line 5: {command}: {reason}; skipped"
    assert expected in paper.warnings, paper.warnings


def run_with_fifo_guard(fn: Callable[[], Any], fifos: list[Path], timeout: float = 20) -> Any:
    """Run ``fn`` in a thread; if it is still blocked on a FIFO after ``timeout``, open the FIFOs
    for writing (so the blocked reader gets end-of-file) and fail."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in fifos:
            with suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail("loading blocked on a FIFO")
    if "error" in result:
        raise result["error"]
    return result.get("value")


# --------------------------------------------------------------------------- names in \input


@pytest.mark.parametrize("command", ["input", "include", "subfile"])
def test_input_of_absolute_path_is_skipped_with_warning(
    project: Path, outside: Path, command: str
) -> None:
    target = str(outside / "secret")
    write_main(project, f"\\{command}{{{target}}}")
    with spy_on_files() as seen:
        paper = load_paper(project)
    assert_skipped(paper, f"\\{command}{{{target}}}", "absolute path")
    assert not [p for _, p in seen if p.startswith(str(outside))], "the absolute path was probed"


@pytest.mark.parametrize("command", ["input", "include", "subfile"])
def test_input_climbing_out_of_the_project_is_skipped_with_warning(
    project: Path, outside: Path, command: str
) -> None:
    write_main(project, f"\\{command}{{../../outside/secret}}")
    with spy_on_files() as seen:
        paper = load_paper(project)
    assert_skipped(paper, f"\\{command}{{../../outside/secret}}", "outside the project")
    assert not [p for _, p in seen if "outside" in Path(p).parts], "the climbing path was probed"


def test_import_of_absolute_folder_is_skipped_with_warning(project: Path, outside: Path) -> None:
    write_main(project, f"\\import{{{outside}/}}{{secret}}")
    with spy_on_files() as seen:
        paper = load_paper(project)
    assert_skipped(paper, f"\\import{{{outside}/}}{{secret}}", "absolute path")
    assert not [p for _, p in seen if p.startswith(str(outside))]


def test_subimport_climbing_out_is_skipped_with_warning(project: Path, outside: Path) -> None:
    write_main(project, "\\subimport{../../outside/}{secret}")
    paper = load_paper(project)
    assert_skipped(paper, "\\subimport{../../outside/}{secret}", "outside the project")


def test_subimport_inside_the_project_still_works(project: Path) -> None:
    (project / "parts" / "deep").mkdir(parents=True)
    (project / "parts" / "a.tex").write_text("\\subimport{deep/}{b}", "utf-8")
    (project / "parts" / "deep" / "b.tex").write_text("\\subimport{../}{c}", "utf-8")
    (project / "parts" / "c.tex").write_text("Reached C.", "utf-8")
    write_main(project, "\\input{parts/a}")
    paper = load_paper(project)
    assert "Reached C." in everything(paper) and not paper.warnings


def test_input_of_proc_self_cwd_env_never_reads_the_secret(
    project: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (outside / ".env").write_text(f"OPENAI_API_KEY=sk-{SECRET}\n", "utf-8")
    monkeypatch.chdir(outside)
    write_main(project, "\\input{/proc/self/cwd/.env}")
    with spy_on_files() as seen:
        paper = load_paper(project)
    assert_skipped(paper, "\\input{/proc/self/cwd/.env}", "absolute path")
    assert not [p for _, p in seen if p.startswith("/proc")]


def test_symlinked_file_pointing_outside_is_skipped_with_warning(
    project: Path, outside: Path
) -> None:
    (project / "intro.tex").symlink_to(outside / "secret.tex")
    write_main(project, "\\input{intro}")
    with spy_on_files() as seen:
        paper = load_paper(project)
    assert_skipped(paper, "\\input{intro}", "outside the project")
    opened = [p for call, p in seen if call == "open" and Path(p).name == "secret.tex"]
    assert not opened, "the file behind the symlink was opened"


def test_symlinked_folder_pointing_outside_is_skipped_with_warning(
    project: Path, outside: Path
) -> None:
    (project / "sections").symlink_to(outside / "sub", target_is_directory=True)
    write_main(project, "\\input{sections/secret}")
    paper = load_paper(project)
    assert_skipped(paper, "\\input{sections/secret}", "outside the project")


def test_symlink_inside_the_project_is_followed(project: Path) -> None:
    (project / "real").mkdir()
    (project / "real" / "part.tex").write_text("Linked but inside.", "utf-8")
    (project / "alias.tex").symlink_to(project / "real" / "part.tex")
    write_main(project, "\\input{alias}")
    paper = load_paper(project)
    assert "Linked but inside." in everything(paper) and not paper.warnings


def test_explicit_main_file_reads_only_its_own_folder(tmp_path: Path, outside: Path) -> None:
    """Given a file, its folder is the root: a sibling folder of that folder is outside."""
    (tmp_path / "p").mkdir()
    main = tmp_path / "p" / "paper.tex"
    main.write_text(HEAD + "\\input{../outside/secret}" + TAIL, "utf-8")
    paper = load_latex(main)
    assert SECRET not in everything(paper)
    assert any("outside the project" in w for w in paper.warnings), paper.warnings


# --------------------------------------------------------------------------- special files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_main_tex_does_not_block(project: Path) -> None:
    os.mkfifo(project / "main.tex")
    (project / "paper.tex").write_text(HEAD + TAIL, "utf-8")
    assert run_with_fifo_guard(lambda: find_main_tex(project), [project / "main.tex"]) == (
        project / "paper.tex"
    )
    paper = run_with_fifo_guard(lambda: load_paper(project), [project / "main.tex"])
    assert "Visible text." in everything(paper)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_as_an_input_does_not_block(project: Path) -> None:
    os.mkfifo(project / "data.tex")
    write_main(project, "\\input{data}")
    paper = run_with_fifo_guard(lambda: load_paper(project), [project / "data.tex"])
    assert "Visible text." in everything(paper)
    assert "main.tex: line 5: \\input{data}: not a regular file; skipped" in paper.warnings


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_given_as_the_paper_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "paper.tex"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="not a regular file"):
        run_with_fifo_guard(lambda: load_paper(fifo), [fifo])


def test_symlinked_main_tex_pointing_outside_is_not_a_candidate(
    project: Path, outside: Path
) -> None:
    (project / "main.tex").symlink_to(outside / "main.tex")  # longer: today's tie-break winner
    (project / "paper.tex").write_text(HEAD + TAIL, "utf-8")
    assert find_main_tex(project) == project / "paper.tex"
    paper = load_paper(project)
    assert SECRET not in everything(paper) and "Visible text." in everything(paper)


def test_only_a_symlinked_main_tex_means_no_main_file(project: Path, outside: Path) -> None:
    (project / "main.tex").symlink_to(outside / "main.tex")
    with pytest.raises(
        FormatError, match=r"neither a LaTeX main file \(\.tex with \\documentclass\)"
    ):
        load_paper(project)


def test_meta_json_symlinked_outside_never_names_the_paper(project: Path, outside: Path) -> None:
    from ablationkit.planner.ids import paper_id_for

    (outside / "meta.json").write_text(json.dumps({"slug": SECRET}), "utf-8")
    (project / "meta.json").symlink_to(outside / "meta.json")
    write_main(project, "Visible text.")
    assert paper_id_for(project / "main.tex") == "proj"


def test_meta_json_that_is_a_fifo_does_not_block_the_paper_id(project: Path) -> None:
    from ablationkit.planner.ids import paper_id_for

    os.mkfifo(project / "meta.json")
    write_main(project, "Visible text.")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(paper_id_for(project)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert result == ["proj"]


# --------------------------------------------------------------------------- missing inputs


def test_missing_input_warns_and_the_rest_loads(project: Path) -> None:
    write_main(project, "\\input{figures/gone}\nAfter the gap.")
    paper = load_paper(project)
    assert "After the gap." in everything(paper)
    assert "main.tex: line 5: \\input{figures/gone}: file not found; skipped" in paper.warnings


def test_strict_turns_a_missing_input_back_into_an_error(project: Path) -> None:
    write_main(project, "\\input{figures/gone}")
    with pytest.raises(FormatError) as info:
        load_paper(project, strict=True)
    message = str(info.value)
    assert message.startswith("main.tex: line 5: \\input{figures/gone}: file not found")
    assert "\n" not in message and "--" not in message and "=" not in message


def test_paper_cli_warns_on_missing_input_and_strict_fails(cli: str, project: Path) -> None:
    write_main(project, "\\input{figures/gone}\nAfter the gap.")
    loose = subprocess.run(
        [cli, "paper", str(project), "--json"], capture_output=True, text=True, timeout=60
    )
    assert loose.returncode == 0, loose.stderr
    json.loads(loose.stdout)
    assert "warning: main.tex: line 5: \\input{figures/gone}: file not found" in loose.stderr
    strict = subprocess.run(
        [cli, "paper", str(project), "--strict"], capture_output=True, text=True, timeout=60
    )
    assert strict.returncode == 2 and strict.stdout == ""
    assert strict.stderr.startswith("error: main.tex: line 5: \\input{figures/gone}: file not")
    assert len(strict.stderr.strip().splitlines()) == 1
    old = subprocess.run(
        [cli, "paper", str(project), "--allow-missing-inputs"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert old.returncode == 0, old.stderr  # the old flag is still accepted (now the default)


def test_plan_cli_strict_fails_before_any_model_call(
    cli: str, project: Path, tmp_path: Path
) -> None:
    write_main(project, "\\input{figures/gone}")
    env = {**os.environ, "ABLATIONKIT_CACHE_DIR": str(tmp_path / "cache")}
    with FakeLLMServer(["not a plan"]) as server:
        result = subprocess.run(
            [cli, "plan", str(project), "--strict", "--model", "m", "--api-base", server.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert not server.requests
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: main.tex: line 5: \\input{figures/gone}: file not found")


# --------------------------------------------------------------------------- damaged PDFs


def test_damaged_pdf_keeps_stdout_json_and_warns_on_stderr(cli: str, tmp_path: Path) -> None:
    pymupdf = pytest.importorskip("pymupdf")
    doc = pymupdf.open()
    for title in ("1 Introduction", "2 Method"):
        page = doc.new_page()
        page.insert_text((72, 72), title, fontsize=14)
        page.insert_text((72, 100), "Some text of the paper about a method.", fontsize=11)
    data = doc.tobytes(garbage=0, deflate=True)
    # Break the first stream (MuPDF reports a zlib error) and shift the xref offsets
    # (MuPDF repairs the file): both used to be printed on stdout.
    start = data.index(b"stream\n") + len(b"stream\n") + 5
    data = data[:start] + b"\x00garbage" * 3 + data[data.index(b"endstream", start) :]
    path = tmp_path / "damaged.pdf"
    path.write_bytes(data)
    result = subprocess.run(
        [cli, "paper", str(path), "--json"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"title", "abstract", "sections"}
    assert "MuPDF" not in result.stdout
    assert re.search(r"warning: .*zlib error", result.stderr), result.stderr


# --------------------------------------------------------------------------- datasets


def _paper_md(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"# Leaked\n\n## 1 Method\n\n{SECRET}\n", "utf-8")
    return path


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_dataset_row_whose_path_escapes_its_folder_fails_naming_the_row(
    tmp_path: Path, kind: str
) -> None:
    secret = _paper_md(tmp_path / "outside", "paper.md")
    _paper_md(tmp_path / "ds" / "papers", "fine.md")
    escaping = "../outside/paper.md" if kind == "relative" else str(secret)
    dataset = tmp_path / "ds" / "data.jsonl"
    rows = [{"id": "evil", "path": escaping}, {"id": "fine", "path": "papers/fine.md"}]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    evil, fine = load_dataset(dataset)
    assert fine.load().sections
    with pytest.raises(FormatError) as info:
        evil.load()
    message = info.value.one_line()
    assert "evil" in message and "outside" in message and "\n" not in message


def test_hub_row_whose_paper_path_escapes_papers_root_fails_naming_the_row(
    tmp_path: Path,
) -> None:
    _paper_md(tmp_path / "outside", "paper.md")
    (tmp_path / "root").mkdir()
    rows = [{"id": "evil", "paper_path": "../outside/paper.md", "ablations_in_paper": "[]"}]
    [evil] = hub_instances(rows, "author", papers_root=tmp_path / "root")
    with pytest.raises(FormatError, match="evil"):
        evil.load()


def test_papers_folder_whose_source_is_a_symlink_outside_fails(tmp_path: Path) -> None:
    secret = _paper_md(tmp_path / "outside", "paper.md")
    folder = tmp_path / "papers" / "evil"
    folder.mkdir(parents=True)
    (folder / "ground_truth.jsonl").write_text("", "utf-8")
    (folder / "paper.md").symlink_to(secret)
    [evil] = load_dataset(tmp_path / "papers")
    with pytest.raises(FormatError, match="evil"):
        evil.load()
