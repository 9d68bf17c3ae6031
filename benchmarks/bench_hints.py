"""``extract_hints`` speed: today's single-pass implementation against the one it replaced.

Issue 15 measured ``extract_hints`` at 7 ms per 13 KB paper and 33 ms per 61 KB paper (56% of
the interpreter's time on long papers), against a per-paper CPU budget of 5 ms for the whole
request path. The old implementation ran one regex per metric name (48 full-text scans, each
starting with a look-behind, which keeps ``re`` from skipping ahead to a literal) and split,
re-joined and searched every paragraph. It is kept here, verbatim and importable from this
benchmark only, so both run in the same process on the same texts: the ratio is what to read.

The texts are what the planner feeds it: ``view(paper, mode).to_markdown()`` for the bundled
sample and every paper in ``../shared/papers`` (LaTeX project, and its PDF when it has one),
in author and reviewer mode.

    python benchmarks/bench_hints.py [--rounds 20] [--papers ../shared/papers]
    python benchmarks/bench_hints.py --record tests/data/hints_before_issue15.json

``--record`` writes the old implementation's hints for the LaTeX projects and the sample
(with a digest of each input text): the fixture ``tests/test_hints.py`` holds the new
implementation to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablationkit.papers import load_paper, sample_paper_path, view
from ablationkit.planner.hints import (
    METRIC_NAMES,
    PaperHints,
    Setting,
    _clean_name,
    _meaning,
    extract_hints,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ABLATIONKIT_SHARED", ROOT.parent / "shared"))
MODES = ("author", "reviewer")

# ---- the implementation before issue 15 (verbatim but for names) ---------------------------

_OLD_MATH_SETTING = re.compile(
    r"\$\s*(?P<name>\\?[A-Za-z][A-Za-z_{}\\]{0,20}?(?:_\{?[A-Za-z0-9,]{1,8}\}?)?)\s*=\s*"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE]-?[0-9]+)?|10\^\{?-?[0-9]+\}?)\s*\$"
)
_OLD_NAMED_SETTING = re.compile(
    r"\b(?P<name>learning rate|batch size|dropout(?: rate)?|temperature|margin|weight decay|"
    r"momentum|warm-?up(?: steps)?|hidden (?:size|dimension)|embedding (?:size|dimension)|"
    r"number of (?:layers|heads|iterations|steps|epochs|frames|candidates|clusters|experts|"
    r"samples|tokens|neighbou?rs)|window size|kernel size|rank|mask(?:ing)? ratio|"
    r"top-?k|beam size)\b(?: \w+){0,3}? (?:of|=|is|to|set to|as)\s+"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE]-?[0-9]+)?)\b",
    re.I,
)
_OLD_ALTERNATIVE = re.compile(
    r"\b(instead|rather than|in contrast to|as opposed to|replac\w+|"
    r"alternatively|compared (?:to|with)|we (?:use|adopt|choose)|unlike|tends to)\b",
    re.I,
)
_OLD_METRIC_PATTERNS = [
    (
        m,
        m.lower(),
        re.compile(rf"(?<![\w-]){re.escape(m)}(?!\w)", 0 if m.isupper() or len(m) <= 3 else re.I),
    )
    for m in METRIC_NAMES
]


def old_extract_hints(text: str, *, max_settings: int = 8, max_alternatives: int = 4) -> PaperHints:
    """``extract_hints`` as it was before issue 15."""
    settings: list[Setting] = []
    seen: set[str] = set()
    for match in [*_OLD_MATH_SETTING.finditer(text), *_OLD_NAMED_SETTING.finditer(text)]:
        name = _clean_name(match.group("name"))
        key = name.lower().strip("\\")
        if key in seen or len(settings) >= max_settings:
            continue
        seen.add(key)
        is_math = match.re is _OLD_MATH_SETTING
        settings.append(
            Setting(name, match.group("value"), _meaning(text, match) if is_math else None)
        )
    alternatives: list[str] = []
    for paragraph in re.split(r"\n\s*\n|:\s*\n", text):
        if len(alternatives) >= max_alternatives:
            break
        paragraph = paragraph.strip()
        if paragraph.startswith(("#", "[", "|", "\\begin")) or "\\begin{" in paragraph:
            continue  # headings, figure placeholders, tables and display math
        flat = " ".join(paragraph.split())
        if not _OLD_ALTERNATIVE.search(flat):
            continue  # one search per paragraph; sentences only where a cue is
        for sentence in re.split(r"(?<=[.!?])\s+", flat):
            if (
                _OLD_ALTERNATIVE.search(sentence)
                and 6 <= len(sentence.split()) <= 40
                and len(alternatives) < max_alternatives
            ):
                alternatives.append(sentence)
    counts: Counter[str] = Counter()
    lowered = text.lower()
    for metric, needle, pattern in _OLD_METRIC_PATTERNS:
        if needle in lowered and (found := len(pattern.findall(text))):
            counts[metric] = found
    metrics = [m for m, _ in counts.most_common(6)]
    return PaperHints(settings, alternatives, metrics)


# ---- the texts -------------------------------------------------------------------------------


def corpus(papers: Path | None = None, *, pdf: bool = True) -> list[tuple[str, str]]:
    """``[(name, text)]``: what the planner gives ``extract_hints`` for the sample and each
    shared paper in both modes; ``name`` is ``paper[.pdf]/mode``."""
    papers = SHARED / "papers" if papers is None else papers
    sources: list[tuple[str, Path]] = [("sample_paper", sample_paper_path())]
    for project in sorted(papers.glob("*")) if papers.exists() else []:
        if (project / "meta.json").exists():
            sources.append((project.name, project))
            if pdf and (project / "paper.pdf").exists():
                sources.append((f"{project.name}.pdf", project / "paper.pdf"))
    texts = []
    for name, path in sources:
        paper = load_paper(path)
        for mode in MODES:
            texts.append((f"{name}/{mode}", view(paper, mode).to_markdown()))  # type: ignore[arg-type]
    return texts


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hints_as_json(hints: PaperHints) -> dict[str, Any]:
    return {
        "settings": [[s.name, s.value, s.meaning] for s in hints.settings],
        "alternatives": hints.alternatives,
        "metrics": hints.metrics,
    }


def record(path: Path, papers: Path | None) -> None:
    """Write the old implementation's hints for the LaTeX papers and the sample."""
    entries = {
        name: {"sha256": digest(text), "chars": len(text), **hints_as_json(old_extract_hints(text))}
        for name, text in corpus(papers, pdf=False)
    }
    path.write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"recorded {len(entries)} texts in {path}")


