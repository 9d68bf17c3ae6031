"""``execute --ray``: each run of a grid as a Ray task, on a local cluster or a running one.

Ray is an optional extra and is imported only here, only when asked for. A task runs the very
subprocess code of the local backend (:class:`ablationkit.runs.execute.Attempt`) in a scratch
folder on whichever node it lands, and sends back how the run ended with its output (stdout and
stderr up to their last ``MAX_STREAM_BYTES``), so the driver writes the same resume files as a
local run: nothing assumes the cluster shares this machine's disk.

On a running cluster (``address``) the project folder is shipped to the workers as the job's
``working_dir`` (Ray's runtime environment) and every run starts there; the workers need
ablationkit installed (``pip install ablationkit`` in the cluster's image or a ``pip``
runtime_env). A local cluster uses this folder as it is.

Interrupted, the driver does not use ``ray.cancel``: it raises a flag (a small actor) that
every task asks about once a second, and each task ends its own run. Ray's cancel races a task
that finishes at the same moment, and the driver then dies on a failed internal check (exit 1,
"Tried to complete task that was not pending"): 10 of 40 SIGTERMs sent while short runs were
ending, Ray 2.60 (``benchmarks/bench_ray_interrupt.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ablationkit.errors import AblationKitError
from ablationkit.runs.execute import (
    KILL_GRACE,
    STDERR,
    STDOUT,
    Attempt,
    Captured,
    RayOptions,
    RunResult,
    RunSpec,
    record_run,
)

MAX_STREAM_BYTES = 32 * 1024 * 1024  # per stream and run, sent back to the driver
WAIT_SECONDS = 1.0  # how often the driver wakes to check for Ctrl-C between results
STOP_CHECK_SECONDS = 1.0  # how often a run's task asks whether the driver was interrupted
FIRST_CHECK_SECONDS = 0.5  # how long a task waits for that answer before it starts its run


def _tail(path: Path, limit: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        data = handle.read()
    if size > limit:
        note = f"[ablationkit: the first {size - limit} bytes of this stream were cut]\n"
        data = note.encode() + data
    return data


class StopFlag:
    """Raised by the driver when it is interrupted (a Ray actor that needs no CPU)."""

    def __init__(self) -> None:
        self._raised = False

    def raise_flag(self) -> None:
        self._raised = True

    def is_raised(self) -> bool:
        return self._raised


class _FlagWatch:
    """A task's view of the :class:`StopFlag`: one question in flight at a time, at most one
    a second, never waited on during the run (the flag's actor may still be starting)."""

    def __init__(self, ray: Any, flag: Any) -> None:
        self._ray = ray
        self._flag = flag
        self._question: Any = flag.is_raised.remote()
        self._next_question = 0.0
        self.raised = False

    def __call__(self, timeout: float = 0.0) -> bool:
        if self.raised:
            return True
        if self._question is None:
            if time.monotonic() < self._next_question:
                return False
            self._question = self._flag.is_raised.remote()
        ready, _ = self._ray.wait([self._question], timeout=timeout)
        if ready:
            self._question = None
            self._next_question = time.monotonic() + STOP_CHECK_SECONDS
            # A lost flag (its node died) is no reason to end a run: a driver that dies has
            # its job's workers ended by Ray, and each run with them (its death signal).
            with contextlib.suppress(Exception):
                self.raised = bool(self._ray.get(ready[0]))
        return self.raised


def run_task(spec: RunSpec, flag: Any = None) -> Captured | None:
    """The body of one Ray task: run ``spec`` in a scratch folder and return what it left,
    or None when ``flag`` (a :class:`StopFlag`) was raised before the run could end."""
    watch = _FlagWatch(_import_ray(), flag) if flag is not None else None
    if watch is not None and watch(timeout=FIRST_CHECK_SECONDS):
        return None  # queued when the driver was interrupted: never started
    if spec.cwd == ".":  # a running cluster: the job's working_dir is the project
        spec = replace(spec, cwd=os.getcwd())
    work = Path(tempfile.mkdtemp(prefix="ablationkit-run-"))
    try:
        attempt = Attempt(spec, work)
        try:
            if not attempt.wait(stop=watch):
                return None
        except BaseException:  # cancelled (a notebook's own ray.cancel): end its group too
            attempt.kill()
            raise
        captured = attempt.captured()
        captured.stdout = _tail(work / STDOUT, MAX_STREAM_BYTES)
        captured.stderr = _tail(work / STDERR, MAX_STREAM_BYTES)
        return captured
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AblationKitError(
            "--ray needs Ray, which is not installed: pip install 'ablationkit[ray]'"
        ) from None
    return ray


def _runtime_env(specs: Sequence[tuple[RunSpec, Path]]) -> dict[str, Any]:
    """Ship the project to a running cluster, without its runs folder and git history."""
    project = Path(specs[0][0].cwd)
    excludes = [".git/"]
    runs_root = specs[0][1].parent
    if runs_root.is_relative_to(project):
        excludes.append(f"{runs_root.relative_to(project).as_posix()}/")
    return {"working_dir": str(project), "excludes": excludes}


def _task_failed(spec: RunSpec, error: BaseException) -> Captured:
    """A task that died without a result (its worker crashed, a node was lost)."""
    message = " ".join(f"{type(error).__name__}: {error}".split())[:500]
    return Captured(
        exit_code=None,
        timed_out=False,
        seconds=0.0,
        started_at="",
        host="",
        command=spec.command,
        stdout=b"",
        stderr=f"the Ray task failed: {message}\n".encode(),
    )


def _stop(ray: Any, flag: Any, refs: list[Any], cancel_leftovers: bool) -> None:
    """End the runs under way: raise the flag, and give every task the time to see it and
    end its run's process group (SIGTERM, then SIGKILL after ``KILL_GRACE``).

    A task still going after that is stuck; on a cluster this driver started, shutting it
    down ends it (and its run, by the run's death signal). On a cluster that outlives this
    call (a notebook's own), only a forced cancel can end it.
    """
    left = refs
    with contextlib.suppress(Exception):
        flag.raise_flag.remote()
        _, left = ray.wait(refs, num_returns=len(refs), timeout=STOP_CHECK_SECONDS + KILL_GRACE + 5)
    if cancel_leftovers:
        for ref in left:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def run_on_ray(
    specs: Sequence[tuple[RunSpec, Path]],
    options: RayOptions,
    finished: Callable[[RunResult], None],
    tick: Callable[[int], None] | None = None,
) -> None:
    """Submit every run as a task with its resources, record each as it finishes.

    Starts (and afterwards shuts down) a local cluster unless Ray is already initialised in
    this process (a notebook's own cluster is used as it is) or ``options.address`` names one.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to the internet
    if not options.address:
        # A local cluster talks over loopback, not this machine's network address (Ray's
        # single-machine mode on macOS and Windows; read when ray is imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if options.address:
            init["address"] = options.address
            init["runtime_env"] = _runtime_env(specs)
        else:
            # "local": a new cluster of our own, never one that `ray start` left behind (dead
            # or alive: ray.init() with no address joins whatever /tmp/ray names).
            init["address"] = "local"
            if options.num_cpus is not None:
                init["num_cpus"] = options.num_cpus
        handler = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(**init)
        except Exception as exc:
            where = options.address or "a local cluster"
            detail = " ".join(str(exc).split())[:300]
            raise AblationKitError(f"could not start Ray on {where}: {detail}") from None
        started_here = True
        if handler is not None and threading.current_thread() is threading.main_thread():
            # Ray's own SIGTERM handler ends the driver on the spot, and the cluster then
            # SIGKILLs its workers: ours (the CLI's) ends the runs first, below (_stop).
            signal.signal(signal.SIGTERM, handler)
    try:
        flag = ray.remote(StopFlag).options(num_cpus=0, max_restarts=0).remote()
        task = ray.remote(run_task).options(
            num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=0
        )
        pending: dict[Any, tuple[RunSpec, Path]] = {}
        for spec, run_dir in specs:
            if options.address:
                spec = replace(spec, cwd=".")
            pending[task.remote(spec, flag)] = (spec, run_dir)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    spec, run_dir = pending.pop(ref)
                    try:
                        captured = ray.get(ref)
                    except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
                        captured = _task_failed(spec, exc)
                    if captured is None:  # ended by the flag: raised only on interrupt
                        continue
                    finished(record_run(spec, run_dir, captured, "ray"))
                if tick is not None:
                    tick(len(pending))
        finally:
            if pending:  # interrupted: end the runs under way, then drop the rest
                _stop(ray, flag, list(pending), cancel_leftovers=not started_here)
    finally:
        if started_here:
            with contextlib.suppress(Exception):
                ray.shutdown()
