"""Attacks through a grid file, a run's folder and what a run leaves, on ``execute`` and
``results``.

A grid is written by a model and edited by hand, and a run's folder is written by the user's
script: neither is trusted. The rules under test: every grid value reaches the script as one
literal word (never shell syntax); nothing is read or written outside the runs folder, links
included; a metrics file that is a link out, a FIFO or huge is refused with the reason in the
run's record; labels cannot inject Markdown or LaTeX into the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablationkit.errors import AblationKitError, FormatError
from ablationkit.runs.execute import execute, load_grid, read_result
from ablationkit.runs.model import Grid
from ablationkit.runs.results import collect, to_latex, to_markdown

ECHO = (
    "import json, sys\n"
    "print(json.dumps({'acc': 1.0}))\n"
    "open('argv.json', 'w').write(json.dumps(sys.argv[1:]))\n"
)
CMD = f"{sys.executable} train.py {{overrides}}"


def project_with(tmp_path: Path, script: str = ECHO) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(script)
    return project


def one_run_grid(overrides: dict[str, object], ablation: str = "A") -> Grid:
    """The baseline and one variant with ``overrides`` (the variant runs last)."""
    return Grid.model_validate(
        {
            "plan": "p.json",
            "paper_id": "x",
            "project": ".",
            "style": "hydra",
            "seed_key": None,
            "mappings": [
                {
                    "ablation": ablation,
                    "action": "REPLACE",
                    "variants": [{"label": "v", "overrides": overrides}],
                }
            ],
        }
    )


@pytest.mark.parametrize(
    "value",
    ["$(touch pwned)", "`touch pwned`", "1; touch pwned", "1 && touch pwned", "'\"; touch pwned"],
)
def test_override_value_with_shell_syntax_reaches_the_script_as_one_word(
    tmp_path: Path, value: str
) -> None:
    project = project_with(tmp_path)
    grid = one_run_grid({"lr": value})
    report = execute(grid, CMD, project=project)
    assert all(r.ok for r in report.results)
    assert not (project / "pwned").exists()
    assert json.loads((project / "argv.json").read_text()) == [f"lr={value}"]


def test_override_key_with_shell_syntax_is_quoted_too(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    execute(one_run_grid({"x;touch pwned;y": 1}), CMD, project=project)
    assert not (project / "pwned").exists()
    assert json.loads((project / "argv.json").read_text()) == ["x;touch pwned;y=1"]


def test_run_folder_that_links_out_of_the_runs_folder_is_refused(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "runs").mkdir()
    (project / "runs" / "baseline--seed0").symlink_to(outside, target_is_directory=True)
    grid = one_run_grid({"lr": 1})
    grid.seed_key, grid.seeds = "seed", [0]
    with pytest.raises(FormatError, match=r"run folder baseline--seed0 .*outside its root"):
        execute(grid, CMD, project=project)
    assert list(outside.iterdir()) == []


def test_result_json_that_links_out_is_set_aside_and_the_run_redone(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    grid = one_run_grid({"lr": 1})
    execute(grid, CMD, project=project)
    run_dir = project / "runs" / "a--v--seed0"
    planted = tmp_path / "planted.json"
    planted.write_text((run_dir / "result.json").read_text())
    (run_dir / "result.json").unlink()
    (run_dir / "result.json").symlink_to(planted)
    assert read_result(project / "runs", "a--v--seed0") is None
    with pytest.warns(UserWarning, match="not a valid run result"):
        report = execute(grid, CMD, project=project)
    assert [r.run_id for r in report.results] == ["a--v--seed0"]
    assert planted.exists() and not (run_dir / "result.json").is_symlink()


def test_metrics_file_linking_outside_is_refused_with_the_reason(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"stolen": 1}')
    script = f"import os\nos.symlink({str(secret)!r}, os.environ['ABLATIONKIT_METRICS_FILE'])\n"
    project = project_with(tmp_path, script)
    result = execute(one_run_grid({"lr": 1}), CMD, project=project, metrics_file="m.json").results[
        -1
    ]
    assert result.status == "failed" and "stolen" not in result.metrics
    assert result.error is not None and "metrics file 'm.json': outside its root" in result.error
    assert not (project / "runs" / "a--v--seed0" / "m.json").exists()


def test_metrics_file_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    script = "import os\nos.mkfifo(os.environ['ABLATIONKIT_METRICS_FILE'])\n"
    project = project_with(tmp_path, script)
    result = execute(one_run_grid({"lr": 1}), CMD, project=project, metrics_file="m.json").results[
        -1
    ]
    assert result.status == "failed"
    assert result.error is not None and "not a regular file" in result.error


def test_huge_metrics_file_is_not_read(tmp_path: Path) -> None:
    script = (
        "import os\n"
        "with open(os.environ['ABLATIONKIT_METRICS_FILE'], 'w') as f:\n"
        "    f.write('{\"a\": 1, \"pad\": \"' + 'x' * 2_000_000 + '\"}')\n"
    )
    project = project_with(tmp_path, script)
    result = execute(one_run_grid({"lr": 1}), CMD, project=project, metrics_file="m.json").results[
        -1
    ]
    assert result.status == "failed" and result.error is not None
    assert "larger than" in result.error


@pytest.mark.parametrize("name", ["../escape.json", "/tmp/abs.json", "~/m.json", "result.json"])
def test_metrics_file_name_out_of_the_run_folder_is_refused_before_any_run(
    tmp_path: Path, name: str
) -> None:
    project = project_with(tmp_path)
    with pytest.raises(AblationKitError, match="--metrics-file"):
        execute(one_run_grid({"lr": 1}), CMD, project=project, metrics_file=name)
    assert not (project / "argv.json").exists()


def test_deeply_nested_metrics_line_is_no_crash(tmp_path: Path) -> None:
    script = "print('{\"a\":' * 50000 + '1' + '}' * 50000)\n"
    project = project_with(tmp_path, script)
    result = execute(one_run_grid({"lr": 1}), CMD, project=project).results[-1]
    assert result.status == "failed" and result.error is not None
    assert "printed no JSON object line" in result.error


def test_grid_file_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "grid.json"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="not a regular file"):
        load_grid(fifo)


def test_grid_nested_too_deep_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "grid.json"
    path.write_text('{"plan": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_grid(path)


def test_labels_cannot_inject_markdown_or_latex(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    label = "x | y \\input{/etc/passwd} $\\alpha$ 100%"
    grid = one_run_grid({"lr": 1}, ablation=label)
    execute(grid, CMD, project=project)
    table = collect(grid, project / "runs")
    md = to_markdown(table)
    assert "x \\| y" in md and "| x | y" not in md
    tex = to_latex(table)
    assert "\\input{" not in tex and r"\textbackslash{}input\{/etc/passwd\}" in tex
    assert r"\$\textbackslash{}alpha\$ 100\%" in tex


def test_cli_results_on_a_grid_that_is_not_json_is_one_line_exit_2(
    cli: str, tmp_path: Path
) -> None:
    (tmp_path / "grid.json").write_bytes(b"\xff\xfe not json")
    done = subprocess.run(
        [cli, "results", "grid.json"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: grid.json: not valid JSON")


def test_a_file_where_a_run_folder_should_be_is_one_line(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    (project / "runs").mkdir()
    (project / "runs" / "a--v--seed0").write_text("not a folder")
    with pytest.raises(FormatError, match=r"run folder 'a--v--seed0': not a directory"):
        execute(one_run_grid({"lr": 1}), CMD, project=project)


def test_a_lock_file_linking_out_is_refused_not_followed(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    (project / "runs").mkdir()
    target = tmp_path / "elsewhere.txt"
    (project / "runs" / ".execute.lock").symlink_to(target)
    with pytest.raises(FormatError, match=r"\.execute\.lock: a symbolic link"):
        execute(one_run_grid({"lr": 1}), CMD, project=project)
    assert not target.exists()
