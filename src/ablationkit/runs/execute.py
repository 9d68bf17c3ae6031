"""``execute``: run every entry of a grid with the user's command, locally or on Ray.

Resumable by construction: a run's files (``stdout.txt``, ``stderr.txt``, ``result.json``) are
put in place only when the run has ended, ``result.json`` last, so a run with a ``result.json``
is finished (skipped next time) and a run without one was killed or never started (redone).
While it runs, its output goes to a private ``.attempt-*`` folder inside its run folder, which
a later attempt clears. A failed run is recorded like a finished one (exit code, the tail of
its stderr) and the other runs go on; ``retry_failed`` runs the failed ones again.

The command is the user's shell line with placeholders: ``{overrides}`` (the run's overrides as
shell-quoted words in the grid's style), ``{seed}``, ``{run_id}`` and ``{metrics_file}``. Every
value is quoted with :func:`shlex.quote`: grid values come from a model and from file edits, and
``lr=1;rm -rf ~`` must reach the script as one word, not run. Metrics are the last line of
stdout that is a JSON object, or the ``metrics_file`` the command writes (its path is also in
the environment as ``ABLATIONKIT_METRICS_FILE``).

Locally the runs are subprocesses of one loop (``jobs`` at a time, polled; no threads), each in
its own process group so a timeout or Ctrl-C ends the whole tree it started; on Linux a child
also dies with this process (``PR_SET_PDEATHSIG``), so a killed ``execute`` leaves no orphans
writing on. On Ray (:mod:`ablationkit.runs.ray_backend`) each run is a task running the same
subprocess code, and the driver writes the same files.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ablationkit.errors import AblationKitError, FormatError, describe_validation
from ablationkit.fsutil import atomic_write_bytes, atomic_write_text, load_json, set_aside
from ablationkit.runs.model import Grid, GridRun, OverrideValue, render_overrides
from ablationkit.sandbox import (
    is_inside,
    open_regular,
    require_inside,
    resolve_file,
    unsafe_name_reason,
)

RESULT_FORMAT = "ablationkit.run/1"
STDOUT, STDERR, RESULT = "stdout.txt", "stderr.txt", "result.json"
ATTEMPT_PREFIX = ".attempt-"
LOCK = ".execute.lock"
METRICS_ENV = "ABLATIONKIT_METRICS_FILE"
RUN_ID_ENV = "ABLATIONKIT_RUN_ID"
SEED_ENV = "ABLATIONKIT_SEED"
PLACEHOLDERS = ("overrides", "seed", "run_id", "metrics_file")
TAIL_CHARS = 2000  # of stderr, kept in result.json (the whole stream is in stderr.txt)
SCAN_BYTES = 1 << 20  # the end of stdout searched for the metrics line
MAX_METRICS_FILE = 1 << 20  # a metrics file is a few numbers; more is not read
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a run's process group
MAX_METRIC_DEPTH = 3  # {"val": {"acc": 0.9}} -> "val.acc"; deeper parts are ignored

Status = Literal["ok", "failed", "timeout"]


class RunResult(BaseModel):
    """``runs/<run_id>/result.json``: how one run ended and what it measured.

    Written last and atomically, so its presence is what "finished" means to a resume.
    """

    format: Literal["ablationkit.run/1"] = "ablationkit.run/1"
    run_id: str
    ablation: str
    variant: str
    seed: int
    overrides: dict[str, OverrideValue]
    command: str = Field(description="The shell line as run (placeholders filled).")
    status: Status
    exit_code: int | None = Field(description="None when the run was killed for its timeout.")
    error: str | None = Field(default=None, description="One line: why the run failed.")
    stderr_tail: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    metrics_source: Literal["stdout", "metrics-file"] | None = None
    seconds: float
    started_at: str
    backend: Literal["local", "ray"] = "local"
    host: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to run one grid entry (picklable: Ray ships it to a task)."""

    run: GridRun
    command: str  # placeholders filled, except {metrics_file} (known only where it runs)
    cwd: str
    timeout: float | None = None
    metrics_name: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Captured:
    """How a run's process ended and what it left (paths locally, bytes from a Ray task)."""

    exit_code: int | None
    timed_out: bool
    seconds: float
    started_at: str
    host: str
    command: str
    stdout: Path | bytes
    stderr: Path | bytes
    metrics_text: str | None = None
    metrics_problem: str | None = None


