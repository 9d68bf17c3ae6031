"""The ``ablationkit`` command line: a thin typer layer over the library API.

Every command calls a plain Python function (importable from ``ablationkit``) and turns its
``AblationKitError`` into one line on stderr and a non-zero exit code; ``--debug`` shows the
traceback instead. Heavy modules are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ablationkit import __version__
from ablationkit.errors import AblationKitError

if TYPE_CHECKING:
    from ablationkit.schema import Mode

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


def _mode_option(value: str | None) -> str | None:
    """``--mode`` / ``--view``: a ``schema.Mode`` in any case (``Reviewer``); anything else is
    one line naming the modes (typer's own choice check would add pydantic's wording)."""
    if value is None:
        return None
    from ablationkit.schema import parse_mode

    try:
        return parse_mode(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


_MODE_METAVAR = "[author|reviewer]"  # schema.MODES; checked by tests/test_cli.py


def _mode_param(flag: str, help: str) -> Any:
    """A mode option (``--mode``, ``--view``): the one callback and metavar every command's
    mode shares; only the flag and what the mode does there differ."""
    return typer.Option(flag, callback=_mode_option, metavar=_MODE_METAVAR, help=help)


def _fail(message: str, code: int = 1) -> typer.Exit:
    from ablationkit.lm.keys import redact

    typer.echo(f"error: {redact(message)}", err=True)
    return typer.Exit(code)


def _print_traceback(exc: BaseException) -> None:
    """``--debug``: the traceback, formatted here and redacted, never printed by Python: its
    chained causes hold providers' raw error bodies, where an echoed API key would be."""
    from ablationkit.lm.keys import format_exception

    sys.stderr.write(format_exception(exc))
    sys.stderr.flush()


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
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Plan, judge and benchmark ablation studies for machine-learning papers."""
    from ablationkit.lm.keys import install_log_redaction

    _state["debug"] = debug
    install_log_redaction(debug)  # log records reach stderr redacted (more with --debug)
    warnings.showwarning = _show_warning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Our warnings (a damaged run file set aside, ...) as one line on stderr, like errors;
    any other warning as Python shows it."""
    from ablationkit.fsutil import DamagedFileWarning

    if issubclass(category, DamagedFileWarning):
        # sys.stderr at call time: a rich progress bar, if one is up, prints it above itself
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


@contextmanager
def _user_errors() -> Iterator[None]:
    """AblationKitError -> one line on stderr and its exit code (a redacted traceback with
    --debug, and the same exit code)."""
    try:
        yield
    except AblationKitError as exc:
        if _state["debug"]:
            _print_traceback(exc)
            raise typer.Exit(exc.exit_code) from None
        raise _fail(exc.one_line(), exc.exit_code) from None


_TIMEOUT_HELP = (
    "Seconds one attempt may wait on a model server before it is retried "
    "(default: 120, or 600 for a server on this machine; the embedded model has none)."
)
_DEADLINE_HELP = (
    "Seconds a paper's model calls may take in all, retries included; then the paper fails "
    "(0: no limit)."
)


def _deadline(seconds: float) -> float | None:
    return seconds or None


def _as_mode(value: str | None) -> Mode | None:
    """A ``--mode`` value (already checked by ``_mode_option``) typed as a ``Mode``."""
    from ablationkit.schema import parse_mode

    return parse_mode(value) if value is not None else None


@app.command()
def convert(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Trajectory markdown, plan JSON, JSON list or JSONL of ablations (any name)."
        ),
    ],
    to: Annotated[OutputFormatChoice, typer.Option("--to", help="Output format.")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", "-o", help="Write DIR/<input stem>.<json|md> for each input."),
    ] = None,
    mode: Annotated[
        str | None, _mode_param("--mode", "Mode for inputs that do not say (lists, JSONL).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model id for inputs that do not say.")
    ] = None,
    planner: Annotated[
        str | None, typer.Option("--planner", help="Planner name for lists/JSONL.")
    ] = None,
    paper_id: Annotated[
        str | None,
        typer.Option("--paper-id", help="Paper id (single input; default: the file stem)."),
    ] = None,
) -> None:
    """Convert plans between trajectory markdown and JSON; the input format is detected."""
    from ablationkit.plan_io import convert_files

    if out_dir is None and len(inputs) > 1:
        raise _fail(
            "several inputs need --out-dir DIR (one input without it prints to stdout)", code=2
        )
    if paper_id is not None and len(inputs) > 1:
        raise _fail("--paper-id applies to a single input", code=2)
    with _user_errors():
        results = convert_files(
            inputs,
            to.value,
            out_dir,
            mode=_as_mode(mode),
            model=model,
            planner=planner,
            paper_id=paper_id,
        )
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
        # one input: its error's own code (2: cannot read it); a batch with failures: 1
        raise typer.Exit(failures[0].exit_code if len(results) == 1 else 1)


