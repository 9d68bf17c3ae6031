"""``build_site``: run directories in, a static site out (no CDN, works from ``file://``).

Pages are rendered with jinja2 (autoescaped: plans are model output). Data the scripts need
(matches to draw, filter values) is embedded in each page as JSON, so nothing is fetched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ablationkit import __version__
from ablationkit.bench.store import file_stem
from ablationkit.errors import AblationKitError, FormatError
from ablationkit.fsutil import atomic_write_bytes, atomic_write_text
from ablationkit.site.collect import PaperEntry, RunData, Score, load_run, scores
from ablationkit.trajectory import PLAN_HEADING, PLAN_STYLES, REASONING_HEADING, REASONING_STYLE

MARKER = ".ablationkit-site"


@dataclass
class SiteReport:
    out_dir: Path
    pages: int
    runs: list[str]
    leaderboard: list[Score]
    warnings: list[str] = field(default_factory=list)


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ablationkit.site", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}"
    env.filters["usd"] = lambda v: "—" if v is None else f"${v:,.4f}" if v < 1 else f"${v:,.2f}"
    env.filters["ci"] = lambda v: "" if not v else f"{100 * v[0]:.1f}–{100 * v[1]:.1f}"
    return env


def _style_css() -> str:
    """The trajectory boxes' own colours, so the site looks like the markdown it mirrors."""
    parts = [
        f".box.reasoning{{--light:{REASONING_STYLE.light};--mid:{REASONING_STYLE.mid};"
        f"--border:{REASONING_STYLE.border};--title:{REASONING_STYLE.title}}}"
    ]
    for mode, style in PLAN_STYLES.items():
        parts.append(
            f".box.plan.{mode}{{--light:{style.light};--mid:{style.mid};"
            f"--border:{style.border};--title:{style.title}}}"
        )
    return "\n".join(parts) + "\n"


def _prepare_out(out_dir: Path) -> None:
    """An empty directory or an earlier site of ours (cleared); never someone else's files.

    A symbolic link as the folder is refused rather than followed: the marker that makes a
    folder "ours" is a plain file anyone can copy, and a build deletes what it clears, so it
    must happen where the user pointed, not wherever a link leads (give the real folder).
    Links planted inside a site of ours are removed, never followed.
    """
    if out_dir.is_symlink():
        raise FormatError(
            f"is a symbolic link (to {os.readlink(out_dir)}): give the folder itself",
            where=out_dir,
        )
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FormatError("exists and is not a directory", where=out_dir)
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise AblationKitError(
                "not empty and not a site built by ablationkit: choose an empty directory",
                where=out_dir,
            )
        for child in ("runs", "assets", "index.html", MARKER):
            target = out_dir / child
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FormatError(
            f"cannot create the site folder ({exc.strerror})", where=out_dir
        ) from None
    atomic_write_text(out_dir / MARKER, f"built by ablationkit {__version__}\n")


def _matches(entry: PaperEntry) -> dict[str, list[list[int]]]:
    """Per judge, the ``[planned, target]`` pairs within its k (what the page draws)."""
    drawn: dict[str, list[list[int]]] = {}
    for judge, verdict in entry.judgements.items():
        if verdict.error is None:
            pairs = {(m.planned, m.target) for m in verdict.matches if m.planned < verdict.k}
            drawn[judge] = [list(pair) for pair in sorted(pairs)]
    return drawn


def _load_results(folders: Sequence[str | Path]) -> dict[str, tuple[Any, Path | None]]:
    """Per paper id, the table view and chart of ``ablationkit results`` folders (issue 14);
    a damaged one stops the site with one line, as a damaged run does."""
    from ablationkit.runs.results import load_results, table_view

    found: dict[str, tuple[Any, Path | None]] = {}
    for folder in folders:
        table, chart = load_results(folder)
        found[table.paper_id] = (table_view(table), chart)
    return found


def build_site(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    resamples: int = 1000,
    results: Sequence[str | Path] = (),
) -> SiteReport:
    """Render the leaderboard and one page per paper and run into ``out_dir``; a paper with
    a ``results`` folder (from ``ablationkit results``) shows its ablation table and chart."""
    if not run_dirs:
        raise AblationKitError("give at least one run directory")
    ran = _load_results(results)
    runs: list[RunData] = []
    used: set[str] = set()
    for path in run_dirs:
        run = load_run(path)
        base, n = run.slug, 2
        while run.slug.casefold() in used:  # two runs named alike (a/run, b/Run): keep both
            run.slug, n = f"{base}-{n}", n + 1
        used.add(run.slug.casefold())
        runs.append(run)
    rows = [row for run in runs for row in scores(run, resamples=resamples)]
    # a judge that gave no verdict is listed after the ranked ones, never ranked by its zeros
    rows.sort(key=lambda r: (r.mode, r.failed, -r.macro.f1, r.run, r.judge))
    out = Path(out_dir)
    _prepare_out(out)
    env = _environment()
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    package = resources.files("ablationkit.site") / "assets"
    atomic_write_text(assets / "site.css", _style_css() + (package / "site.css").read_text("utf-8"))
    atomic_write_text(assets / "site.js", (package / "site.js").read_text("utf-8"))
    common = {
        "version": __version__,
        "reasoning_heading": REASONING_HEADING,
        "plan_heading": PLAN_HEADING,
        "models": sorted({r.model for r in runs}),
        "modes": sorted({m for r in runs for m in r.modes()}),
    }
    charts: dict[str, str] = {}
    for paper_id, (_, chart) in ran.items():
        if chart is not None:
            charts[paper_id] = f"results-{file_stem(paper_id)}.png"
            atomic_write_bytes(assets / charts[paper_id], chart.read_bytes())
    pages = 0
    for run in runs:
        for entry in run.papers:
            html = env.get_template("paper.html.j2").render(
                **common,
                root="../../",
                run=run,
                paper=entry,
                targets=entry.targets(),
                matches=_matches(entry),
                results=ran[entry.paper_id][0] if entry.paper_id in ran else None,
                results_chart=charts.get(entry.paper_id),
            )
            page = out / "runs" / run.slug / f"{entry.slug}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(page, html)
            pages += 1
    papers = sorted(
        ((run, entry) for run in runs for entry in run.papers),
        key=lambda pair: (pair[1].paper_id, pair[0].name),
    )
    index = env.get_template("index.html.j2").render(
        **common,
        root="",
        runs=runs,
        leaderboard=rows,
        papers=papers,
        warnings=[f"{run.name}: {w}" for run in runs for w in run.warnings],
    )
    atomic_write_text(out / "index.html", index)
    shown = {entry.paper_id for run in runs for entry in run.papers}
    warnings = [f"{run.name}: {w}" for run in runs for w in run.warnings]
    unshown = [paper_id for paper_id in ran if paper_id not in shown]
    warnings += [f"results for {p}: no page of that paper in these runs" for p in unshown]
    return SiteReport(
        out_dir=out,
        pages=pages + 1,
        runs=[r.name for r in runs],
        leaderboard=rows,
        warnings=warnings,
    )