@dataclass
class Progress:
    """One report to the caller: a run ended (``result``), or the start (no result), or a
    ``heartbeat``: nothing ended for a while, ``running`` runs are under way (a log of runs
    that take hours shows it is alive)."""

    done: int
    total: int
    skipped: int
    result: RunResult | None = None
    running: int = 0
    heartbeat: bool = False


@dataclass
class ExecuteReport:
    runs_dir: Path
    total: int
    skipped: list[str] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if not r.ok]


@dataclass(frozen=True)
class RayOptions:
    """``--ray``: a local cluster (``address`` None) or a running one; per-run resources."""

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    num_cpus: int | None = None  # of a local cluster; None: Ray counts this machine's cores


ProgressCallback = Callable[[Progress], None]


# --- the grid file --------------------------------------------------------------------------


def load_grid(path: str | Path) -> Grid:
    """The grid file, validated; any problem is a one-line :class:`FormatError` naming it."""
    path = Path(path)
    try:
        with open_regular(path) as handle:
            raw = handle.read(64 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise FormatError("no such file", where=path) from None
    except IsADirectoryError:
        raise FormatError("is a directory, not a grid file", where=path) from None
    except OSError as exc:
        raise FormatError(f"cannot read ({exc.strerror or exc})", where=path) from None
    if len(raw) > 64 * 1024 * 1024:
        raise FormatError("larger than 64 MiB: not a grid file", where=path)
    try:
        data = load_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"not valid JSON ({exc})", where=path) from None
    if not isinstance(data, dict):
        raise FormatError("not a grid: the file holds no JSON object", where=path)
    try:
        return Grid.model_validate(data)
    except ValidationError as exc:
        raise FormatError(f"not a grid file: {describe_validation(exc)}", where=path) from None


# --- the command line -----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def check_command(template: str) -> None:
    """A command that cannot tell runs apart is refused before anything runs."""
    if not template.strip():
        raise AblationKitError("--cmd is empty")
    if "{overrides}" not in template:
        raise AblationKitError(
            "--cmd has no {overrides}: every run would be the same command "
            '(e.g. --cmd "python train.py {overrides}")'
        )


def fill_command(template: str, values: dict[str, str]) -> str:
    """``template`` with the known placeholders replaced by ``values`` (already quoted).

    Only our names are touched: a user's own braces (``python -c "{...}"``, ``${HOME}``) stay
    as they are, which ``str.format`` would not allow. A placeholder missing from ``values``
    is left for a later fill (``{metrics_file}`` is filled where the run executes).
    """
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def command_for(grid: Grid, run: GridRun, template: str) -> str:
    """The shell line of one run, every value shell-quoted, ``{metrics_file}`` left open."""
    words = render_overrides(grid, run.overrides)
    return fill_command(
        template,
        {
            "overrides": " ".join(shlex.quote(w) for w in words),
            "seed": shlex.quote(str(run.seed)),
            "run_id": shlex.quote(run.run_id),
        },
    )


