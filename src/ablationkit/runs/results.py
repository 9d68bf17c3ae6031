"""``results``: the ablation table from a grid's run records, ready to paste into a paper.

Library first: ``collect(grid, runs_dir)`` reads every run's ``result.json`` (written by
``execute``) into a :class:`ResultsTable` with one row per ablation and value, mean ± std over
seeds per metric and the difference from the baseline; ``to_markdown``, ``to_latex`` and
``to_json`` render it, ``write_results`` writes them all (and the chart) to a folder.

Nothing is dropped silently: a run that failed, timed out, was never run or whose record no
longer matches the grid counts against its row ("2/3 seeds, 1 failed"), and a row without a
single finished run still appears, with its reason. Best and worst are marked per metric among
the ablation rows, in the metric's own direction (loss, error, perplexity...: lower is better).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ablationkit.fsutil import atomic_write_text
from ablationkit.runs.execute import read_result
from ablationkit.runs.model import BASELINE, Grid

RESULTS_FORMAT = "ablationkit.results/1"
MARKDOWN, LATEX, JSON, CHART = "results.md", "results.tex", "results.json", "results.png"

# Metric names whose smaller values are better; any other metric is "higher is better".
_LOWER = re.compile(
    r"(loss|error|err\b|mse|rmse|mae|mape|perplexity|ppl|wer|cer|fid|time|seconds|latency|"
    r"regret|nll|bpd|bits.per|distance|diverge)",
    re.IGNORECASE,
)

Mark = Literal["best", "worst"]


def lower_is_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is better, guessed from its name (loss, error, ...)."""
    return bool(_LOWER.search(metric))


@dataclass
class Stat:
    """One metric of one row: mean ± sample std over the seeds that finished."""

    mean: float
    std: float | None  # None with a single seed: no spread to report
    n: int
    values: list[float]


@dataclass
class Problem:
    """A run of a row that gave no numbers, and why (shown, never dropped)."""

    run_id: str
    seed: int
    status: Literal["failed", "timeout", "missing", "stale"]
    detail: str


@dataclass
class Row:
    ablation: str
    variant: str
    expected: int
    finished: int = 0
    stats: dict[str, Stat] = field(default_factory=dict)
    diffs: dict[str, float] = field(default_factory=dict)
    marks: dict[str, Mark] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def is_baseline(self) -> bool:
        return self.ablation == BASELINE

    @property
    def label(self) -> str:
        return "baseline" if self.is_baseline else f"{self.ablation}: {self.variant}"

    def runs_text(self) -> str:
        """``3/3``, ``2/3 (1 failed)``, ``0/3 (2 missing, 1 timeout)``."""
        text = f"{self.finished}/{self.expected}"
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.status] = counts.get(problem.status, 0) + 1
        if counts:
            text += " (" + ", ".join(f"{n} {status}" for status, n in counts.items()) + ")"
        return text


@dataclass
class ResultsTable:
    paper_id: str
    plan: str
    metrics: list[str]
    rows: list[Row]
    lower_better: dict[str, bool]
    unmapped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def baseline(self) -> Row | None:
        return next((r for r in self.rows if r.is_baseline), None)

    @property
    def problems(self) -> list[Problem]:
        return [p for row in self.rows for p in row.problems]