_STRICT_HELP = (
    "Fail on a LaTeX \\input that is missing or leads outside the project "
    "(default: skip it with a warning)."
)
StrictOption = Annotated[bool, typer.Option("--strict", help=_STRICT_HELP)]
MethodSectionOption = Annotated[
    list[str] | None,
    typer.Option("--method-section", help="Method section by number or title (repeatable)."),
]


@app.command()
def paper(
    path: Annotated[
        Path,
        typer.Argument(help="LaTeX project (directory or main .tex), PDF, markdown or text file."),
    ],
    view: Annotated[
        str | None,
        _mode_param("--view", "Print the markdown the planner receives in this mode."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print title, abstract and outline as JSON.")
    ] = False,
    method_section: MethodSectionOption = None,
    ablation_section: Annotated[
        list[str] | None,
        typer.Option(
            "--ablation-section", help="Ablation section by number or title (repeatable)."
        ),
    ] = None,
    no_appendix: Annotated[
        bool, typer.Option("--no-appendix", help="Leave the appendix out of the reviewer view.")
    ] = False,
    strict: StrictOption = False,
    _allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing-inputs", hidden=True, help="Deprecated: now the default."),
    ] = False,
) -> None:
    """Show how a paper is read: its outline with section roles, or a planner's view of it."""
    import json

    from ablationkit.papers import load_paper
    from ablationkit.papers import view as paper_view
    from ablationkit.schema import parse_mode

    with _user_errors():
        loaded = load_paper(
            path,
            method_section=method_section or None,
            ablation_section=ablation_section or None,
            strict=strict,
        )
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        _write_stdout(json.dumps(loaded.to_json_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    if view is not None:
        shown = paper_view(loaded, parse_mode(view), include_appendix=not no_appendix)
        _write_stdout(shown.to_markdown())
        return
    _print_outline(loaded)


ModeOption = Annotated[
    str,
    _mode_param(
        "--mode",
        "author: the paper's most important ablations, from its method; reviewer: the "
        "ablations it is missing (any case).",
    ),
]
ModelOption = Annotated[str, typer.Option("--model", help="Model id (see `ablationkit models`).")]
PlanApiBaseOption = Annotated[
    str | None, typer.Option("--api-base", help="OpenAI-compatible server for the model.")
]
TimeoutOption = Annotated[float | None, typer.Option("--timeout", min=0.01, help=_TIMEOUT_HELP)]
DeadlineOption = Annotated[float, typer.Option("--deadline", min=0, help=_DEADLINE_HELP)]
PlanKOption = Annotated[
    int | None,
    typer.Option(
        "-k",
        min=1,
        max=20,
        help="How many ablations (default 5; under --protocol ablationbench 5, or 2 in "
        "reviewer mode, as there).",
    ),
]


class ProtocolChoice(StrEnum):
    ablationkit = "ablationkit"
    ablationbench = "ablationbench"


ProtocolOption = Annotated[
    ProtocolChoice,
    typer.Option(
        "--protocol",
        case_sensitive=False,
        help="ablationkit: our prompts, views and post-processing; ablationbench: the "
        "reference's planner exactly (raw source files, nothing merged, added or cut).",
    ),
]


class SourceChoice(StrEnum):
    parsed = "parsed"
    raw = "raw"


SourceOption = Annotated[
    SourceChoice,
    typer.Option(
        "--source",
        case_sensitive=False,
        help="parsed: our view of the mode, fitted to the context; raw: every source file of "
        "the paper's folder, unparsed and whole (AblationBench's planner input).",
    ),
]


class StrategyChoice(StrEnum):
    single = "single"
    decomposed = "decomposed"


StrategyOption = Annotated[
    StrategyChoice,
    typer.Option(
        "--strategy",
        case_sensitive=False,
        help="single: one model call writes the plan; decomposed: the model lists the "
        "method's components, the planner writes each ablation from the paper's facts "
        "(fewer generated tokens; --protocol ablationkit only).",
    ),
]
PlannerConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--planner-config",
        help="With --protocol ablationbench: AblationBench's own planner YAML "
        "(config/simple_lm/plan_*.yaml of a checkout).",
    ),
]
EnsembleOption = Annotated[
    str | None,
    typer.Option(
        "--ensemble",
        help="Comma-separated models (M1,M2,...): each plans the paper, and the plans are "
        "merged into one by the offline judge's similarity, items ranked by how many plans "
        "proposed them (--model: the first, unless it is one of them).",
    ),
]
SamplesOption = Annotated[
    int,
    typer.Option(
        "--samples",
        min=1,
        max=16,
        help="Plans per model, each with its own seed, sampled at temperature 0.7 and "
        "merged as --ensemble's are (at most 16 plans in all).",
    ),
]


PaperTokensOption = Annotated[
    int | None,
    typer.Option(
        "--paper-tokens",
        min=0,
        help="Tokens of the paper the model reads (0: all that fits its context). Default: "
        "2500 on this machine (the embedded model, a loopback server), where reading is most "
        "of a plan's time; the method is always read whole, the other sections cut to "
        "their first (and last) paragraphs. Hosted models read all.",
    ),
]


