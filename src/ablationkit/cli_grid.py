"""The ``grid``, ``grid-export`` and ``sample-project`` commands (issue 14: plan -> runs).

Registered on the main app by :func:`register`, like ``cli_execute``; heavy modules are
imported inside the commands so ``ablationkit --help`` stays fast. Errors go through the main
CLI's ``_user_errors``: one line on stderr and the error's exit code.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

_EXPORT_HELP = (
    "Also write the grid as hydra (multirun lines), wandb (sweep YAML), ray (Tune "
    "param_space JSON) or shell (one line per run), beside it."
)
_FORMATS = "[hydra|wandb|ray|shell]"


def _export_format(value: str | None) -> str | None:
    from ablationkit.runs.exports import EXPORT_FORMATS

    if value is not None and value not in EXPORT_FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(EXPORT_FORMATS)}")
    return value


def grid(
    plan_path: Annotated[
        Path, typer.Argument(metavar="PLAN", help="A plan file (JSON or trajectory markdown).")
    ],
    project: Annotated[
        Path, typer.Option("--project", help="The experiment's folder (config and script).")
    ],
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Its YAML config, inside the project (default: conf/config.yaml, config.yaml, …).",
        ),
    ] = None,
    script: Annotated[
        str | None,
        typer.Option(
            "--script",
            help="Vary the flags of this script's --help (default: a config if there is one, "
            "else the flags of train.py, main.py or run.py); with --config, the run command.",
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=100, help="Seeds per run.")] = 3,
    model: Annotated[
        str, typer.Option("--model", help="Model id (see `ablationkit models`).")
    ] = "local",
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="OpenAI-compatible server URL.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.01, help="Seconds one attempt may wait on the model."),
    ] = None,
    deadline: Annotated[
        float,
        typer.Option("--deadline", min=0, help="Seconds the model calls may take (0: no limit)."),
    ] = 900.0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not reuse cached replies.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Write the grid without asking.")
    ] = False,
    out: Annotated[Path, typer.Option("-o", "--out", help="The grid file to write.")] = Path(
        "grid.json"
    ),
    export: Annotated[
        str | None,
        typer.Option(
            "--export",
            callback=_export_format,
            metavar=_FORMATS,
            help=_EXPORT_HELP,
        ),
    ] = None,
) -> None:
    """Map a plan's ablations to runs of your experiment (config overrides or script flags)."""
    from rich.console import Console

    from ablationkit.cli import _user_errors, escape
    from ablationkit.lm import LMClient
    from ablationkit.plan_io import load_plan
    from ablationkit.planner.stream import PlanDisplay
    from ablationkit.runs.grid import make_grid, save_grid
    from ablationkit.runs.project import discover

    err = Console(stderr=True, highlight=False)
    with _user_errors():
        plan = load_plan(plan_path)
        experiment = discover(project, config=config, script=script)
    seed_text = f"seed: {experiment.seed_key}" if experiment.seed_key else "no seed setting"
    err.print(
        f"[bold]•[/] {escape(experiment.source())}: {len(experiment.knobs)} settings "
        f"({escape(seed_text)}); {len(plan.ablations)} planned ablations"
    )
    if plan.ablations:
        err.print(f"[bold]•[/] asking {escape(model)} to map them")
    display = PlanDisplay(err)
    with LMClient(cache=not no_cache) as client, _user_errors():
        tracker = _tracker(plan, experiment, model, api_base)
        # the embedded model takes minutes here: its progress, as `plan` shows it (issue 15)
        with display.tracking(tracker) if tracker is not None else nullcontext():
            result = make_grid(
                plan,
                experiment,
                plan_path=plan_path,
                model=model,
                client=client,
                api_base=api_base,
                seeds=seeds,
                timeout=timeout,
                deadline=deadline or None,
                on_token=lambda piece: None,  # streamed: the progress counts its tokens
            )
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    _print_grid(result.grid, Console())
    if plan.ablations:
        err.print(f"[dim]{escape(client.usage.describe())}[/]")
    runs = len(result.grid.runs())
    verb = "Replace" if out.exists() else "Write"  # an existing grid may hold hand edits
    if not yes and not _confirm(f"{verb} {out} ({runs} runs)?"):
        raise _fail_not_written()
    with _user_errors():
        save_grid(result.grid, out)
        written = [out]
        if export is not None:
            written.append(_write_export(result.grid, out, export, None, None))
    err.print(
        f"wrote {escape(', '.join(map(str, written)))}: {runs} runs; edit the file to change "
        "a mapping, then `ablationkit execute`"
    )


