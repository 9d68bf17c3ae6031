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
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
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


def run_task(spec: RunSpec) -> Captured:
    """The body of one Ray task: run ``spec`` in a scratch folder and return what it left."""
    if spec.cwd == ".":  # a running cluster: the job's working_dir is the project
        spec = replace(spec, cwd=os.getcwd())
    work = Path(tempfile.mkdtemp(prefix="ablationkit-run-"))
    try:
        attempt = Attempt(spec, work)
        try:
            attempt.wait()
        except BaseException:  # cancelled: end the run's process group too
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


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel tasks so that their runs end: a running task gets KeyboardInterrupt and ends
    its run's process group (``run_task``); what has not ended after a grace period, or had
    not started, is then force-cancelled."""
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=False)
    with contextlib.suppress(Exception):
        ray.wait(refs, num_returns=len(refs), timeout=KILL_GRACE + 5)
    for ref in refs:
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
            # SIGKILLs its workers: ours (the CLI's) cancels the runs first, below.
            signal.signal(signal.SIGTERM, handler)
    try:
        task = ray.remote(run_task).options(
            num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=0
        )
        pending: dict[Any, tuple[RunSpec, Path]] = {}
        for spec, run_dir in specs:
            if options.address:
                spec = replace(spec, cwd=".")
            pending[task.remote(spec)] = (spec, run_dir)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    spec, run_dir = pending.pop(ref)
                    try:
                        captured = ray.get(ref)
                    except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
                        captured = _task_failed(spec, exc)
                    finished(record_run(spec, run_dir, captured, "ray"))
                if tick is not None:
                    tick(len(pending))
        finally:
            if pending:  # interrupted: end the runs under way, then drop the rest
                _cancel(ray, list(pending))
    finally:
        if started_here:
            with contextlib.suppress(Exception):
                ray.shutdown()