# ---- the benchmark ---------------------------------------------------------------------------


def _best(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--record", type=Path, default=None, metavar="JSON")
    args = parser.parse_args()
    if args.record:
        record(args.record, args.papers)
        return

    texts = corpus(args.papers)
    print(f"{'text':<38}{'KB':>6}{'old ms':>9}{'new ms':>9}{'speed-up':>10}  same")
    total_old = total_new = total_kb = 0.0
    for name, text in texts:
        old, _ = _best(lambda t=text: old_extract_hints(t), args.rounds)  # type: ignore[misc]
        new, _ = _best(lambda t=text: extract_hints(t), args.rounds)  # type: ignore[misc]
        same = hints_as_json(old_extract_hints(text)) == hints_as_json(extract_hints(text))
        kb = len(text.encode("utf-8")) / 1024
        total_old, total_new, total_kb = total_old + old, total_new + new, total_kb + kb
        print(
            f"{name:<38}{kb:>6.1f}{old * 1e3:>9.2f}{new * 1e3:>9.2f}{old / new:>9.1f}x  "
            f"{'yes' if same else 'NO'}"
        )
    print(
        f"per KB (best of {args.rounds}): old {total_old / total_kb * 1e3:.3f} ms, "
        f"new {total_new / total_kb * 1e3:.3f} ms; "
        f"13 KB paper ~{13 * total_new / total_kb * 1e3:.2f} ms, "
        f"61 KB paper ~{61 * total_new / total_kb * 1e3:.2f} ms (new)"
    )


if __name__ == "__main__":
    main()