def collect(
    grid: Grid,
    runs_dir: str | Path,
    *,
    lower: Iterable[str] = (),
    higher: Iterable[str] = (),
    metrics: Iterable[str] = (),
) -> ResultsTable:
    """Read the grid's runs under ``runs_dir`` into a table (never raises for a bad run).

    ``lower``/``higher`` name metrics whose direction the name does not tell; ``metrics``, if
    given, keeps only those columns, in that order (a script reports more than a paper shows).
    """
    runs_dir = Path(runs_dir)
    rows: dict[tuple[str, str], Row] = {}
    values: dict[tuple[str, str], dict[str, list[float]]] = {}
    metric_order: list[str] = []
    for run in grid.runs():
        key = (run.ablation, run.variant)
        row = rows.setdefault(key, Row(run.ablation, run.variant, expected=0))
        row.expected += 1
        result = read_result(runs_dir, run.run_id)
        if result is None:
            exists = (runs_dir / run.run_id / "result.json").exists()
            detail = "its result.json is not valid" if exists else "not run, or not finished"
            row.problems.append(Problem(run.run_id, run.seed, "missing", detail))
            continue
        if result.overrides != run.overrides:
            row.problems.append(
                Problem(run.run_id, run.seed, "stale", "ran with other overrides than the grid's")
            )
            continue
        if not result.ok:
            status: Literal["failed", "timeout"] = (
                "timeout" if result.status == "timeout" else "failed"
            )
            row.problems.append(Problem(run.run_id, run.seed, status, result.error or status))
            continue
        row.finished += 1
        for name, value in result.metrics.items():
            if name not in metric_order:
                metric_order.append(name)
            values.setdefault(key, {}).setdefault(name, []).append(value)
    for key, row in rows.items():
        for name, vals in values.get(key, {}).items():
            std = statistics.stdev(vals) if len(vals) > 1 else None
            row.stats[name] = Stat(statistics.fmean(vals), std, len(vals), vals)
    chosen = list(dict.fromkeys(metrics))
    if chosen:
        metric_order = [m for m in chosen if m in metric_order]
        for row in rows.values():
            row.stats = {m: row.stats[m] for m in metric_order if m in row.stats}
    lower_set, higher_set = set(lower), set(higher)
    direction = {
        m: (m in lower_set) or (m not in higher_set and lower_is_better(m)) for m in metric_order
    }
    table = ResultsTable(
        paper_id=grid.paper_id,
        plan=grid.plan,
        metrics=metric_order,
        rows=list(rows.values()),
        lower_better=direction,
        unmapped=[(u.ablation, u.reason) for u in grid.unmapped],
    )
    _differences(table)
    _mark(table)
    return table


def _differences(table: ResultsTable) -> None:
    base = table.baseline
    if base is None:
        return
    for row in table.rows:
        if row.is_baseline:
            continue
        for name, stat in row.stats.items():
            if name in base.stats:
                row.diffs[name] = stat.mean - base.stats[name].mean


def _mark(table: ResultsTable) -> None:
    """Best and worst ablation row per metric (two or more rows with numbers needed)."""
    for name in table.metrics:
        scored = [r for r in table.rows if not r.is_baseline and name in r.stats]
        if len(scored) < 2:
            continue
        sign = -1.0 if table.lower_better[name] else 1.0
        ranked = sorted(scored, key=lambda r: sign * r.stats[name].mean)
        if ranked[0].stats[name].mean == ranked[-1].stats[name].mean:
            continue  # all equal: nothing stands out
        ranked[-1].marks[name] = "best"
        ranked[0].marks[name] = "worst"


# --- formatting -----------------------------------------------------------------------------


def decimals(table: ResultsTable, metric: str) -> int:
    """Decimals for a metric's column: three significant digits of its largest value."""
    numbers = [abs(r.stats[metric].mean) for r in table.rows if metric in r.stats]
    biggest = max(numbers, default=0.0)
    if biggest == 0 or not math.isfinite(biggest):
        return 3
    return max(0, min(6, 2 - math.floor(math.log10(biggest))))


def cell(row: Row, metric: str, decimals: int) -> str:
    """``0.912 ± 0.004``, ``0.912`` (one seed) or why there is no number."""
    stat = row.stats.get(metric)
    if stat is None:
        return "failed" if row.problems and row.finished == 0 else "—"
    text = f"{stat.mean:.{decimals}f}"
    if stat.std is not None:
        text += f" ± {stat.std:.{decimals}f}"
    return text


def diff_cell(row: Row, metric: str, decimals: int) -> str:
    if row.is_baseline:
        return ""
    if metric not in row.diffs:
        return "—"
    return f"{row.diffs[metric]:+.{decimals}f}"


def _marked(text: str, mark: Mark | None, bold: str, italic: str) -> str:
    if mark == "best":
        return bold.format(text)
    if mark == "worst":
        return italic.format(text)
    return text


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: ResultsTable) -> str:
    """A GitHub/pandoc pipe table; best in bold, worst in italics, problems listed under it."""
    header = ["Ablation", "Runs"]
    for m in table.metrics:
        header += [m, f"Δ {m}"]
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (2 * len(table.metrics))) + "|",
    ]
    for row in table.rows:
        cells = [_md_escape(row.label), row.runs_text()]
        for m in table.metrics:
            d = decimals(table, m)
            mark = row.marks.get(m)
            cells.append(_marked(cell(row, m, d), mark, "**{}**", "*{}*"))
            cells.append(diff_cell(row, m, d))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(legend(table))
    lines.extend(_notes(table))
    return "\n".join(lines) + "\n"


