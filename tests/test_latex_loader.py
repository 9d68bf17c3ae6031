"""LaTeX projects made for the edge cases: inputs, macros, floats, numbering, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablationkit.errors import FormatError
from ablationkit.papers import load_paper
from ablationkit.papers.latex import find_main_tex, load_latex

PREAMBLE = r"""\documentclass{article}
\newcommand{\sys}{FooNet\xspace}
\newcommand{\hl}[2][red]{\textcolor{#1}{#2}}
\def\pair#1#2{(#1, #2)}
\newcommand{\suppsection}[1]{\section{{\fontsize{12}{13}\selectfont #1}}}
\title{\sys: A Test Paper}
"""


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def test_full_project(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "paper.tex": PREAMBLE
            + r"""\begin{document}
\maketitle
\begin{abstract}
We present \sys, 100\% tested. % a comment that must vanish
\end{abstract}
\input{sections/intro}
\include{sections/method}
\input sections/exp
\appendix
\suppsection{Proofs}
Proof text.
\end{document}
""",
            "sections/intro.tex": r"\section{Introduction}\label{sec:intro}"
            "\n"
            r"\sys is great. See Section~\ref{sec:method} and \cite{a,b}."
            "\n",
            "sections/method.tex": r"""\section{The \sys Model}\label{sec:method}
We compute \pair{x}{y} and \hl{this} and \hl[blue]{that}.
\begin{equation}
  \mathcal{L} = \sum_i x_i \label{eq:loss}
\end{equation}
\subsection*{Unnumbered detail}
Detail.
\paragraph{Run-in.} Paragraph text.
\begin{figure}[t]\centering\includegraphics{f.pdf}
\caption{An overview of \sys.}\label{fig:overview}\end{figure}
As Figure~\ref{fig:overview} shows.
""",
            "sections/exp.tex": r"""\section{Experiments}
\begin{table}\caption{Main results.}\label{tab:main}
\begin{tabular}{cc} SECRETCELL & 1 \\ \end{tabular}\end{table}
\subsection{Ablation study}
Without the loss it fails; see Table~\ref{tab:main}.
""",
            "unused.tex": r"\section{Not part of the paper}",
        },
    )
    paper = load_paper(tmp_path)
    assert paper.title == "FooNet: A Test Paper"
    assert paper.abstract == "We present FooNet, 100% tested."
    outline = [(s.number, s.title, s.role) for s in paper.walk()]
    assert outline == [
        ("1", "Introduction", "other"),
        ("2", "The FooNet Model", "method"),
        (None, "Unnumbered detail", "method"),
        (None, "Run-in.", "method"),
        ("3", "Experiments", "experiments"),
        ("3.1", "Ablation study", "ablation"),
        ("A", "Proofs", "appendix"),
    ]
    sections = {s.title: s for s in paper.walk()}
    assert sections["Introduction"].text == "FooNet is great. See Section 2 and [a, b]."
    method = sections["The FooNet Model"].text
    assert "(x, y)" in method and "this and that" in method
    assert r"\mathcal{L} = \sum_i x_i" in method and "label" not in method
    run_in = sections["Run-in."].text
    assert run_in.startswith("Paragraph text.")
    assert "[Figure 1: An overview of FooNet.]" in run_in and "As Figure 1 shows." in run_in
    experiments = sections["Experiments"].text
    assert "[Table 1: Main results.]" in experiments and "SECRETCELL" not in experiments
    assert "see Table 1." in sections["Ablation study"].text
    assert sections["Proofs"].appendix and sections["Proofs"].text == "Proof text."


def test_main_file_is_found_among_many(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a_notes.tex": "Just notes.",
            "sub/standalone.tex": r"\documentclass{standalone}\begin{document}x\end{document}",
            "draft_old.tex": r"\documentclass{article}",
            "main.tex": r"\documentclass{article}\begin{document}\section{A}a\end{document}",
            "appendix_main.tex": (
                r"\documentclass{article}\begin{document}\section{B}b\end{document}"
            ),
        },
    )
    assert find_main_tex(tmp_path).name == "main.tex"


def test_subfile_with_its_own_preamble(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tex": r"\documentclass{article}\begin{document}\subfile{parts/one}\end{document}",
            "parts/one.tex": "\\documentclass[../main.tex]{subfiles}\n\\begin{document}\n"
            "\\section{One}\nBody one.\n\\end{document}\n",
        },
    )
    paper = load_latex(tmp_path)
    assert [(s.title, s.text) for s in paper.walk()] == [("One", "Body one.")]


def test_escaped_percent_and_comment_environment(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tex": "\\documentclass{article}\\begin{document}\n\\section{S}\n"
            "Keep 5\\% here. % drop this\n"
            "\\begin{comment}\nhidden\n\\end{comment}\nend.\n"
            "\\end{document}\n"
        },
    )
    text = load_latex(tmp_path).sections[0].text
    assert "5% here." in text and "drop this" not in text and "hidden" not in text


def test_input_cycle_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tex": r"\documentclass{article}\begin{document}\input{a}\end{document}",
            "a.tex": "\\section{A}\n\\input{b}",
            "b.tex": "\\input{a}",
        },
    )
    with pytest.raises(FormatError) as info:
        load_paper(tmp_path)
    message = str(info.value)
    assert "\\input cycle: main.tex -> a.tex -> b.tex -> a.tex" in message
    assert "\n" not in message


def test_missing_input_names_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tex": "\\documentclass{article}\n\\begin{document}\n"
            "\\section{A}\ntext\n\\input{figures/gone}\n\\end{document}\n"
        },
    )
    # Real arXiv sources input files they do not ship: by default the rest still loads.
    paper = load_paper(tmp_path)
    assert paper.sections[0].text == "text"
    assert "main.tex: line 5: \\input{figures/gone}: file not found; skipped" in paper.warnings
    with pytest.raises(FormatError) as info:
        load_paper(tmp_path, strict=True)
    assert str(info.value).startswith("main.tex: line 5: \\input{figures/gone}: file not found")


def test_runaway_macro_is_an_error_not_a_hang(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tex": "\\documentclass{article}\\newcommand{\\loop}{\\loop x}"
            "\\begin{document}\\section{A}\\loop\\end{document}"
        },
    )
    with pytest.raises(FormatError, match="nests too deep"):
        load_paper(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00" + bytes(range(256)) * 4, "binary data"),
        (
            "\\documentclass{article}\\begin{document}caf\xe9\\end{document}".encode("latin-1"),
            "not UTF-8",
        ),
    ],
)
def test_bad_tex_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "paper.tex"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        load_paper(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_latin1_source_that_declares_it(tmp_path: Path) -> None:
    path = tmp_path / "paper.tex"
    path.write_bytes(
        b"\\documentclass{article}\\usepackage[latin1]{inputenc}\\begin{document}"
        b"\\section{R\xe9sum\xe9}Caf\xe9.\\end{document}"
    )
    paper = load_paper(path)
    assert paper.sections[0].title == "Résumé" and paper.sections[0].text == "Café."


def test_directory_without_latex(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", "utf-8")
    with pytest.raises(
        FormatError, match=r"neither a LaTeX main file \(\.tex with \\documentclass\)"
    ):
        load_paper(tmp_path)


def test_chapters_and_starred_numbering(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tex": "\\documentclass{report}\\begin{document}"
            "\\chapter{Intro}a\\section{Motivation}b\\section*{Aside}c"
            "\\section{Plan}d\\chapter{Method}e\\section{Model}f"
            "\\end{document}"
        },
    )
    paper = load_paper(tmp_path)
    assert [(s.number, s.title, s.level) for s in paper.walk()] == [
        ("1", "Intro", 1),
        ("1.1", "Motivation", 2),
        (None, "Aside", 2),
        ("1.2", "Plan", 2),
        ("2", "Method", 1),
        ("2.1", "Model", 2),
    ]
    assert paper.sections[1].role == "method"