def _with_ensemble(config: Any, ensemble: str | None, samples: int) -> Any:
    """``config`` with --ensemble/--samples. --model keeps its place when it is one of the
    ensemble's models; left at its default it gives way to the first; any other is an
    error (the plan would not be made with it)."""
    from ablationkit.planner import PlanConfig, PlanConfigError

    if ensemble is None and samples == 1:
        return config
    overrides: dict[str, Any] = {"samples": samples}
    if ensemble is not None:
        overrides["ensemble"] = ensemble
        if config.model in [m.strip() for m in ensemble.split(",")]:
            overrides["model"] = config.model
        elif config.model != "local":
            raise PlanConfigError(
                f"--model {config.model} is not one of the --ensemble models ({ensemble})"
            )
    return PlanConfig.build(config, **overrides)


@app.command()
def plan(
    paper_path: Annotated[
        Path | None,
        typer.Argument(metavar="PAPER", help="LaTeX project, PDF, markdown or text file."),
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="Plan the bundled sample paper.")
    ] = False,
    mode: ModeOption = "author",
    k: PlanKOption = None,
    model: ModelOption = "local",
    api_base: PlanApiBaseOption = None,
    protocol: ProtocolOption = ProtocolChoice.ablationkit,
    planner_config: PlannerConfigOption = None,
    source_view: SourceOption = SourceChoice.parsed,
    strategy: StrategyOption = StrategyChoice.single,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out-dir",
            help="Write DIR/<paper_id>.<mode>.json and .md (and a failed reply's .raw.txt).",
        ),
    ] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option("--prompt-file", help="Jinja2 template replacing the user prompt."),
    ] = None,
    method_section: MethodSectionOption = None,
    max_context: Annotated[
        int | None,
        typer.Option(
            "--max-context",
            min=1000,
            help="Tokens of context to plan within (default: the model's).",
        ),
    ] = None,
    paper_tokens: PaperTokensOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not reuse cached replies.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan JSON to stdout.")] = False,
    strict: StrictOption = False,
    timeout: TimeoutOption = None,
    deadline: DeadlineOption = 1800.0,
    ensemble: EnsembleOption = None,
    samples: SamplesOption = 1,
) -> None:
    """Plan the k most important ablations of a paper (or its k most important missing ones)."""
    from rich.console import Console

    from ablationkit.lm import LMClient
    from ablationkit.papers import sample_paper_path
    from ablationkit.plan_io import save_plan
    from ablationkit.planner import PlanConfig, complete_plan, prepare_plan
    from ablationkit.planner.stream import PlanTracker

    if sample == (paper_path is not None):
        raise _fail("give a PAPER path or --sample (not both)", code=2)
    source = sample_paper_path() if sample else paper_path
    assert source is not None
    err = Console(stderr=True, highlight=False)
    with _user_errors():
        config = PlanConfig.build(
            mode=mode,
            model=model,
            api_base=api_base,
            protocol=protocol.value,
            planner_config=planner_config,
            source=source_view.value,
            strategy=strategy.value,
            **({"k": k} if k is not None else {}),
            prompt_file=prompt_file,
            max_context=max_context,
            paper_tokens=paper_tokens,
            strict=strict,
            timeout=timeout,
            deadline=_deadline(deadline),
        )
        config = _with_ensemble(config, ensemble, samples)
    progress, display = _plan_progress(err, source)
    with LMClient(cache=not no_cache) as client, _user_errors():
        request = prepare_plan(
            source, config, client=client, method_section=method_section or None, progress=progress
        )
        # prompt tokens processed / generated, rates and an ETA from the first second: a live
        # line on a terminal, log lines every ABLATIONKIT_PROGRESS_EVERY seconds otherwise
        with display.tracking(PlanTracker.for_request(request)):
            result = complete_plan(request, client=client, raw_dir=out_dir, progress=progress)
    if display.streamed:
        err.print()
    _print_plan(result, err if as_json else Console())
    err.print(f"[dim]{escape(client.usage.describe())}[/]")
    if out_dir is not None:
        with _user_errors():
            json_path, md_path = save_plan(result, out_dir)
        err.print(f"wrote {escape(str(json_path))} and {escape(str(md_path))}")
    if as_json:
        _write_stdout(result.to_json() + "\n")


