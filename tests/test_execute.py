"""``execute``: every grid entry runs once, is recorded at its end, and a rerun resumes.

The experiment is a toy training script written into ``tmp_path``: it reads ``key=value``
overrides, appends its run id to a counter file (so a test sees how often each run really
executed), can sleep, fail or stay silent on request, and prints its metrics as the last
JSON line of stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ablationkit.errors import AblationKitError, FormatError
from ablationkit.runs.execute import (
    Attempt,
    RunResult,
    RunSpec,
    execute,
    fill_command,
    load_grid,
    metrics_from_text,
    numeric_metrics,
    read_result,
)
from ablationkit.runs.model import Grid

TOY = r"""
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:])
with open("counter.txt", "a") as f:
    f.write(os.environ.get("ABLATIONKIT_RUN_ID", "?") + "\n")
with open("pid-" + os.environ.get("ABLATIONKIT_RUN_ID", "?"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(args.get("sleep", 0)))
if args.get("fail") == "true":
    print("Traceback: something broke", file=sys.stderr)
    sys.exit(3)
lr = float(args.get("lr", 0.1))
seed = int(args.get("seed", 0))
acc = 0.9 - abs(lr - 0.1) + 0.01 * seed
print("epoch 1 loss 0.5")
print('{"note": "not the last line"}')
if args.get("quiet") != "true":
    metrics = {"accuracy": acc, "loss": 1 - acc, "tag": "x", "nested": {"f1": acc / 2}}
    if os.environ.get("ABLATIONKIT_METRICS_FILE"):
        with open(os.environ["ABLATIONKIT_METRICS_FILE"], "w") as f:
            json.dump({"accuracy": acc, "from_file": 1}, f)
    else:
        print(json.dumps(metrics))
"""

CMD = f"{sys.executable} train.py {{overrides}}"


def make_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TOY, encoding="utf-8")
    return project


def make_grid(
    seeds: tuple[int, ...] = (0, 1),
    lrs: tuple[float, ...] = (0.01, 0.5),
    baseline: dict[str, Any] | None = None,
    style: str = "hydra",
) -> Grid:
    return Grid.model_validate(
        {
            "plan": "plan.json",
            "paper_id": "toy",
            "project": ".",
            "style": style,
            "seeds": list(seeds),
            "baseline": baseline or {},
            "mappings": [
                {
                    "ablation": "Learning rate",
                    "action": "REPLACE",
                    "variants": [{"label": f"lr={lr}", "overrides": {"lr": lr}} for lr in lrs],
                }
            ],
        }
    )


def counts(project: Path) -> dict[str, int]:
    path = project / "counter.txt"
    lines = path.read_text().split() if path.exists() else []
    return {run_id: lines.count(run_id) for run_id in set(lines)}


def test_every_run_executes_once_and_is_recorded_with_its_metrics(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid()
    report = execute(grid, CMD, project=project, jobs=2)
    assert len(report.results) == 6 and not report.failed and report.skipped == []
    assert counts(project) == {run.run_id: 1 for run in grid.runs()}
    for run in grid.runs():
        run_dir = project / "runs" / run.run_id
        assert sorted(p.name for p in run_dir.iterdir()) == [
            "result.json",
            "stderr.txt",
            "stdout.txt",
        ]
        result = RunResult.model_validate_json((run_dir / "result.json").read_text())
        lr = run.overrides.get("lr", 0.1)
        assert result.status == "ok" and result.exit_code == 0
        assert result.metrics["accuracy"] == pytest.approx(0.9 - abs(lr - 0.1) + 0.01 * run.seed)
        assert result.metrics["nested.f1"] == pytest.approx(result.metrics["accuracy"] / 2)
        assert "tag" not in result.metrics and "note" not in result.metrics
        assert result.metrics_source == "stdout"
        assert "epoch 1 loss" in (run_dir / "stdout.txt").read_text()


def test_a_rerun_skips_finished_runs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,))
    execute(grid, CMD, project=project)
    report = execute(grid, CMD, project=project)
    assert report.results == [] and len(report.skipped) == 3
    assert set(counts(project).values()) == {1}


def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,))
    grid.mappings[0].variants[0].overrides["fail"] = True
    report = execute(grid, CMD, project=project)
    assert len(report.results) == 3 and len(report.failed) == 1
    failed = report.failed[0]
    assert failed.status == "failed" and failed.exit_code == 3
    assert "Traceback: something broke" in failed.stderr_tail
    assert failed.error == "exit code 3: Traceback: something broke"
    # a plain rerun leaves it alone; --retry-failed runs exactly the failed one again
    assert execute(grid, CMD, project=project).results == []
    again = execute(grid, CMD, project=project, retry_failed=True)
    assert [r.run_id for r in again.results] == [failed.run_id]
    assert counts(project)[failed.run_id] == 2
    assert sorted(counts(project).values()) == [1, 1, 2]


def test_a_run_without_metrics_fails_with_the_reason(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=(), baseline={"quiet": True})
    [result] = execute(grid, CMD, project=project).results
    assert result.status == "failed" and result.exit_code == 0
    assert result.error is not None and "printed no JSON object line" in result.error


def test_metrics_file_is_read_from_the_run_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=())
    cmd = f"{sys.executable} train.py {{overrides}} && test -n {{metrics_file}}"
    [result] = execute(grid, cmd, project=project, metrics_file="m.json").results
    assert result.ok, result.error
    assert result.metrics == {"accuracy": pytest.approx(0.9), "from_file": 1.0}
    assert result.metrics_source == "metrics-file"
    kept = json.loads((project / "runs" / result.run_id / "m.json").read_text())
    assert kept["from_file"] == 1


def test_placeholders_are_filled_and_quoted(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(7,), lrs=())
    cmd = (
        f"echo {{run_id}} {{seed}} > seen.txt; {sys.executable} train.py {{overrides}}; "
        "echo ${HOME:+home} >> seen.txt"
    )
    [result] = execute(grid, cmd, project=project).results
    assert result.ok
    assert (project / "seen.txt").read_text().split() == ["baseline--seed7", "7", "home"]
    assert fill_command("{x} {overrides} {{y}}", {"overrides": "a=1"}) == "{x} a=1 {{y}}"


def test_argparse_style_grid_passes_flags(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "train.py").write_text(
        "import argparse, json\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float, default=0.1)\n"
        "p.add_argument('--seed', type=int, default=0)\n"
        "p.add_argument('--no-aug', action='store_true')\n"
        "a = p.parse_args()\n"
        "print(json.dumps({'lr': a.lr, 'seed': a.seed, 'aug': 0 if a.no_aug else 1}))\n"
    )
    grid = make_grid(seeds=(2,), lrs=(0.3,), style="argparse")
    grid.mappings[0].variants[0].overrides["no-aug"] = True
    report = execute(grid, f"{sys.executable} train.py {{overrides}}", project=project)
    by_id = {r.run_id: r.metrics for r in report.results}
    assert by_id["baseline--seed2"] == {"lr": 0.1, "seed": 2.0, "aug": 1.0}
    assert by_id["learning-rate--lr-0-3--seed2"] == {"lr": 0.3, "seed": 2.0, "aug": 0.0}


def test_a_run_over_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=(), baseline={"sleep": 30})
    # the shell's child (python) must die too, not only the shell: the whole process group
    cmd = f"{sys.executable} train.py {{overrides}}; echo after > after.txt"
    start = time.monotonic()
    [result] = execute(grid, cmd, project=project, timeout=0.5).results
    assert time.monotonic() - start < 20  # hang guard, not a timing assertion
    assert result.status == "timeout" and result.exit_code is None
    assert result.error == "timed out after 0.5 s"
    assert not (project / "after.txt").exists()


def test_a_run_asked_to_stop_ends_with_its_process_group(tmp_path: Path) -> None:
    """How a Ray task ends its run when the driver raises its stop flag (no ``ray.cancel``):
    ``Attempt.wait`` asks ``stop`` between polls, and a yes ends the whole group."""
    project = make_project(tmp_path)
    [run] = make_grid(seeds=(0,), lrs=(), baseline={"sleep": 60}).runs()
    command = f"{sys.executable} train.py sleep=60; echo after > after.txt"
    spec = RunSpec(run=run, command=command, cwd=str(project))
    work = tmp_path / "work"
    work.mkdir()
    attempt = Attempt(spec, work)
    pid_file = project / f"pid-{run.run_id}"

    def stop() -> bool:
        return pid_file.exists() and bool(pid_file.read_text())  # once the script runs

    assert attempt.wait(poll_seconds=0.02, stop=stop) is False
    assert attempt.proc.returncode is not None
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 15  # the group's SIGTERM may still be landing: a hang guard
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid) and not (project / "after.txt").exists()


def test_an_edited_grid_reruns_the_runs_whose_overrides_changed(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=(0.5,))
    execute(grid, CMD, project=project)
    grid.mappings[0].variants[0].overrides["lr"] = 0.2  # same label, so the same run id
    report = execute(grid, CMD, project=project)
    assert [r.run_id for r in report.results] == ["learning-rate--lr-0-5--seed0"]
    assert report.results[0].overrides["lr"] == 0.2


def test_a_damaged_result_is_set_aside_and_the_run_redone(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=())
    execute(grid, CMD, project=project)
    path = project / "runs" / "baseline--seed0" / "result.json"
    path.write_text("{not json")
    with pytest.warns(UserWarning, match="not a valid run result"):
        report = execute(grid, CMD, project=project)
    assert [r.run_id for r in report.results] == ["baseline--seed0"]
    assert read_result(project / "runs", "baseline--seed0") is not None
    assert any(p.name.startswith("result.json.corrupt-") for p in path.parent.iterdir())


def test_a_command_without_overrides_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AblationKitError, match=r"no \{overrides\}"):
        execute(make_grid(), "python train.py", project=make_project(tmp_path))


def test_simple_commands_are_told_from_compound_ones() -> None:
    from ablationkit.runs.execute import is_simple

    assert is_simple("python train.py 'a=1; b' \"x|y\" $HOME")
    for line in ("a && b", "a; b", "a | b", "a > log", "(a)", "X=1 python t.py", "a\nb", "'a"):
        assert not is_simple(line), line


def test_metrics_parsing_keeps_finite_numbers_of_the_last_object_line() -> None:
    text = '{"a": 1}\nnoise\n{"acc": 0.5, "ok": true, "nan": NaN, "s": "x", "d": {"e": 2}}\n'
    parsed = metrics_from_text(text)
    assert parsed is not None and numeric_metrics(parsed) == {"acc": 0.5, "d.e": 2.0}
    assert metrics_from_text("no json here\n[1, 2]\n") is None


def test_grid_file_errors_are_one_line_format_errors(tmp_path: Path) -> None:
    bad = tmp_path / "grid.json"
    bad.write_text('{"plan": "p"}')
    with pytest.raises(FormatError, match=r"grid.json: not a grid file: paper_id"):
        load_grid(bad)
    with pytest.raises(FormatError, match="no such file"):
        load_grid(tmp_path / "none.json")


# --- through the command line ---------------------------------------------------------------


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie nobody reaped counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" in status.read_text()
    except OSError:
        return True


def write_grid(project: Path, grid: Grid) -> Path:
    path = project / "grid.json"
    path.write_text(grid.model_dump_json(indent=2))
    return path


def test_cli_execute_reports_and_exits_1_when_a_run_failed(cli: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,))
    grid.mappings[0].variants[1].overrides["fail"] = True
    path = write_grid(project, grid)
    done = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD, "--jobs", "2"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "execute: 3 runs to do" in done.stderr
    assert "execute: 2 ok, 1 failed, 0 already done" in done.stderr
    assert "learning-rate--lr-0-5--seed0: failed: exit code 3" in done.stderr
    again = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "0 ok, 0 failed, 3 already done" in again.stderr


def test_cli_execute_and_results_from_another_folder_use_the_grids_project(
    cli: str, tmp_path: Path
) -> None:
    """The grid records its project's absolute path: runs start there and `results` reads
    its runs folder there, wherever the user stands (was: runs failed with 'No such file')."""
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,))
    grid.project = str(project)
    path = write_grid(project, grid)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3 ok, 0 failed" in done.stderr and "warning" not in done.stderr
    assert sorted(counts(project)) == [
        run.run_id for run in sorted(grid.runs(), key=lambda r: r.run_id)
    ]
    assert not (elsewhere / "runs").exists()
    shown = subprocess.run(
        [cli, "results", str(path), "-o", "out"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads((elsewhere / "out" / "results.json").read_text())
    assert [row["runs"] for row in data["rows"]] == ["1/1"] * 3


def test_cli_execute_bad_grid_is_one_line_exit_2(cli: str, tmp_path: Path) -> None:
    (tmp_path / "grid.json").write_text("[1]")
    done = subprocess.run(
        [cli, "execute", "grid.json", "--cmd", "x {overrides}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: grid.json: not a grid: the file holds no JSON object"
    ]


def test_killed_execute_resumes_without_redoing_finished_runs(cli: str, tmp_path: Path) -> None:
    """SIGKILL mid-way (no chance to clean up), then a rerun: finished runs are not executed
    again, the killed one is redone, nothing of it is taken as a result."""
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0, 1), lrs=(0.5,), baseline={"sleep": 0.4})
    path = write_grid(project, grid)
    runs = project / "runs"
    proc = subprocess.Popen(
        [cli, "execute", str(path), "--cmd", CMD],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(runs.glob("*/result.json")):
            assert proc.poll() is None, "execute ended before it could be killed"
            assert time.monotonic() < deadline, "no run finished in 60 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished_first = {p.parent.name for p in runs.glob("*/result.json")}
    assert 0 < len(finished_first) < 4
    time.sleep(0.6)  # the killed run's script, if it outlived execute, would count by now
    started_first = counts(project)
    done = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"({len(finished_first)} already done)" in done.stderr
    final = counts(project)
    all_ids = {run.run_id for run in grid.runs()}
    assert {p.parent.name for p in runs.glob("*/result.json")} == all_ids
    for run_id in finished_first:
        assert final[run_id] == 1, f"{run_id} was executed again"
    for run_id in all_ids - finished_first:
        assert final[run_id] == started_first.get(run_id, 0) + 1
    assert not list(runs.glob("*/.attempt-*")), "a killed attempt's folder was left behind"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("cmd", [CMD, f"true && {CMD}"], ids=["simple", "compound"])
def test_a_killed_execute_takes_its_runs_down_with_it(cli: str, tmp_path: Path, cmd: str) -> None:
    """SIGKILL of execute ends the run's script too, not only the shell between them: an
    orphan would go on writing and compete with the rerun's attempt."""
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=(), baseline={"sleep": 60})
    path = write_grid(project, grid)
    proc = subprocess.Popen(
        [cli, "execute", str(path), "--cmd", cmd],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = project / "pid-baseline--seed0"
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        script = int(pid_file.read_text())
        assert not gone(script)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 15
        while not gone(script) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(script), "the run's script outlived the killed execute"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid_file.exists() and not gone(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_cli_execute_uses_the_grids_command_unless_given(cli: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    grid = make_grid(seeds=(0,), lrs=())
    path = write_grid(project, grid)
    done = subprocess.run(
        [cli, "execute", str(path)], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {path}: no command: give --cmd")
    grid.command = CMD
    write_grid(project, grid)
    done = subprocess.run(
        [cli, "execute", str(path)], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert counts(project) == {"baseline--seed0": 1}


# --- the bundled sample, end to end: plan -> grid --yes -> execute -> results ----------------

SAMPLE_PLAN = {
    "reasoning": "Noise augmentation and the RBF kernel are the method's two choices.",
    "ablations": [
        {
            "name": "No noise augmentation",
            "ablated_part": "Gaussian noise augmentation of the training digits",
            "action": "REMOVE",
            "replacement": None,
            "metrics": ["accuracy"],
        },
        {
            "name": "Linear classifier",
            "ablated_part": "RBF-kernel SVM",
            "action": "REPLACE",
            "replacement": ["linear SVM"],
            "metrics": ["accuracy"],
        },
    ],
}
SAMPLE_GRID = {
    "mappings": [
        {
            "ablation": 1,
            "mapped": True,
            "reason": "augment.noise=0 turns the augmentation off",
            "variants": [{"label": "off", "overrides": {"augment.noise": 0}}],
        },
        {
            "ablation": 2,
            "mapped": True,
            "reason": "model.name chooses the classifier",
            "variants": [{"label": "linear SVM", "overrides": {"model.name": "linear_svm"}}],
        },
    ]
}


def sample_to_grid(cli: str, tmp_path: Path) -> tuple[Path, Path]:
    """``sample-project``, ``plan`` and ``grid --yes`` through the CLI against the fake
    server (plan and grid requests told apart by their reply schema); returns the project
    folder and its grid file."""
    from ablationkit.testing import FakeLLMServer

    plan_text, grid_text = json.dumps(SAMPLE_PLAN), json.dumps(SAMPLE_GRID)

    def respond(body: dict[str, Any]) -> str:
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        return grid_text if "mappings" in schema.get("properties", {}) else plan_text

    env = {**os.environ, "ABLATIONKIT_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}

    def run(*args: str) -> None:
        done = subprocess.run(
            [cli, *args], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, f"{args[0]}: {done.stderr}"

    run("sample-project", "digitnet")
    project = tmp_path / "digitnet"
    with FakeLLMServer(responder=respond) as server:
        run("plan", "digitnet/paper.md", "--model", "m", "--api-base", server.url, "-k", "2",
            "-o", "plans")  # fmt: skip
        [plan] = (tmp_path / "plans").glob("*.json")
        run("grid", str(plan), "--project", "digitnet", "--model", "m", "--api-base",
            server.url, "--seeds", "2", "--yes", "-o", "digitnet/grid.json")  # fmt: skip
    return project, project / "grid.json"


def check_sample_results(cli: str, project: Path, grid_file: Path) -> None:
    done = subprocess.run(
        [cli, "results", str(grid_file)], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    data = json.loads((project / "results" / "results.json").read_text())
    assert [row["label"] for row in data["rows"]] == [
        "baseline",
        "No noise augmentation: off",
        "Linear classifier: linear SVM",
    ]
    assert [row["runs"] for row in data["rows"]] == ["2/2"] * 3
    for row in data["rows"]:
        assert 0.5 < row["stats"]["accuracy"]["mean"] <= 1.0
    assert "accuracy" in (project / "results" / "results.md").read_text()
    assert (project / "results" / "results.png").stat().st_size > 1000


@pytest.mark.slow
def test_sample_plan_grid_execute_results_in_a_process_pool(cli: str, tmp_path: Path) -> None:
    """The issue's loop on the bundled sample (a real scikit-learn script): 6 real runs."""
    project, grid_file = sample_to_grid(cli, tmp_path)
    done = subprocess.run(
        [cli, "execute", str(grid_file), "--jobs", "2"],  # the grid's own command
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "execute: 6 ok, 0 failed" in done.stderr
    check_sample_results(cli, project, grid_file)


def test_a_second_execute_on_the_same_runs_folder_is_refused(tmp_path: Path) -> None:
    """Two executes on one runs folder would run the same runs twice and race on their files."""
    import fcntl

    project = make_project(tmp_path)
    (project / "runs").mkdir()
    with open(project / "runs" / ".execute.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(AblationKitError, match="another execute is running on this folder"):
            execute(make_grid(seeds=(0,), lrs=()), CMD, project=project)
    assert counts(project) == {}
    execute(make_grid(seeds=(0,), lrs=()), CMD, project=project)  # released: runs
    assert counts(project) == {"baseline--seed0": 1}


def test_a_runs_dir_that_is_a_file_is_one_line(cli: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    path = write_grid(project, make_grid(seeds=(0,), lrs=()))
    (project / "taken").write_text("a file")
    done = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD, "--runs-dir", "taken"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line == f"error: {project / 'taken'}: the runs folder cannot be made (File exists)"


def test_a_long_silence_gets_heartbeat_reports(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    events: list[Any] = []
    grid = make_grid(seeds=(0,), lrs=(), baseline={"sleep": 1.0})
    execute(grid, CMD, project=project, progress=events.append, heartbeat_seconds=0.2)
    beats = [e for e in events if e.heartbeat]
    assert beats and all(e.running == 1 and e.done == 0 and e.result is None for e in beats)
    assert events[-1].result is not None and events[-1].result.ok


def test_heartbeats_print_a_line_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    from ablationkit.cli_execute import _Reporter
    from ablationkit.runs.execute import Progress

    reporter = _Reporter(tty=False)
    reporter(Progress(0, 4, 1))
    reporter(Progress(1, 4, 1, running=2, heartbeat=True))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "execute: 4 runs to do (1 already done)"
    assert err[1].startswith("execute: 1/4 done, 0 failed, 2 under way, ETA ")


def test_cli_warns_when_told_to_run_outside_the_grids_project(cli: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    grid = make_grid(seeds=(0,), lrs=())
    grid.project, grid.config = str(other), "conf/config.yaml"
    path = write_grid(project, grid)
    done = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD, "--project", "."], cwd=project,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"warning: the grid is for the project {other}, not {project.resolve()}; "
        f"runs start in {project.resolve()}"
    )
    (other / "conf").mkdir()
    (other / "conf" / "config.yaml").write_text("seed: 0\n")
    again = subprocess.run(
        [cli, "execute", str(path), "--cmd", CMD, "--retry-failed"], cwd=other,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "warning" not in again.stderr
