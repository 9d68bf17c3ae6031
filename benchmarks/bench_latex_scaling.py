"""LaTeX loading time against paper size: does a doubling of the source double the time?

A loader that is quadratic somewhere (string concatenation in a loop, re-scanning from the
start, a line count per match) is invisible on a 60 kB paper and takes minutes on a 2 MB one,
which is what a hostile or merely generated paper looks like. This loads generated
single-section papers of 1, 2 and 4 MB (prose with inline and display math, ``\\cite``,
``\\ref``, ``\\textbf``, the paper's own macros, figures and paragraphs) and prints the seconds
and the time ratio per doubling: about 2 is linear, about 4 is quadratic. CPU time is printed
beside wall time because the ratio of CPU times suffers less from other work on the machine.

    python benchmarks/bench_latex_scaling.py [--sizes 1 2 4] [--shapes mixed prose] [--rounds 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from ablationkit.papers import load_paper

_PREAMBLE = r"""\documentclass{article}
\usepackage{amsmath,xspace}
\newcommand{\method}{ScaleNet\xspace}
\newcommand{\R}{\mathbb{R}}
\newcommand{\norm}[1]{\left\lVert #1 \right\rVert}
\def\eg{e.g.\xspace}
\title{\method: A Generated Paper for Scaling Measurements}
\begin{document}
\maketitle
\begin{abstract}
We measure how the loader scales with \method on papers of several megabytes.
\end{abstract}
\section{Method}\label{sec:method}
"""

_WORDS = (
    "the model learns a representation of each token from its context and the masked "
    "positions are predicted jointly while the schedule decides how many tokens remain "
    "hidden at every step of decoding which keeps the number of iterations small and the "
    "quality of the samples high compared with autoregressive baselines on image data"
).split()


def _sentence(rng: random.Random, index: int, odds: int) -> str:
    """A sentence; six in ``odds`` of them hold a command or math (``\\cite``, ``$x$``...)."""
    words = rng.sample(_WORDS, rng.randint(8, 16))
    words[0] = words[0].capitalize()
    extra = rng.randrange(odds)
    if extra == 0:
        words.insert(rng.randrange(len(words)), f"$x_{{{index}}} = \\sum_j W_{{ij}} h_j$")
    elif extra == 1:
        words.append(f"\\cite{{ref{index % 97},ref{(index * 7) % 97}}}")
    elif extra == 2:
        words.append("(see Section~\\ref{sec:method} and Figure~\\ref{fig:f0})")
    elif extra == 3:
        words.insert(rng.randrange(len(words)), f"\\textbf{{{rng.choice(_WORDS)}}}")
    elif extra == 4:
        words.insert(rng.randrange(len(words)), "\\method")
    elif extra == 5:
        words.insert(rng.randrange(len(words)), "\\eg $\\norm{v} \\in \\R^d$")
    return " ".join(words) + "."


def _paragraph(rng: random.Random, index: int, odds: int) -> str:
    sentences = range(rng.randint(3, 7))
    text = "\n".join(_sentence(rng, index * 10 + k, odds) for k in sentences)
    if odds > 7:
        return text  # plain prose: no displays or figures either
    if index % 9 == 4:
        text += (
            f"\n\\begin{{equation}}\n  \\mathcal{{L}}_{{{index}}} = "
            f"\\sum_i \\log p(x_i \\mid x_{{<i}})\n\\end{{equation}}"
        )
    if index % 40 == 0:
        text += (
            f"\n\\begin{{figure}}[t]\\centering\\includegraphics{{f{index}.pdf}}\n"
            f"\\caption{{Results of \\method for setting {index}.}}\\label{{fig:f{index}}}"
            "\n\\end{figure}"
        )
    return text


SHAPES = {"mixed": 7, "prose": 360}  # odds: six in this many sentences hold a command


def generate(megabytes: float, shape: str = "mixed", seed: int = 0) -> str:
    """A single-section paper of about ``megabytes`` MB, the same prose for every size.

    ``mixed``: six sentences in seven hold a command or math, with display equations and
    figures; ``prose``: one in sixty does (paragraphs of plain prose, which reach pylatexenc as
    long runs of characters).
    """
    odds = SHAPES[shape]
    rng = random.Random(seed)
    target = int(megabytes * 1024 * 1024)
    parts = [_PREAMBLE]
    size = len(_PREAMBLE)
    index = 0
    while size < target:
        paragraph = _paragraph(rng, index, odds) + "\n\n"
        parts.append(paragraph)
        size += len(paragraph)
        index += 1
    parts.append("\\end{document}\n")
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--rounds", type=int, default=1, help="best of this many loads")
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            print(f"{shape}:", flush=True)
            _measure(Path(tmp), shape, args.sizes, args.rounds)


def _measure(tmp: Path, shape: str, sizes: list[float], rounds: int) -> None:
    """One line per size: seconds (best of ``rounds``) and the ratio to the previous size."""
    previous: tuple[float, float, float] | None = None
    for megabytes in sizes:
        path = tmp / f"{shape}_{megabytes:g}mb.tex"
        path.write_text(generate(megabytes, shape), encoding="utf-8")
        wall = cpu = float("inf")
        for _ in range(rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            paper = load_paper(path)
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        line = f"{megabytes:>5g} MB  {wall:8.2f} s wall {cpu:8.2f} s CPU  {paper.words:>8} words"
        if previous is not None:
            line += (
                f"  per x{megabytes / previous[0]:g} size: x{wall / previous[1]:.2f} wall,"
                f" x{cpu / previous[2]:.2f} CPU"
            )
        print(line, flush=True)
        previous = (megabytes, wall, cpu)


if __name__ == "__main__":
    main()