def _plan_progress(err: Any, source: Path) -> tuple[Any, Any]:
    """The plan command's display on stderr (a ``PlanDisplay``): stages, the paper's warnings
    and size, the reasoning as it streams (dimmed), a note when a call is retried, and the
    model calls' progress while they run (``PlanDisplay.tracking``)."""
    from ablationkit.lm.keys import redact
    from ablationkit.planner import PlanProgress
    from ablationkit.planner.stream import PlanDisplay, ReasoningStream

    display = PlanDisplay(err)

    def loaded(paper: Any) -> None:  # through the display: one line each in a log
        for warning in paper.warnings:
            display.note(f"[yellow]warning:[/] {escape(warning)}")
        sections = sum(1 for _ in paper.walk())
        title = escape(paper.title or str(source))
        size = f"{sections} sections, {paper.words} words"
        display.note(f"[bold]•[/] {paper.format}: {title} ({size})")

    stream = ReasoningStream(display.show)

    def stage(message: str) -> None:
        stream.reset()  # stages come between calls: the next text is a new reply
        display.note(f"[bold]•[/] {escape(redact(message))}")

    progress = PlanProgress(
        on_stage=stage,
        on_token=stream,
        on_paper=loaded,
        on_retry=stream.retry,
    )
    return progress, display


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _print_plan(result: Any, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(f"{result.planner}/{result.model}/{result.paper_id} ({result.mode} mode)"),
        title_justify="left",
        show_lines=True,
    )
    for column in ("#", "ablation", "action", "ablated part", "replacement", "metrics"):
        table.add_column(column)
    colours = {"REMOVE": "red", "REPLACE": "cyan", "ADD": "green"}
    for rank, ablation in enumerate(result.ablations, start=1):
        replacement = ablation.replacement
        if isinstance(replacement, dict):
            replacement = [f"{k}: {v}" for k, v in replacement.items()]
        table.add_row(
            str(rank),
            Text(ablation.name),
            Text(ablation.action.value, colours[ablation.action.value]),
            Text(ablation.ablated_part),
            Text("\n".join(map(str, replacement or [])) or "-"),
            Text(", ".join(ablation.metrics) or "-"),
        )
    console.print(table)
    timings = result.timings
    if timings is not None:
        parts = [
            f"{name} {value:.1f} s"
            for name, value in (
                ("load", timings.load_s),
                ("prompt", timings.prompt_s),
                ("generation", timings.generation_s),
                ("total", timings.total_s),
            )
            if value is not None
        ]
        console.print(Text("time: " + ", ".join(parts), style="dim"))


