"""The ``execute`` and ``results`` commands (issue 14): a grid's runs, then its table.

Kept out of ``cli.py`` so that file stays a list of planning commands; ``register(app)`` adds
these two. Like every command they are thin: the work is in :mod:`ablationkit.runs.execute`
and :mod:`ablationkit.runs.results`, which a notebook calls the same way.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ablationkit.runs.execute import ExecuteReport, Progress, RunResult
    from ablationkit.runs.results import ResultsTable

LINE_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def _eta(elapsed: float, done: int, total: int) -> str:
    if done == 0 or done >= total:
        return "—"
    seconds = int(elapsed / done * (total - done))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _run_line(result: RunResult) -> str:
    if result.ok:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(result.metrics.items())[:3])
        return f"{result.run_id} ok in {result.seconds:.1f} s ({shown})"
    return f"{result.run_id} {result.status}: {result.error}"


class _Reporter:
    """A rich bar with ETA on a terminal; otherwise a line per failure and every 10 s."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.start = time.monotonic()
        self.last_line = 0.0
        self.bar: Any = None
        self.task: Any = None
        self.failed = 0

    def __call__(self, event: Progress) -> None:
        if event.heartbeat:
            if not self.tty:  # a bar shows its own clock
                eta = _eta(time.monotonic() - self.start, event.done, event.total)
                typer.echo(
                    f"execute: {event.done}/{event.total} done, {self.failed} failed, "
                    f"{event.running} under way, ETA {eta}",
                    err=True,
                )
            return
        if event.result is None:
            self._begin(event)
            return
        if not event.result.ok:
            self.failed += 1
        if self.tty:
            self.bar.update(self.task, completed=event.done, last=event.result.run_id[:40])
            if not event.result.ok:
                from rich.text import Text

                self.bar.console.print(Text(_run_line(event.result), style="red"))
            return
        now = time.monotonic()
        if not event.result.ok or now - self.last_line >= LINE_EVERY or event.done == event.total:
            self.last_line = now
            eta = _eta(now - self.start, event.done, event.total)
            typer.echo(
                f"execute: {event.done}/{event.total} done, {self.failed} failed, ETA {eta}; "
                f"{_run_line(event.result)}",
                err=True,
            )

    def _begin(self, event: Progress) -> None:
        already = f" ({event.skipped} already done)" if event.skipped else ""
        typer.echo(f"execute: {event.total} runs to do{already}", err=True)
        if self.tty and event.total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]execute"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("[dim]{task.fields[last]}"),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task("execute", total=event.total, last="")
            self.bar.start()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _project_of(grid: Any, given: Path | None) -> Path:
    """Where runs start: ``--project``, else the folder the grid was made for (so `execute`
    works from anywhere), else — a grid moved to another machine — the current folder."""
    if given is not None:
        return given.resolve()
    recorded = Path(grid.project)
    if recorded.is_absolute() and recorded.is_dir():
        return recorded
    return Path.cwd().resolve()


def _project_warning(grid: Any, here: Path) -> str | None:
    """Runs start in the current folder: say so when it does not look like the grid's project
    (its config missing here, and the grid names another folder), before a whole grid fails
    with 'No such file'."""
    if grid.config and (here / grid.config).is_file():
        return None
    project = Path(grid.project)
    if project.is_absolute() and project.is_dir() and project.resolve() != here.resolve():
        return f"the grid is for the project {project}, not {here}; runs start in {here}"
    if grid.config and not Path(grid.config).is_absolute():
        return f"{here} has no {grid.config} (the grid's config); runs start there"
    return None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the runs we started, like Ctrl-C


