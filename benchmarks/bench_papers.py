"""Paper loading speed: PDF pages/s and LaTeX projects/s, beside the raw library calls.

For PDFs the baseline is PyMuPDF's plain ``page.get_text()`` over every page (what any tool
pays to get text out); for LaTeX it is pylatexenc's ``latex_to_text`` over the concatenated
``.tex`` files of the project (text without structure, inputs or macros). Both are measured
in the same run on the same files, so the ratio is what to read.

    python benchmarks/bench_papers.py [--rounds 5] [--papers ../shared/papers]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ablationkit.papers import load_paper, sample_paper_path

DEFAULT_PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"


def _best(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _synthetic_pdf(directory: Path) -> Path:
    """A 20-page two-level paper, so the PDF figure does not rest on a single file."""
    import pymupdf

    doc = pymupdf.open()
    toc = []
    body = "Body text of the synthetic benchmark paper, long enough to wrap lines. " * 12
    for number in range(1, 21):
        page = doc.new_page()
        page.insert_textbox(
            pymupdf.Rect(60, 60, 540, 90), f"{number} Section {number}", fontsize=13
        )
        page.insert_textbox(pymupdf.Rect(60, 100, 540, 700), body * 3, fontsize=10)
        toc.append([1, f"Section {number}", number])
    doc.set_toc(toc)
    path = directory / "synthetic.pdf"
    doc.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, default=DEFAULT_PAPERS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import pymupdf
    from pylatexenc.latex2text import LatexNodes2Text

    with tempfile.TemporaryDirectory() as tmp:
        pdfs = [*sorted(args.papers.glob("*/paper.pdf")), _synthetic_pdf(Path(tmp))]
        pages = sum(pymupdf.open(p).page_count for p in pdfs)

        def raw_pdf() -> None:
            for path in pdfs:
                with pymupdf.open(path) as doc:
                    for page in doc:
                        page.get_text()

        def ours_pdf() -> None:
            for path in pdfs:
                load_paper(path)

        projects = sorted(p / "source" for p in args.papers.glob("*") if (p / "source").is_dir())
        projects.append(sample_paper_path())
        sources = [
            "\n".join(
                f.read_text("utf-8", errors="replace") for f in sorted(project.rglob("*.tex"))
            )
            for project in projects
        ]
        raw_converter = LatexNodes2Text()

        def raw_latex() -> None:
            for source in sources:
                raw_converter.latex_to_text(source)

        def ours_latex() -> None:
            for project in projects:
                load_paper(project)

        rows = [
            ("PDF: ablationkit load_paper", pages, "pages", ours_pdf),
            ("PDF: raw pymupdf get_text", pages, "pages", raw_pdf),
            ("LaTeX: ablationkit load_paper", len(projects), "projects", ours_latex),
            ("LaTeX: raw pylatexenc", len(projects), "projects", raw_latex),
        ]
        print(
            f"{len(pdfs)} PDFs ({pages} pages), {len(projects)} LaTeX projects; "
            f"best and median of {args.rounds} rounds"
        )
        results = {}
        for name, count, unit, fn in rows:
            best, median = _best(fn, args.rounds)
            results[name] = count / best
            print(f"{name:<32}{count / best:>9.1f} {unit}/s (best){count / median:>9.1f} (median)")
        print(f"PDF ratio ours/raw:   {results[rows[0][0]] / results[rows[1][0]]:.2f}x")
        print(f"LaTeX ratio ours/raw: {results[rows[2][0]] / results[rows[3][0]]:.2f}x")


if __name__ == "__main__":
    main()