bench_app = typer.Typer(
    help="Resumable batch runs: plan, judge and score a dataset.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


def _progress_bar(label: str, config: Any = None) -> tuple[Any, Any]:
    """The stage's progress on stderr and the callback the runner reports to: a rich bar on
    a terminal, else a log line per finished paper and every ABLATIONKIT_PROGRESS_EVERY
    seconds (``BatchProgress``). Planning (``config``) with the embedded model also shows the
    current call's prompt tokens processed / generated, rates and ETA."""
    from rich.console import Console

    from ablationkit.planner.stream import BatchProgress, PlanTracker, typical_reply_tokens

    tracker = None
    if config is not None and (config.model == "local" or config.model.startswith("local:")):
        limit = config.reply_tokens_for(True)
        tracker = PlanTracker(
            config.model, expected_reply=typical_reply_tokens(config.k, limit), max_reply=limit
        )
    # emoji off: a judge named "lm:m" must not print as "lmⓂ" (rich's ":m:" emoji code)
    bar = BatchProgress(Console(stderr=True, highlight=False, emoji=False), label, tracker)
    return bar, bar.update


def _with_time_estimate(summary: Any, config: Any) -> str:
    """A dry run's JSON with the time the run would take on this machine: its prompt tokens
    and a typical reply per request (``typical_reply_tokens``: what plans are, not the
    budget's ceiling in ``completion_tokens_estimate``) over the model's rates
    (``lm.progress.RateBook``: measured here by earlier runs, else calibrated;
    ``seconds_estimate`` is null for a model whose speed is unknown, e.g. a hosted one), also
    said on stderr in one line."""
    import json

    from ablationkit.lm.progress import estimate_seconds
    from ablationkit.planner.stream import duration, typical_reply_tokens

    data = summary.model_dump(mode="json")
    reply = typical_reply_tokens(config.k, config.reply_tokens_for(True))
    found = estimate_seconds(summary.model, summary.prompt_tokens, reply * summary.requests)
    data["seconds_estimate"] = data["seconds_basis"] = None
    if found is not None:
        seconds, rates = found
        basis = (
            f"{summary.prompt_tokens:,} prompt tokens at {rates.prompt:.1f}/s and "
            f"{summary.requests} replies of ~{reply} tokens at {rates.generation:.1f}/s, "
            f"{rates.basis}"
        )
        data["seconds_estimate"], data["seconds_basis"] = round(seconds), basis
        typer.echo(f"estimated time on this machine: ~{duration(seconds)} ({basis})", err=True)
    return json.dumps(data, indent=2, ensure_ascii=False)


def _report(report: Any) -> None:
    typer.echo(
        f"{report.stage}: {len(report.done)} done, {len(report.skipped)} already done, "
        f"{len(report.failed)} failed, ${report.cost_usd:.4f}, {report.seconds:.1f} s",
        err=True,
    )
    if report.failed:
        typer.echo(f"{len(report.failed)} papers failed:", err=True)
        for paper_id, error in sorted(report.failed.items()):
            typer.echo(f"  {paper_id}: {error}", err=True)
        raise typer.Exit(1)


@bench_app.command("plan")
def bench_plan(
    dataset: Annotated[
        str,
        typer.Argument(help="JSONL file, papers directory, 'sample' or hf:<name>[:split]."),
    ],
    run_dir: Annotated[Path, typer.Option("--run", help="Run directory (created or resumed).")],
    model: ModelOption = "local",
    mode: Annotated[
        str | None,
        _mode_param("--mode", "Plan every instance in this mode (default: each instance's own)."),
    ] = None,
    k: PlanKOption = None,
    api_base: PlanApiBaseOption = None,
    protocol: ProtocolOption = ProtocolChoice.ablationkit,
    planner_config: PlannerConfigOption = None,
    source_view: SourceOption = SourceChoice.parsed,
    strategy: StrategyOption = StrategyChoice.single,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, max=256, help="Model calls in flight at once."),
    ] = 8,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N instances.")
    ] = None,
    ids: Annotated[str | None, typer.Option("--ids", help="Comma-separated instance ids.")] = None,
    papers_root: Annotated[
        Path | None,
        typer.Option(
            "--papers-root",
            help="Where relative paper paths of hf: rows live (a checkout of AblationBench's "
            "repo).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Prepare every prompt as a run would (context fitting included) and count "
            "requests, tokens and cost; call and start no model.",
        ),
    ] = False,
    timeout: TimeoutOption = None,
    deadline: DeadlineOption = 1800.0,
    ensemble: EnsembleOption = None,
    samples: SamplesOption = 1,
    paper_tokens: PaperTokensOption = None,
) -> None:
    """Plan every paper of a dataset that has no plan in the run yet."""
    from ablationkit.bench.runner import Run
    from ablationkit.bench.runner import dry_run as estimate
    from ablationkit.planner import PlanConfig

    id_list = [i.strip() for i in ids.split(",") if i.strip()] if ids else None
    with _user_errors():
        # a mode left out is not set: each instance keeps its own (see Run.plan)
        chosen: dict[str, Any] = {"mode": mode} if mode is not None else {}
        if k is not None:
            chosen["k"] = k
        config = PlanConfig.build(
            model=model,
            api_base=api_base,
            protocol=protocol.value,
            planner_config=planner_config,
            source=source_view.value,
            strategy=strategy.value,
            timeout=timeout,
            deadline=_deadline(deadline),
            paper_tokens=paper_tokens,
            **chosen,
        )
        config = _with_ensemble(config, ensemble, samples)
        if dry_run:
            summary = estimate(dataset, config, ids=id_list, limit=limit, papers_root=papers_root)
            _write_stdout(_with_time_estimate(summary, config) + "\n")
            return
        run = Run(run_dir, concurrency=concurrency)
        bar, update = _progress_bar(f"planning with {model}", config)
        with bar:
            report = run.plan(
                dataset,
                config,
                ids=id_list,
                limit=limit,
                papers_root=papers_root,
                progress=update,
            )
    _report(report)


JudgeSpecs = Annotated[
    list[str],
    typer.Option(
        "--judge",
        help="Judge model id, or 'offline' (the validated offline judge), or 'embedding' / "
        "'embedding@0.6' (cosine only, and its threshold); offline judges: ablationkit "
        "protocol only. Several make a majority judge.",
    ),
]
JudgeProtocolOption = Annotated[
    ProtocolChoice,
    typer.Option(
        "--judge-protocol",
        case_sensitive=False,
        help="ablationkit: our index-matching judge. ablationbench: the reference's LM judge "
        "(anonymous sides, its reply format, its majority over lines).",
    ),
]
JudgeConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--judge-config",
        dir_okay=False,
        help="AblationBench judge YAML (prompts.system, prompts.user) from a checkout of its "
        "repository; with --judge-protocol ablationbench.",
    ),
]
SeedOption = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of the ablationbench judge's shuffles and sides (stored with each verdict; "
        "judge i of a majority draws with seed + i).",
    ),
]
ApiBaseOption = Annotated[
    str | None,
    typer.Option("--api-base", help="OpenAI-compatible server URL for the judge models."),
]


def _make_judge_from_options(
    specs: list[str],
    client: Any,
    api_base: str | None,
    protocol: ProtocolChoice,
    config_path: Path | None,
    seed: int,
) -> Any:
    """The judge the options describe; ``--judge-config`` is read as the reference's YAML."""
    from ablationkit.judge.factory import make_judge

    config = None
    if config_path is not None:
        from ablationkit.ablationbench.config import load_prompt_config

        config = load_prompt_config(config_path)
    return make_judge(specs, client, api_base, protocol=protocol.value, config=config, seed=seed)