def _tracker(plan: Any, experiment: Any, model: str, api_base: str | None) -> Any:
    """A ``PlanTracker`` for the mapping call, begun with its prompt size (None: no call)."""
    from ablationkit.lm.models import resolve_model
    from ablationkit.planner.stream import PlanTracker
    from ablationkit.runs.grid import grid_messages, reply_tokens

    if not plan.ablations:
        return None
    resolved = resolve_model(model, api_base)
    limit = reply_tokens(len(plan.ablations))
    tracker = PlanTracker(
        resolved.id, embedded=resolved.local, expected_reply=limit // 2, max_reply=limit
    )
    messages = grid_messages(plan, experiment)
    tracker.begin(sum(resolved.count_tokens(m["content"]) for m in messages))
    return tracker


def _confirm(question: str) -> bool:
    """Ask on the terminal; no answer (stdin closed) is a no."""
    import click

    try:
        return bool(typer.confirm(question, default=True))
    except click.exceptions.Abort:
        return False


def _fail_not_written() -> typer.Exit:
    from ablationkit.cli import _fail

    return _fail("not confirmed: nothing written (pass --yes to write without asking)")


def _print_grid(grid: Any, console: Any) -> None:
    """The mapping for confirmation: one row per variant, then what could not be mapped."""
    from rich.table import Table
    from rich.text import Text

    from ablationkit.runs.grid import describe_mapping

    table = Table(
        title=Text(f"grid of {grid.paper_id}: {len(grid.seeds)} seeds {grid.seeds}"),
        title_justify="left",
        show_lines=False,
    )
    for column in ("ablation", "action", "variant", "overrides"):
        table.add_column(column)
    colours = {"REMOVE": "red", "REPLACE": "cyan", "ADD": "green"}
    table.add_row("baseline", "", "baseline", Text("(the config as it is)", "dim"))
    for ablation, action, label, overrides in describe_mapping(grid):
        table.add_row(
            Text(ablation), Text(action, colours.get(action, "")), Text(label), Text(overrides)
        )
    for item in grid.unmapped:
        table.add_row(
            Text(item.ablation), Text("unmapped", "yellow"), "-", Text(item.reason, "yellow")
        )
    console.print(table)


def _write_export(
    grid: Any, grid_path: Path, fmt: str, command: str | None, target: Path | None
) -> Path:
    """Write ``grid`` in ``fmt`` to ``target`` (default: beside the grid, ``grid.<fmt>.<ext>``)."""
    from ablationkit.errors import AblationKitError
    from ablationkit.fsutil import atomic_write_text
    from ablationkit.runs.exports import EXPORT_SUFFIX, export_grid

    text = export_grid(grid, fmt, grid_path=grid_path, command=command)
    path = target or grid_path.with_name(f"{grid_path.stem}.{fmt}{EXPORT_SUFFIX[fmt]}")
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise AblationKitError(f"cannot write ({exc.strerror or exc})", where=path) from None
    return path


def grid_export(
    grid_path: Annotated[Path, typer.Argument(metavar="GRID", help="A grid file.")],
    fmt: Annotated[
        str,
        typer.Option("--format", callback=_export_format, metavar=_FORMATS, help="Format."),
    ],
    command: Annotated[
        str | None,
        typer.Option(
            "--cmd", help="Run command with {overrides} (default: the one the grid names)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write a grid as Hydra multirun lines, a W&B sweep, a Ray Tune param_space or shell lines."""
    from ablationkit.cli import _user_errors, _write_stdout
    from ablationkit.runs.execute import load_grid
    from ablationkit.runs.exports import export_grid
    from ablationkit.runs.grid import check_grid

    with _user_errors():
        loaded = load_grid(grid_path)
        # an edited file: a mistyped key is exported as written, but said here first
        for problem in check_grid(loaded):
            typer.echo(f"warning: {grid_path}: {problem}", err=True)
        if out is None:
            _write_stdout(export_grid(loaded, fmt, grid_path=grid_path, command=command))
            return
        path = _write_export(loaded, grid_path, fmt, command, out)
    typer.echo(f"wrote {path}", err=True)


def sample_project(
    target: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to copy it (must not exist yet).")
    ] = Path("sample_project"),
) -> None:
    """Copy the bundled sample experiment (a scikit-learn training script, its config and
    the paper.md describing it) to DIR, to try plan -> grid -> execute -> results on."""
    import shutil

    from ablationkit.cli import _fail
    from ablationkit.runs.project import sample_project_path

    if target.exists():
        raise _fail(f"{target}: already exists; give a new folder", code=2)
    shutil.copytree(
        sample_project_path(), target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    typer.echo(f"copied the sample project to {target}; next:", err=True)
    typer.echo(f"  ablationkit plan {target / 'paper.md'} -o plans", err=True)


def register(app: typer.Typer) -> None:
    """Add ``grid``, ``grid-export`` and ``sample-project`` to the main app."""
    app.command("grid")(grid)
    app.command("grid-export")(grid_export)
    app.command("sample-project")(sample_project)