def legend(table: ResultsTable, best: str = "in bold", worst: str = "in italics") -> str:
    seeds = max((r.expected for r in table.rows), default=0)
    parts = [f"Mean ± std over {seeds} seed{'s' if seeds != 1 else ''}"]
    parts.append("Δ: difference from the baseline")
    if any(r.marks for r in table.rows):
        parts.append(f"best ablation per metric {best}, worst {worst}")
    lower = [m for m in table.metrics if table.lower_better[m]]
    if lower:
        parts.append("lower is better for " + ", ".join(lower))
    return "; ".join(parts) + "."


def _notes(table: ResultsTable) -> list[str]:
    lines: list[str] = []
    if table.problems:
        lines.append("")
        lines.append("Runs without numbers:")
        for p in table.problems:
            lines.append(f"- `{p.run_id}`: {p.status} ({_md_escape(p.detail)})")
    if table.unmapped:
        lines.append("")
        lines.append("Planned but not run (no mapping to the experiment):")
        for name, reason in table.unmapped:
            lines.append(f"- {_md_escape(name)}: {_md_escape(reason)}")
    return lines


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """Plain text safe inside a LaTeX table (labels come from a plan: a model wrote them)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in " ".join(text.split()))


def _tex_number(text: str) -> str:
    """``-0.01 ± 0.02`` with a real minus and plus-minus; a dash for a missing number."""
    if text in {"—", "failed"}:
        return "--" if text == "—" else text
    return re.sub(r"(?<![0-9])-", "$-$", text).replace(" ± ", r" $\pm$ ")


def to_latex(table: ResultsTable) -> str:
    """A booktabs ``tabular`` (``\\usepackage{booktabs}``); best bold, worst underlined."""
    cols = "ll" + "rr" * len(table.metrics)
    header = ["Ablation", "Runs"]
    for m in table.metrics:
        header += [tex_escape(m), r"$\Delta$ " + tex_escape(m)]
    lines = [
        "% " + legend(table, worst="underlined"),
        r"\begin{tabular}{" + cols + "}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = [tex_escape(row.label), tex_escape(row.runs_text())]
        for m in table.metrics:
            d = decimals(table, m)
            text = _tex_number(cell(row, m, d))
            cells.append(_marked(text, row.marks.get(m), r"\textbf{{{}}}", r"\underline{{{}}}"))
            cells.append(_tex_number(diff_cell(row, m, d)))
        lines.append(" & ".join(cells) + r" \\")
        if row.is_baseline:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_json(table: ResultsTable) -> dict[str, Any]:
    """Everything in the table as plain data (the site and the app read this)."""
    return {
        "format": RESULTS_FORMAT,
        "paper_id": table.paper_id,
        "plan": table.plan,
        "metrics": [{"name": m, "lower_is_better": table.lower_better[m]} for m in table.metrics],
        "rows": [
            {
                "ablation": r.ablation,
                "variant": r.variant,
                "label": r.label,
                "expected": r.expected,
                "finished": r.finished,
                "runs": r.runs_text(),
                "stats": {
                    m: {"mean": s.mean, "std": s.std, "n": s.n, "values": s.values}
                    for m, s in r.stats.items()
                },
                "diffs": r.diffs,
                "marks": r.marks,
                "problems": [
                    {"run_id": p.run_id, "seed": p.seed, "status": p.status, "detail": p.detail}
                    for p in r.problems
                ],
            }
            for r in table.rows
        ],
        "unmapped": [{"ablation": a, "reason": why} for a, why in table.unmapped],
    }


@dataclass
class TableView:
    """The table as text cells, for the terminal, the site and the app (one formatting)."""

    header: list[str]
    rows: list[list[tuple[str, Mark | None]]]
    legend: str
    problems: list[str]
    unmapped: list[str]


def table_view(table: ResultsTable) -> TableView:
    """Header, rows of ``(text, mark)`` cells, the legend and the runs without numbers."""
    header = ["Ablation", "Runs"]
    for m in table.metrics:
        header += [m, f"Δ {m}"]
    rows: list[list[tuple[str, Mark | None]]] = []
    for row in table.rows:
        cells: list[tuple[str, Mark | None]] = [(row.label, None), (row.runs_text(), None)]
        for m in table.metrics:
            d = decimals(table, m)
            cells.append((cell(row, m, d), row.marks.get(m)))
            cells.append((diff_cell(row, m, d), None))
        rows.append(cells)
    return TableView(
        header=header,
        rows=rows,
        legend=legend(table),
        problems=[f"{p.run_id}: {p.status} ({p.detail})" for p in table.problems],
        unmapped=[f"{name}: {reason}" for name, reason in table.unmapped],
    )


def from_json(data: Any) -> ResultsTable:
    """A table back from :func:`to_json` (what the site and the app are given)."""
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ValueError(f"not an ablationkit results file (format {RESULTS_FORMAT})")
    rows = []
    for r in data["rows"]:
        row = Row(
            ablation=str(r["ablation"]),
            variant=str(r["variant"]),
            expected=int(r["expected"]),
            finished=int(r["finished"]),
        )
        row.stats = {
            str(m): Stat(
                float(s["mean"]),
                None if s["std"] is None else float(s["std"]),
                int(s["n"]),
                [float(v) for v in s["values"]],
            )
            for m, s in r["stats"].items()
        }
        row.diffs = {str(m): float(v) for m, v in r["diffs"].items()}
        row.marks = {str(m): v for m, v in r["marks"].items() if v in ("best", "worst")}
        row.problems = [
            Problem(str(p["run_id"]), int(p["seed"]), p["status"], str(p["detail"]))
            for p in r["problems"]
        ]
        rows.append(row)
    metrics = [str(m["name"]) for m in data["metrics"]]
    return ResultsTable(
        paper_id=str(data["paper_id"]),
        plan=str(data.get("plan", "")),
        metrics=metrics,
        rows=rows,
        lower_better={str(m["name"]): bool(m["lower_is_better"]) for m in data["metrics"]},
        unmapped=[(str(u["ablation"]), str(u["reason"])) for u in data.get("unmapped", [])],
    )


def load_results(folder: str | Path) -> tuple[ResultsTable, Path | None]:
    """The table ``results`` wrote to ``folder`` (its ``results.json``) and its chart, if
    any; a missing or damaged file is a one-line :class:`FormatError` naming it."""
    from ablationkit.errors import FormatError
    from ablationkit.fsutil import load_json
    from ablationkit.sandbox import open_regular

    folder = Path(folder)
    path = folder / JSON if folder.is_dir() else folder
    try:
        with open_regular(path) as handle:
            data = load_json(handle.read(16 * 1024 * 1024))
        table = from_json(data)
    except FileNotFoundError:
        raise FormatError(
            "no results.json here (write it with `ablationkit results`)", where=folder
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise FormatError(
            f"not a results file ({type(exc).__name__}: {detail})", where=path
        ) from None
    chart = path.with_name(CHART)
    return table, chart if chart.is_file() and not chart.is_symlink() else None


def write_results(
    table: ResultsTable, out_dir: str | Path, *, chart: bool = True
) -> dict[str, Path]:
    """Write Markdown, LaTeX, JSON and (with matplotlib) the PNG chart; returns the paths.

    The chart is skipped, not failed, when matplotlib is missing or no row has a difference
    to draw: the tables are the main output.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from ablationkit.errors import FormatError

        raise FormatError(
            f"the output folder cannot be made ({exc.strerror or exc})", where=out
        ) from None
    written = {
        "markdown": out / MARKDOWN,
        "latex": out / LATEX,
        "json": out / JSON,
    }
    atomic_write_text(written["markdown"], to_markdown(table))
    atomic_write_text(written["latex"], to_latex(table))
    atomic_write_text(written["json"], json.dumps(to_json(table), indent=2) + "\n")
    if chart:
        from ablationkit.runs.chart import draw_chart

        path = draw_chart(table, out / CHART)
        if path is not None:
            written["chart"] = path
    return written