@bench_app.command("judge")
def bench_judge(
    run_dir: Annotated[Path, typer.Option("--run", help="Run directory with plans.")],
    judge: JudgeSpecs,
    k: Annotated[
        int | None,
        typer.Option("-k", min=1, help="Judge only the top k of each plan (ablationkit protocol)."),
    ] = None,
    api_base: ApiBaseOption = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, max=256, help="Plans judged (model calls) at once."),
    ] = 8,
    timeout: TimeoutOption = None,
    judge_protocol: JudgeProtocolOption = ProtocolChoice.ablationkit,
    judge_config: JudgeConfigOption = None,
    seed: SeedOption = 0,
) -> None:
    """Judge every plan of a run that this judge has not judged yet."""
    from ablationkit.bench.runner import Run

    with _user_errors():
        run = Run(run_dir, concurrency=concurrency)
        run.client.timeout = timeout
        the_judge = _make_judge_from_options(
            judge, run.client, api_base, judge_protocol, judge_config, seed
        )
        bar, update = _progress_bar(f"judging with {the_judge.name}")
        with bar:
            report = run.judge(the_judge, k=k, progress=update)
    _report(report)


RunDirOption = Annotated[Path, typer.Option("--run", help="Run directory.")]


@bench_app.command("score")
def bench_score(
    run_dir: RunDirOption,
    protocol: Annotated[
        ProtocolChoice,
        typer.Option(
            "--protocol",
            case_sensitive=False,
            help="ablationkit: precision over k, 95% CIs; ablationbench: the reference's "
            "per-paper formulas and plain mean (see README).",
        ),
    ] = ProtocolChoice.ablationkit,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the scores as JSON (per judge, per paper, unrounded)."),
    ] = False,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", min=1, help="ablationbench protocol: score only the first k items."
        ),
    ] = None,
) -> None:
    """Precision, recall and F1 per judge (macro, micro, 95% CI) into scores.json."""
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ablationkit.bench.store import RunStore
    from ablationkit.judge.offline import describe_agreement, measured_agreements

    if protocol is ProtocolChoice.ablationbench:
        from ablationkit.ablationbench.runs import score_record

        with _user_errors():
            record = RunStore(run_dir).read()
            reference = score_record(record, top_k=top_k)
        for warning in record.warnings:
            typer.echo(f"warning: {warning}", err=True)
        if as_json:
            _write_stdout(json.dumps({"protocol": "ablationbench", "judges": reference}) + "\n")
            return
        ref_table = Table(title=f"{run_dir} (ablationbench protocol)", title_justify="left")
        for column in ("judge", "papers", "failed", "P", "R", "F1", "overall F1"):
            ref_table.add_column(column)
        for name, entry in reference.items():
            if entry["all_failed"]:
                ref_table.add_row(name, str(entry["papers"]), str(entry["failed"]), "judge failed")
                continue
            macro = entry["macro"]
            overall = entry.get("overall_f1")
            ref_table.add_row(
                name,
                str(entry["papers"]),
                str(entry["failed"]),
                f"{macro['precision']:.3f}",
                f"{macro['recall']:.3f}",
                f"{macro['f1']:.3f}",
                "-" if overall is None else f"{overall:.3f}",
            )
        Console().print(ref_table)
        return
    with _user_errors():
        scores = RunStore(run_dir).score()
    for warning in scores.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        judges = {
            name: {
                "protocol": "ablationkit",
                "failed": score.failed,
                "papers": score.papers,
                "macro": score.macro.model_dump(),
                "per_paper": {
                    paper_id: {"precision": p.precision, "recall": p.recall, "f1": p.f1}
                    for paper_id, p in score.per_paper.items()
                },
            }
            for name, score in scores.judges.items()
        }
        for name in judges:
            judges[name]["agreement"] = measured_agreements().get(name)
        _write_stdout(json.dumps({"protocol": "ablationkit", "judges": judges}) + "\n")
        return
    table = Table(
        title=f"{scores.model} ({scores.mode or 'dataset modes'}, "
        f"k={scores.k}, {scores.plans} plans)",
        title_justify="left",
        caption="failed: papers counted as 0 (no plan, or the judge failed on them)",
    )
    for column in ("judge", "papers", "failed", "P", "R", "F1", "F1 95% CI", "micro F1"):
        table.add_column(column)
    for name, score in scores.judges.items():
        if score.failed:  # no verdict at all: its zeros are not a score
            table.add_row(name, str(score.papers), str(score.failures), "judge failed")
            continue
        macro, (low, high) = score.macro, score.macro_ci95.get("f1", (0.0, 0.0))
        table.add_row(
            name,
            str(score.papers),
            str(score.failures),
            f"{macro.precision:.3f}",
            f"{macro.recall:.3f}",
            f"{macro.f1:.3f}",
            f"{low:.3f}-{high:.3f}",
            f"{score.micro.f1:.3f}",
        )
    console = Console()
    console.print(table)
    for name, score in scores.judges.items():  # a score is as good as the judge counting it
        if not score.failed:
            console.print(Text(describe_agreement(name), style="dim"))