def _summary(report: ExecuteReport) -> None:
    failed = report.failed
    ok = len(report.results) - len(failed)
    typer.echo(
        f"execute: {ok} ok, {len(failed)} failed, {len(report.skipped)} already done, "
        f"{report.seconds:.1f} s; records in {report.runs_dir}",
        err=True,
    )
    for result in failed:
        typer.echo(f"  {result.run_id}: {result.status}: {result.error}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``execute`` and ``results`` to the ``ablationkit`` command line."""

    @app.command("execute")
    def execute_command(
        grid_file: Annotated[Path, typer.Argument(help="The grid file (from `grid`).")],
        cmd: Annotated[
            str | None,
            typer.Option(
                "--cmd",
                help="Shell command of one run, run in the project folder (here): {overrides} "
                "(required), {seed}, {run_id}, {metrics_file}; values are shell-quoted. "
                "Default: the grid's own command (what `grid` found).",
            ),
        ] = None,
        jobs: Annotated[
            int | None,
            typer.Option(
                "--jobs",
                "-j",
                min=1,
                help="Runs at once (default 1; with --ray: a local cluster of jobs x "
                "--cpus-per-run CPUs, default all cores).",
            ),
        ] = None,
        project: Annotated[
            Path | None,
            typer.Option(
                "--project",
                help="The experiment folder runs start in (default: the grid's project, "
                "else here).",
            ),
        ] = None,
        runs_dir: Annotated[
            Path,
            typer.Option(
                "--runs-dir", help="Where each run's files go (relative: in the project)."
            ),
        ] = Path("runs"),
        metrics_file: Annotated[
            str | None,
            typer.Option(
                "--metrics-file",
                help="A JSON file the command writes in its run folder (path in {metrics_file} "
                "and $ABLATIONKIT_METRICS_FILE); default: the last JSON line on stdout.",
            ),
        ] = None,
        ray: Annotated[bool, typer.Option("--ray", help="Run each entry as a Ray task.")] = False,
        ray_address: Annotated[
            str | None,
            typer.Option("--ray-address", help="A running Ray cluster (implies --ray)."),
        ] = None,
        cpus_per_run: Annotated[
            float, typer.Option("--cpus-per-run", min=0.01, help="Ray CPUs per run.")
        ] = 1.0,
        gpus_per_run: Annotated[
            float, typer.Option("--gpus-per-run", min=0.0, help="Ray GPUs per run.")
        ] = 0.0,
        timeout: Annotated[
            float, typer.Option("--timeout", min=0.0, help="Seconds per run (0: no limit).")
        ] = 0.0,
        retry_failed: Annotated[
            bool, typer.Option("--retry-failed", help="Run failed runs again.")
        ] = False,
    ) -> None:
        """Run every entry of a grid here (or on Ray); resumable, finished runs are skipped."""
        from ablationkit.cli import _user_errors
        from ablationkit.errors import AblationKitError
        from ablationkit.runs.execute import RayOptions, execute, load_grid

        reporter = _Reporter(sys.stderr.isatty())
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            with _user_errors():
                grid = load_grid(grid_file)
                command = cmd or grid.command
                if not command:
                    raise AblationKitError(
                        'no command: give --cmd (e.g. --cmd "python train.py {overrides}"); '
                        "the grid file names none",
                        where=grid_file,
                    )
                here = _project_of(grid, project)
                warning = _project_warning(grid, here)
                if warning:
                    typer.echo(f"warning: {warning}", err=True)
                options = None
                if ray or ray_address:
                    num_cpus = None if jobs is None else max(1, round(jobs * cpus_per_run))
                    options = RayOptions(ray_address, cpus_per_run, gpus_per_run, num_cpus)
                report = execute(
                    grid,
                    command,
                    project=here,
                    runs_dir=runs_dir,
                    jobs=jobs,
                    metrics_file=metrics_file,
                    timeout=timeout or None,
                    retry_failed=retry_failed,
                    ray=options,
                    progress=reporter,
                )
        except KeyboardInterrupt:
            reporter.close()  # the bar first, so the line below stays readable
            typer.echo("execute: interrupted; the runs under way were ended", err=True)
            raise typer.Exit(130) from None
        finally:
            reporter.close()
            signal.signal(signal.SIGTERM, previous)
        _summary(report)
        if report.failed:
            raise typer.Exit(1)

    @app.command("results")
    def results_command(
        grid_file: Annotated[Path, typer.Argument(help="The grid file the runs came from.")],
        project: Annotated[
            Path | None,
            typer.Option(
                "--project", help="The experiment folder (default: the grid's project, else here)."
            ),
        ] = None,
        runs_dir: Annotated[
            Path,
            typer.Option(
                "--runs-dir", help="The runs folder of `execute` (relative: in the project)."
            ),
        ] = Path("runs"),
        out: Annotated[
            Path, typer.Option("-o", "--out", help="Folder for results.md/.tex/.json/.png.")
        ] = Path("results"),
        lower: Annotated[
            list[str] | None,
            typer.Option("--lower-is-better", help="A metric whose lower values are better."),
        ] = None,
        higher: Annotated[
            list[str] | None,
            typer.Option("--higher-is-better", help="A metric whose higher values are better."),
        ] = None,
        metric: Annotated[
            list[str] | None,
            typer.Option("--metric", help="Show only this metric (repeat; default: all)."),
        ] = None,
    ) -> None:
        """The ablation table (mean ± std over seeds, Δ from the baseline) and its chart."""
        from ablationkit.cli import _user_errors
        from ablationkit.runs.execute import load_grid
        from ablationkit.runs.results import collect, write_results

        with _user_errors():
            grid = load_grid(grid_file)
            if not runs_dir.is_absolute():
                runs_dir = _project_of(grid, project) / runs_dir
            table = collect(
                grid, runs_dir, lower=lower or (), higher=higher or (), metrics=metric or ()
            )
            written = write_results(table, out)
        _print_table(table)
        for kind, path in written.items():
            typer.echo(f"{kind}: {path}", err=True)
        missing = len(table.problems)
        if missing:
            typer.echo(f"results: {missing} runs without numbers (listed above)", err=True)


def _print_table(table: ResultsTable) -> None:
    """The table on stdout with rich (best green, worst red), then the runs without numbers."""
    from rich.console import Console
    from rich.table import Table

    from ablationkit.runs.results import legend, table_view

    view = table_view(table)
    console = Console()
    grid = Table(title=f"{table.paper_id}: ablations", title_justify="left")
    for i, name in enumerate(view.header):
        grid.add_column(name, justify="left" if i < 2 else "right")
    for row, cells in zip(table.rows, view.rows, strict=True):
        texts = []
        for text, mark in cells:
            style = "bold green" if mark == "best" else "red" if mark == "worst" else ""
            texts.append(f"[{style}]{_escape(text)}[/{style}]" if style else _escape(text))
        grid.add_row(*texts, end_section=row.is_baseline)
    if not console.is_terminal:  # piped: the whole table, never wrapped at 80 columns
        from rich.measure import Measurement

        width = Measurement.get(console, console.options.update_width(1000), grid).maximum
        console = Console(width=max(80, width))
    console.print(grid)
    console.print(_escape(legend(table, best="in green", worst="in red")), style="dim")
    for line in view.problems:
        console.print(f"  {_escape(line)}", style="yellow")
    for line in view.unmapped:
        console.print(f"  not run: {_escape(line)}", style="dim")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