# --- one run, wherever it executes ----------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _death_signal_setter() -> Callable[[], None] | None:
    """Linux: a function for the child (between fork and exec) that asks for SIGTERM when the
    process that started it dies, even by SIGKILL (``PR_SET_PDEATHSIG``).

    ``prctl`` is looked up here, in the parent: the child must not load a library (``dlopen``
    can deadlock after a fork in a threaded process, and a Ray worker is one); it only calls a
    function already resolved.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def set_death_signal() -> None:  # pragma: no cover - runs in the child
        prctl(pr_set_pdeathsig, sigterm)

    return set_death_signal


_DEATH_SIGNAL = _death_signal_setter()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End a run's whole process group: SIGTERM, then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def is_simple(command: str) -> bool:
    """Whether ``command`` is one simple command (``python train.py a=1``): no lists, pipes,
    redirections, subshells or leading ``VAR=value`` (quoted characters do not count)."""
    if "\n" in command:
        return False
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: let the shell say so
        return False
    if not tokens or _ASSIGNMENT.match(tokens[0]):
        return False
    return not any(token and set(token) <= set("();<>|&") for token in tokens)


def _guarded(command: str) -> str:
    """The user's shell line, run so that its script dies with ``execute``.

    The death signal (``PR_SET_PDEATHSIG``) reaches only the process we start, and Ray kills a
    dead worker's children with SIGKILL: a shell between us and the script would die and leave
    the script running as an orphan. A simple command is therefore ``exec``-ed (the script
    *is* the process we started). A compound line runs in a background subshell the shell waits
    for, and a SIGTERM to the shell (on timeout, or when ``execute`` dies) is passed to the
    run's whole process group; only a SIGKILL of that shell can orphan it. Newlines around the
    line keep a trailing ``# comment`` from hiding the closing parenthesis.
    """
    if is_simple(command):
        return f"exec {command}"
    return f"trap 'trap - TERM; kill -TERM 0' TERM\n(\n{command}\n) &\nwait $!\n"


class Attempt:
    """One run's process, started in ``work`` (its private folder) and waited on.

    Used by the local loop (``poll``) and by a Ray task (``wait``), so both backends start,
    time out and read a run the same way.
    """

    def __init__(self, spec: RunSpec, work: Path) -> None:
        self.spec = spec
        self.work = work
        self.metrics_path = work / spec.metrics_name if spec.metrics_name else None
        self.command = fill_command(
            spec.command,
            {"metrics_file": shlex.quote(str(self.metrics_path)) if self.metrics_path else "''"},
        )
        env = {
            **os.environ,
            **spec.env,
            RUN_ID_ENV: spec.run.run_id,
            SEED_ENV: str(spec.run.seed),
        }
        if self.metrics_path is not None:
            env[METRICS_ENV] = str(self.metrics_path)
        self.started_at = _utc_now()
        self.start = time.monotonic()
        self.deadline = self.start + spec.timeout if spec.timeout else None
        self.timed_out = False
        with open(work / STDOUT, "wb") as out, open(work / STDERR, "wb") as err:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                ["/bin/sh", "-c", _guarded(self.command)],
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_DEATH_SIGNAL,
            )

    def poll(self) -> bool:
        """Whether the run has ended (killing it first if its time is up)."""
        if self.proc.poll() is not None:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.timed_out = True
            _kill_group(self.proc)
            return True
        return False

    def wait(self, poll_seconds: float = 0.1, stop: Callable[[], bool] | None = None) -> bool:
        """Block until the run ends or its time is up: True, or False when ``stop()`` asked
        for it to end first (the run's process group is then ended, as on Ctrl-C).

        Polled rather than one blocking ``waitpid``, so that ``stop`` is asked between polls
        and an exception raised in this thread (a Ray task's cancel) is raised at once, never
        after a wait that lasts as long as the run.
        """
        while not self.poll():
            if stop is not None and stop():
                self.kill()
                return False
            time.sleep(poll_seconds)
        return True

    def kill(self) -> None:
        _kill_group(self.proc)

    def captured(self) -> Captured:
        """What the ended run left, with its metrics file read through the sandbox."""
        metrics_text, problem = None, None
        if self.spec.metrics_name:
            metrics_text, problem = _read_metrics_file(self.work, self.spec.metrics_name)
        return Captured(
            exit_code=None if self.timed_out else self.proc.returncode,
            timed_out=self.timed_out,
            seconds=round(time.monotonic() - self.start, 3),
            started_at=self.started_at,
            host=socket.gethostname(),
            command=self.command,
            stdout=self.work / STDOUT,
            stderr=self.work / STDERR,
            metrics_text=metrics_text,
            metrics_problem=problem,
        )


def _read_metrics_file(work: Path, name: str) -> tuple[str | None, str | None]:
    """The metrics file's text, or why there is none (a link out of the run is refused)."""
    path, reason = resolve_file(work, name)
    if path is None:
        return None, None if reason == "not found" else f"metrics file {name!r}: {reason}"
    try:
        with open_regular(path) as handle:
            raw = handle.read(MAX_METRICS_FILE + 1)
    except OSError as exc:
        return None, f"metrics file {name!r}: cannot read ({exc})"
    if len(raw) > MAX_METRICS_FILE:
        return None, f"metrics file {name!r}: larger than {MAX_METRICS_FILE} bytes"
    return raw.decode("utf-8", errors="replace"), None


# --- metrics and the run's record -----------------------------------------------------------


def numeric_metrics(data: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics object; nested objects as dotted names.

    Strings, lists, booleans, NaN and infinities are not metrics one can average.
    """
    out: dict[str, float] = {}
    stack: list[tuple[str, dict[str, Any], int]] = [("", data, 1)]
    while stack:
        prefix, obj, depth = stack.pop(0)
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                if math.isfinite(value):
                    out[name] = float(value)
            elif isinstance(value, dict) and depth < MAX_METRIC_DEPTH:
                stack.append((f"{name}.", value, depth + 1))
    return out


def metrics_from_text(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (a training log prints much else)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            value = load_json(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _tail_bytes(source: Path | bytes, limit: int) -> bytes:
    if isinstance(source, bytes):
        return source[-limit:]
    try:
        with open(source, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read()
    except OSError:
        return b""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def judge_run(spec: RunSpec, captured: Captured, backend: Literal["local", "ray"]) -> RunResult:
    """Turn how a run ended into its record: ok only if it exited 0 *and* left metrics."""
    stdout_tail = _tail_bytes(captured.stdout, SCAN_BYTES).decode("utf-8", errors="replace")
    stderr_tail = _tail_bytes(captured.stderr, TAIL_CHARS * 4).decode("utf-8", errors="replace")
    stderr_tail = stderr_tail[-TAIL_CHARS:]
    raw: dict[str, Any] | None = None
    source: Literal["stdout", "metrics-file"] | None = None
    if captured.metrics_text is not None:
        try:
            value = load_json(captured.metrics_text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            raw, source = value, "metrics-file"
    if raw is None:
        raw = metrics_from_text(stdout_tail)
        source = "stdout" if raw is not None else None
    metrics = numeric_metrics(raw) if raw is not None else {}
    status: Status = "ok"
    error: str | None = None
    code = captured.exit_code
    if captured.timed_out:
        status = "timeout"
        error = f"timed out after {spec.timeout:g} s"
    elif code is None or code != 0:
        status = "failed"
        if code is None:
            error = "ended without an exit code"
        elif code < 0:
            error = f"killed by signal {_signal_name(-code)}"
        elif code > 128 and _signal_name(code - 128) != str(code - 128):
            error = f"exit code {code} ({_signal_name(code - 128)})"  # the shell's 128+n
        else:
            error = f"exit code {code}"
        last = [line for line in stderr_tail.splitlines() if line.strip()]
        if last:
            error += f": {_one_line(last[-1], 200)}"
    elif not metrics:
        status = "failed"
        where = f" and wrote no metrics file {spec.metrics_name!r}" if spec.metrics_name else ""
        error = f"exited 0 but printed no JSON object line with numbers on stdout{where}"
    if captured.metrics_problem and status == "ok" and source != "metrics-file":
        error = captured.metrics_problem  # ok from stdout, but say why the file was not used
    elif captured.metrics_problem and status != "ok":
        error = f"{error}; {captured.metrics_problem}"
    run = spec.run
    return RunResult(
        run_id=run.run_id,
        ablation=run.ablation,
        variant=run.variant,
        seed=run.seed,
        overrides=run.overrides,
        command=captured.command,
        status=status,
        exit_code=code,
        error=error,
        stderr_tail=stderr_tail,
        metrics=metrics,
        metrics_source=source if metrics else None,
        seconds=captured.seconds,
        started_at=captured.started_at,
        backend=backend,
        host=captured.host,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _put(source: Path | bytes, target: Path) -> None:
    """Move a finished stream into place (a rename locally; bytes from Ray written atomically)."""
    if isinstance(source, bytes):
        atomic_write_bytes(target, source)
        return
    with open(source, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(source, target)


def record_run(
    spec: RunSpec, run_dir: Path, captured: Captured, backend: Literal["local", "ray"]
) -> RunResult:
    """Judge the run and put its files in place, ``result.json`` last (the finish line)."""
    result = judge_run(spec, captured, backend)
    _put(captured.stdout, run_dir / STDOUT)
    _put(captured.stderr, run_dir / STDERR)
    if spec.metrics_name and captured.metrics_text is not None:
        atomic_write_text(run_dir / spec.metrics_name, captured.metrics_text)
    atomic_write_text(run_dir / RESULT, result.model_dump_json(indent=2) + "\n")
    return result


def read_result(runs_dir: Path, run_id: str) -> RunResult | None:
    """A run's ``result.json`` if it is there, inside ``runs_dir`` (links followed) and valid;
    None otherwise (never raises)."""
    path, _ = resolve_file(runs_dir, f"{run_id}/{RESULT}")
    if path is None:
        return None
    try:
        with open_regular(path) as handle:
            return RunResult.model_validate(load_json(handle.read(MAX_METRICS_FILE * 4)))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


# --- the whole grid -------------------------------------------------------------------------


def _prepare_run_dir(runs_dir: Path, run: GridRun) -> Path:
    """The run's folder, made inside ``runs_dir``; a name or link leading out is refused."""
    reason = unsafe_name_reason(run.run_id)
    if reason or "/" in run.run_id or run.run_id in {".", ".."}:
        raise FormatError(f"run id {run.run_id!r}: not a plain name; refused", where=runs_dir)
    run_dir = runs_dir / run.run_id
    if not run_dir.is_symlink() and not run_dir.exists():
        run_dir.mkdir(parents=True)
    require_inside(runs_dir, run_dir, what=f"run folder {run.run_id}")
    if not run_dir.is_dir():
        raise FormatError(f"run folder {run.run_id!r}: not a directory", where=runs_dir)
    return run_dir


def runs_to_do(
    grid: Grid, runs_dir: Path, *, retry_failed: bool = False
) -> tuple[list[GridRun], list[str]]:
    """The runs still to execute and the ids of those already finished (skipped).

    A run whose ``result.json`` is damaged is set aside and redone; one whose overrides no
    longer match the grid (the file was edited since) is redone, since its record would show
    the new label over the old setting.
    """
    todo: list[GridRun] = []
    skipped: list[str] = []
    for run in grid.runs():
        run_dir = runs_dir / run.run_id
        path = run_dir / RESULT
        if not is_inside(runs_dir, run_dir) or not (path.exists() or path.is_symlink()):
            todo.append(run)  # a folder leading out is refused when it is prepared
            continue
        result = read_result(runs_dir, run.run_id)
        if result is None:
            set_aside(path, "not a valid run result", "the run is redone")
            todo.append(run)
        elif result.overrides != run.overrides:
            todo.append(run)
        elif result.ok or not retry_failed:
            skipped.append(run.run_id)
        else:
            todo.append(run)
    return todo, skipped


def _clear_attempts(run_dir: Path) -> None:
    """Remove what killed attempts left (their output was never taken as a result)."""
    for child in run_dir.iterdir():
        if child.name.startswith(ATTEMPT_PREFIX) and child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)


def execute(
    grid: Grid,
    command: str,
    *,
    project: str | Path = ".",
    runs_dir: str | Path | None = None,
    jobs: int | None = None,
    metrics_file: str | None = None,
    timeout: float | None = None,
    retry_failed: bool = False,
    ray: RayOptions | None = None,
    progress: ProgressCallback | None = None,
    env: dict[str, str] | None = None,
    heartbeat_seconds: float = 60.0,
) -> ExecuteReport:
    """Run every unfinished entry of ``grid`` in ``project`` and record it under ``runs_dir``
    (default ``project/runs``); returns what ran, what was skipped and what failed.

    ``jobs`` runs at a time locally (default 1); with ``ray`` each run is a Ray task instead.
    Interrupted (Ctrl-C, SIGTERM), it ends the runs it started before it returns the error.
    """
    check_command(command)
    if jobs is not None and jobs < 1:
        raise AblationKitError(f"--jobs must be at least 1, not {jobs}")
    if timeout is not None and timeout <= 0:
        timeout = None
    if metrics_file is not None:
        reason = unsafe_name_reason(metrics_file)
        if reason or ".." in Path(metrics_file).parts:
            raise AblationKitError(
                f"--metrics-file {metrics_file!r}: {reason or 'climbs out of the run folder'}; "
                "give a file name inside the run folder"
            )
        if metrics_file in {STDOUT, STDERR, RESULT} or metrics_file.startswith(ATTEMPT_PREFIX):
            raise AblationKitError(f"--metrics-file {metrics_file!r}: a name execute uses itself")
    project = Path(project).resolve()
    if not project.is_dir():
        raise AblationKitError("the project folder does not exist", where=project)
    runs_root = Path(runs_dir) if runs_dir is not None else project / "runs"
    if not runs_root.is_absolute():
        runs_root = project / runs_root
    try:
        runs_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FormatError(
            f"the runs folder cannot be made ({exc.strerror or exc})", where=runs_root
        ) from None
    with _exclusive(runs_root):
        return _execute(
            grid, command, project, runs_root, jobs, metrics_file, timeout, retry_failed,
            ray, progress, env, heartbeat_seconds,
        )  # fmt: skip


@contextlib.contextmanager
def _exclusive(runs_root: Path) -> Iterator[None]:
    """One ``execute`` per runs folder: a second one would start the same unfinished runs and
    race the first on their files. An advisory lock, so a killed ``execute`` frees it at once."""
    import fcntl

    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(runs_root / LOCK, flags, 0o644)
    except OSError as exc:
        why = "a symbolic link; refused" if (runs_root / LOCK).is_symlink() else exc.strerror
        raise FormatError(f"{LOCK}: {why}", where=runs_root) from None
    handle = os.fdopen(fd, "r+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AblationKitError(
                "another execute is running on this folder; wait for it or use --runs-dir",
                where=runs_root,
            ) from None
        yield
    finally:
        handle.close()


def _execute(
    grid: Grid,
    command: str,
    project: Path,
    runs_root: Path,
    jobs: int | None,
    metrics_file: str | None,
    timeout: float | None,
    retry_failed: bool,
    ray: RayOptions | None,
    progress: ProgressCallback | None,
    env: dict[str, str] | None,
    heartbeat_seconds: float,
) -> ExecuteReport:
    started = time.monotonic()
    todo, skipped = runs_to_do(grid, runs_root, retry_failed=retry_failed)
    specs: list[tuple[RunSpec, Path]] = []
    for run in todo:
        run_dir = _prepare_run_dir(runs_root, run)
        spec = RunSpec(
            run=run,
            command=command_for(grid, run, command),
            cwd=str(project),
            timeout=timeout,
            metrics_name=metrics_file,
            env=dict(env or {}),
        )
        specs.append((spec, run_dir))
    report = ExecuteReport(runs_dir=runs_root, total=len(todo) + len(skipped), skipped=skipped)

    last_report = [time.monotonic()]

    def finished(result: RunResult) -> None:
        report.results.append(result)
        last_report[0] = time.monotonic()
        if progress is not None:
            progress(Progress(len(report.results), len(todo), len(skipped), result))

    def tick(running: int) -> None:
        now = time.monotonic()
        if progress is not None and now - last_report[0] >= heartbeat_seconds:
            last_report[0] = now
            done = len(report.results)
            progress(Progress(done, len(todo), len(skipped), running=running, heartbeat=True))

    if progress is not None:
        progress(Progress(0, len(todo), len(skipped)))
    if specs:
        if ray is not None:
            from ablationkit.runs.ray_backend import run_on_ray

            run_on_ray(specs, ray, finished, tick)
        else:
            run_locally(specs, jobs or 1, finished, tick)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def run_locally(
    specs: Sequence[tuple[RunSpec, Path]],
    jobs: int,
    finished: Callable[[RunResult], None],
    tick: Callable[[int], None] | None = None,
    *,
    poll_seconds: float = 0.05,
) -> None:
    """At most ``jobs`` runs at once, each a subprocess polled by this one thread; ``tick``
    hears how many are under way at every poll."""
    pending: deque[tuple[RunSpec, Path]] = deque(specs)
    live: list[tuple[Attempt, Path]] = []
    try:
        while pending or live:
            while pending and len(live) < jobs:
                spec, run_dir = pending.popleft()
                _clear_attempts(run_dir)
                work = Path(tempfile.mkdtemp(prefix=ATTEMPT_PREFIX, dir=run_dir))
                live.append((Attempt(spec, work), run_dir))
            time.sleep(poll_seconds)
            for item in list(live):
                attempt, run_dir = item
                if attempt.poll():
                    live.remove(item)
                    result = record_run(attempt.spec, run_dir, attempt.captured(), "local")
                    shutil.rmtree(attempt.work, ignore_errors=True)
                    finished(result)
            if tick is not None:
                tick(len(live))
    finally:
        for attempt, _ in live:  # interrupted: end what we started, record nothing
            attempt.kill()


def summarize(results: Iterable[RunResult]) -> str:
    """``3 ok, 1 failed`` for the progress lines."""
    results = list(results)
    ok = sum(r.ok for r in results)
    return f"{ok} ok, {len(results) - ok} failed"