@bench_app.command("import-ablationbench")
def bench_import_ablationbench(
    plans: Annotated[Path, typer.Option("--plans", help="AblationBench planner output folder.")],
    dataset: Annotated[
        Path,
        typer.Option("--dataset", help="JSONL of AblationBench rows (id, paper_title, ...; mode)."),
    ],
    run_dir: Annotated[Path, typer.Option("--run", help="Run directory to write (created).")],
    evaluations: Annotated[
        Path | None,
        typer.Option("--evaluations", help="AblationBench judge output folder (<id>.jsonl lines)."),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option("--judge", help="Name for the imported judge (default: its folder's name)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Planner model id (default: the plans folder's name)."),
    ] = None,
    papers_root: Annotated[
        Path | None,
        typer.Option("--papers-root", help="Checkout the rows' paper_path is relative to."),
    ] = None,
) -> None:
    """An AblationBench planner (and judge) folder as an AblationKit run."""
    from ablationkit.ablationbench.runs import import_run

    with _user_errors():
        report = import_run(
            plans,
            dataset,
            run_dir,
            evaluations_dir=evaluations,
            judge=judge,
            model=model,
            papers_root=papers_root,
        )
    missing = len(report.missing_plans)
    typer.echo(
        f"{len(report.plans)} plans, {len(report.judgements)} judgements -> {run_dir}"
        + (f" ({missing} without a plan file: empty plans)" if missing else "")
    )


@bench_app.command("export-ablationbench")
def bench_export_ablationbench(
    run_dir: RunDirOption,
    out: Annotated[Path, typer.Option("--out", help="Folder for AblationBench's files.")],
) -> None:
    """A run as AblationBench's planner and judge folders (OUT/plans, OUT/<judge>)."""
    from ablationkit.ablationbench.runs import export_run

    with _user_errors():
        written = export_run(run_dir, out)
    for folder, ids in written.items():
        typer.echo(f"{out / folder}: {len(ids)} files")


@app.command("site")
def site(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (from `bench`).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Site directory (empty, or a site).")],
    resamples: Annotated[
        int, typer.Option("--resamples", min=0, help="Bootstrap resamples.")
    ] = 1000,
    results: Annotated[
        list[Path] | None,
        typer.Option("--results", help="A folder of `ablationkit results`, shown on its paper."),
    ] = None,
) -> None:
    """A static site of runs: leaderboard per mode and one page per paper (works offline)."""
    from ablationkit.site import build_site

    with _user_errors():
        report = build_site(run_dirs, out, resamples=resamples, results=results or ())
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    runs = f"{len(report.runs)} run{'' if len(report.runs) == 1 else 's'}"
    typer.echo(f"{report.pages} pages from {runs}: {out / 'index.html'}")


@app.command("serve")
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (default: loopback).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
    ] = 8765,
    model: Annotated[
        str,
        typer.Option(
            "--model", help="Default model; the page may use only this and --offer-model."
        ),
    ] = "local",
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="OpenAI-compatible server.")
    ] = None,
    k: Annotated[
        int,
        typer.Option("-k", min=1, max=20, help="Ablations per plan when the page does not choose."),
    ] = 5,
    max_upload_mb: Annotated[
        int,
        typer.Option("--max-upload-mb", min=1, max=1024, help="Largest upload accepted (MB)."),
    ] = 50,
    extra_models: Annotated[
        list[str] | None, typer.Option("--offer-model", help="More models to offer.")
    ] = None,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue", min=0, max=100, help="Plan requests that may wait (more get 429)."
        ),
    ] = 2,
    results: Annotated[
        list[Path] | None,
        typer.Option("--results", help="A folder of `ablationkit results`, shown by its plan."),
    ] = None,
) -> None:
    """A local web app: upload or paste a paper, watch the plan stream, edit it, download it."""
    try:
        from ablationkit.app import AppSettings
        from ablationkit.app import serve as run_app
    except ImportError:
        raise _fail("the web app needs: pip install 'ablationkit[app]'", 2) from None
    if api_base:
        from ablationkit.lm.routes import check_api_base

        with _user_errors():
            check_api_base(api_base)  # malformed: now, not at every upload
    if host not in {"127.0.0.1", "localhost", "::1"}:
        typer.echo(
            f"warning: binding {host}: anyone who reaches it can spend your model calls",
            err=True,
        )
    settings = AppSettings(
        model=model,
        api_base=api_base,
        k=k,
        max_upload_mb=max_upload_mb,
        host=host,
        port=port,
        models=extra_models or [],
        max_queue=max_queue,
        results=[str(folder) for folder in results or []],
    )
    if settings.results:
        from ablationkit.runs.results import load_results

        with _user_errors():  # a damaged folder: one line now, not a failed start
            for folder in settings.results:
                load_results(folder)
    typer.echo(f"AblationKit app on {settings.url}/ (Ctrl-C stops it)")
    run_app(settings)


