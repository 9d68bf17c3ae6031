"""The ``ablationkit`` command line: a thin typer layer over the library API.

Every command calls a plain Python function (importable from ``ablationkit``) and turns its
``AblationKitError`` into one line on stderr and a non-zero exit code; ``--debug`` shows the
traceback instead. Heavy modules are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from ablationkit import __version__
from ablationkit.errors import AblationKitError

app = typer.Typer(
    name="ablationkit",
    help="Plan, judge and benchmark ablation studies for machine-learning papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


class OutputFormatChoice(StrEnum):
    json = "json"
    md = "md"


class ModeChoice(StrEnum):
    author = "author"
    reviewer = "reviewer"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _write_stdout(text: str) -> None:
    # Bytes, not print(): the console encoding must not alter a trajectory's exact bytes.
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ablationkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Plan, judge and benchmark ablation studies for machine-learning papers."""
    _state["debug"] = debug


@app.command()
def convert(
    inputs: list[Path] = typer.Argument(
        ..., help="Trajectory markdown, plan JSON, JSON list or JSONL of ablations (any name)."
    ),
    to: OutputFormatChoice = typer.Option(..., "--to", help="Output format."),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", "-o", help="Write DIR/<input stem>.<json|md> for each input."
    ),
    mode: ModeChoice | None = typer.Option(
        None, "--mode", help="Mode for inputs that do not say (lists, JSONL)."
    ),
    model: str | None = typer.Option(None, "--model", help="Model id for inputs that do not say."),
    planner: str | None = typer.Option(None, "--planner", help="Planner name for lists/JSONL."),
    paper_id: str | None = typer.Option(
        None, "--paper-id", help="Paper id (single input; default: the file stem)."
    ),
) -> None:
    """Convert plans between trajectory markdown and JSON; the input format is detected."""
    from ablationkit.plan_io import convert_files

    if out_dir is None and len(inputs) > 1:
        raise _fail(
            "several inputs need --out-dir DIR (one input without it prints to stdout)", code=2
        )
    if paper_id is not None and len(inputs) > 1:
        raise _fail("--paper-id applies to a single input", code=2)
    try:
        results = convert_files(
            inputs,
            to.value,  # type: ignore[arg-type]
            out_dir,
            mode=mode.value if mode else None,  # type: ignore[arg-type]
            model=model,
            planner=planner,
            paper_id=paper_id,
        )
    except AblationKitError as exc:
        if _state["debug"]:
            raise
        raise _fail(exc.one_line(), exc.exit_code) from None
    failures = [r for r in results if not r.ok]
    for result in results:
        if result.text is not None:
            _write_stdout(result.text)
        elif result.ok:
            typer.echo(f"{result.source} -> {result.output}", err=True)
        else:
            typer.echo(f"error: {result.error}", err=True)
    if failures:
        if len(results) > 1:
            typer.echo(f"{len(failures)} of {len(results)} inputs failed:", err=True)
            for result in failures:
                typer.echo(f"  {result.error}", err=True)
        raise typer.Exit(1)


@contextmanager
def _user_errors() -> Iterator[None]:
    """AblationKitError -> one line on stderr and its exit code (a traceback with --debug)."""
    try:
        yield
    except AblationKitError as exc:
        if _state["debug"]:
            raise
        raise _fail(exc.one_line(), exc.exit_code) from None


@app.command()
def paper(
    path: Path = typer.Argument(
        ..., help="LaTeX project (directory or main .tex), PDF, markdown or text file."
    ),
    view: ModeChoice | None = typer.Option(
        None, "--view", help="Print the markdown the planner receives in this mode."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print title, abstract and outline as JSON."
    ),
    method_section: list[str] | None = typer.Option(
        None, "--method-section", help="Method section by number or title (repeatable)."
    ),
    ablation_section: list[str] | None = typer.Option(
        None, "--ablation-section", help="Ablation section by number or title (repeatable)."
    ),
    no_appendix: bool = typer.Option(
        False, "--no-appendix", help="Leave the appendix out of the reviewer view."
    ),
    allow_missing: bool = typer.Option(
        False, "--allow-missing-inputs", help="Skip missing \\input files instead of failing."
    ),
) -> None:
    """Show how a paper is read: its outline with section roles, or a planner's view of it."""
    import json

    from ablationkit.papers import load_paper
    from ablationkit.papers import view as paper_view

    with _user_errors():
        loaded = load_paper(
            path,
            method_section=method_section or None,
            ablation_section=ablation_section or None,
            strict=not allow_missing,
        )
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        _write_stdout(json.dumps(loaded.to_json_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    if view is not None:
        shown = paper_view(loaded, view.value, include_appendix=not no_appendix)
        _write_stdout(shown.to_markdown())
        return
    _print_outline(loaded)


@app.command()
def models(
    check: bool = typer.Option(False, "--check", help="Load the model and send a tiny request."),
    model: str = typer.Option("local", "--model", help="Model to check with --check."),
    api_base: str | None = typer.Option(
        None, "--api-base", help="OpenAI-compatible server for --check."
    ),
) -> None:
    """What models are configured, whether the embedded model is installed, and if it answers."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ablationkit.lm.inventory import check_model, inventory

    table = Table(title="Models", title_justify="left")
    for column in ("model id", "backend", "endpoint", "configured", "note"):
        table.add_column(column)
    for entry in inventory():
        table.add_row(
            entry.model,
            entry.backend,
            entry.endpoint,
            Text("yes", "green") if entry.ready else Text("no", "red"),
            Text(entry.note),
        )
    console = Console()
    console.print(table)
    if check:
        with _user_errors():
            reply = check_model(model, api_base=api_base)
        speed = (
            f", {reply.timings['predicted_per_second']:.1f} tokens/s generation"
            if "predicted_per_second" in reply.timings
            else ""
        )
        console.print(
            Text(f"{model}: answered {reply.text.strip()[:40]!r} in {reply.latency:.2f} s{speed}")
        )


def _print_outline(loaded: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    styles = {
        "method": "bold green",
        "ablation": "bold magenta",
        "experiments": "cyan",
        "related_work": "blue",
        "conclusion": "yellow",
        "appendix": "dim",
        "other": "",
    }
    table = Table(title=Text(loaded.title or str(loaded.source)), title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("Section")
    table.add_column("Role", no_wrap=True)
    table.add_column("Words", justify="right")
    for section in loaded.walk():
        indent = "  " * (section.level - 1)
        # Text objects, not markup: a heading like "[Draft] Method" must print as it is.
        table.add_row(
            section.number or "",
            Text(f"{indent}{section.title}"),
            Text(section.role, style=styles[section.role]),
            str(section.words),
        )
    console = Console()
    console.print(table)
    console.print(
        f"{loaded.format}: {len(loaded.abstract.split())} words of abstract, "
        f"{loaded.words} words in all"
    )


def run() -> None:
    """Entry point that keeps tracebacks out of sight unless --debug is given."""
    try:
        app()
    except AblationKitError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