@app.command("eval-judge")
def eval_judge(
    labels: Annotated[Path, typer.Argument(help="JSONL of human-labelled plans (see README).")],
    judge: Annotated[
        list[str] | None,
        typer.Option(
            "--judge",
            help="Judge model id, or 'offline' / 'embedding' / 'embedding@0.6'; several make a "
            "majority judge. Not with --judge-output.",
        ),
    ] = None,
    cross_validate: Annotated[
        bool,
        typer.Option(
            "--cv",
            help="With --judge offline or embedding: refit on all papers but one and judge "
            "that one, for each paper (labels in the benchmarks/data format); prints the "
            "out-of-fold pair agreement.",
        ),
    ] = False,
    judge_output: Annotated[
        Path | None,
        typer.Option(
            "--judge-output",
            help="Score an AblationBench judge output folder against LABELS in its judge-eval "
            "format (id = <planner_model>/<task_id>, labels = JSONL text); needs --mode.",
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            callback=_mode_option,
            metavar=_MODE_METAVAR,
            help="With --judge-output: author or reviewer labels.",
        ),
    ] = None,
    api_base: ApiBaseOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=256, help="Model calls at once.")
    ] = 8,
    judge_protocol: JudgeProtocolOption = ProtocolChoice.ablationkit,
    judge_config: JudgeConfigOption = None,
    seed: SeedOption = 0,
) -> None:
    """How well a judge agrees with human labels: precision, recall and F1."""
    import json

    from ablationkit.judge.evaluation import evaluate_judge
    from ablationkit.lm import LMClient

    if judge_output is not None:
        from ablationkit.ablationbench.judge_eval import evaluate_judge_folder, load_label_rows

        if judge or mode is None:
            raise _fail("--judge-output needs --mode and no --judge", code=2)
        with _user_errors():
            found = evaluate_judge_folder(
                load_label_rows(labels),
                judge_output,
                "reviewer" if mode == "reviewer" else "author",
            )
        _write_stdout(json.dumps(found, indent=2) + "\n")
        return
    if not judge:
        raise _fail("give --judge (or --judge-output with an AblationBench judge folder)", code=2)
    if cross_validate:
        from ablationkit.judge.offline import cross_validate_file

        if len(judge) != 1:
            raise _fail("--cv takes one --judge: offline or embedding", code=2)
        with _user_errors():
            found = cross_validate_file(labels, judge[0])
        _write_stdout(json.dumps(found, indent=2) + "\n")
        return
    with _user_errors(), LMClient(concurrency=concurrency) as client:
        the_judge = _make_judge_from_options(
            judge, client, api_base, judge_protocol, judge_config, seed
        )
        result = evaluate_judge(the_judge, labels, on_judged=_report_judged)
    _write_stdout(json.dumps(result, indent=2) + "\n")


def _report_judged(verdict: Any, done: int, total: int) -> None:
    """One stderr line per judged labelled plan (stdout keeps the JSON alone)."""
    n = len(verdict.matches)
    outcome = f"error: {verdict.error}" if verdict.error else f"{n} match{'es' if n != 1 else ''}"
    print(f"judged {done}/{total}: {verdict.paper_id} ({outcome})", file=sys.stderr, flush=True)


@app.command()
def models(
    check: Annotated[
        bool, typer.Option("--check", help="Load the model and send a tiny request.")
    ] = False,
    model: Annotated[str, typer.Option("--model", help="Model to check with --check.")] = "local",
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="OpenAI-compatible server for --check.")
    ] = None,
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


from ablationkit.cli_execute import register as _register_execute  # noqa: E402

_register_execute(app)  # execute, results (issue 14)

from ablationkit.cli_grid import register as _register_grid  # noqa: E402

_register_grid(app)  # grid, grid-export, sample-project (issue 14)


def _hide_flag_types(command: Any) -> Any:
    """Flags take no value, so their help rows show none: typer labels them ``<bool>``."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:  # --help is made per call, not kept in params
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _hide_flag_types(sub)
    return command


def run() -> None:
    """Entry point that keeps tracebacks out of sight unless --debug is given, and keys out
    of everything: errors, expected or not, are redacted one lines (tracebacks with --debug)."""
    from ablationkit.lm.keys import redact

    try:
        _hide_flag_types(typer.main.get_command(app))()
    except AblationKitError as exc:
        if _state["debug"]:
            _print_traceback(exc)
        else:
            typer.echo(f"error: {redact(exc.one_line())}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, or a library's error that we do not wrap yet
        if _state["debug"]:
            _print_traceback(exc)
        else:
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            typer.echo(
                f"error: internal error ({redact(detail)}); rerun with --debug for the traceback",
                err=True,
            )
        sys.exit(1)
    finally:
        # The process ends here, its objects need no collecting: the interpreter's last
        # collections would walk every one of them (a batch's schemas, prompts, modules),
        # 0.1-0.3 s between the last reply and the exit (issue 15). Exit handlers still run.
        import gc

        gc.freeze()
