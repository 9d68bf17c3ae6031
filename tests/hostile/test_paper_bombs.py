"""Attacks on the paper loaders through the size and shape of a paper, and their outcomes.

A stranger's paper may be huge, nest braces thousands deep, define macros that expand
exponentially, or hold a million headings. Each such paper either loads (in time roughly
proportional to its size) or fails with one line naming the file — never a traceback, a hang
or gigabytes of memory. Every load that could hang runs in a forked child with a generous
timeout (a hang guard, not a speed test) and, where memory is the attack, an address-space
limit.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import resource
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ablationkit.errors import AblationKitError, FormatError
from ablationkit.papers import Paper, latex_text, load_paper
from ablationkit.papers.latex import load_latex
from ablationkit.papers.latex_text import latex_to_text
from ablationkit.papers.model import MAX_SECTION_DEPTH, Section, build_tree

HEAD = "\\documentclass{article}\n\\begin{document}\n\\section{Intro}\nVisible text.\n"
TAIL = "\n\\end{document}\n"


def everything(paper: Paper) -> str:
    return "\n".join(
        [paper.title, paper.abstract, *(s.title + "\n" + s.text for s in paper.walk())]
    )


def guarded(fn: Callable[[], Any], *, timeout: float = 60.0, memory_mb: int | None = None) -> Any:
    """``fn()`` in a forked child: its value, or its ``AblationKitError`` re-raised here.

    The child is killed after ``timeout`` seconds (the test fails: the loader hung) and, with
    ``memory_mb``, may map at most that much more memory than the test process already has.
    Any other exception fails the test with the child's traceback.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        if memory_mb is not None:
            pages = int(Path("/proc/self/statm").read_text().split()[0])
            limit = pages * resource.getpagesize() + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            sender.send(("ok", fn()))
        except AblationKitError as exc:
            sender.send(("error", (type(exc).__name__, str(exc))))
        except BaseException:
            sender.send(("crash", traceback.format_exc()))

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        if not receiver.poll(timeout):
            pytest.fail(f"still running after {timeout} s: the loader hangs")
        kind, value = receiver.recv()
    except EOFError:
        pytest.fail(f"the child died without an answer (exit code {process.exitcode})")
    finally:
        process.kill()
        process.join()
    if kind == "crash":
        pytest.fail(f"not a one-line error:\n{value}")
    if kind == "error":
        raise (
            FormatError(value[1]) if value[0] != "AblationKitError" else AblationKitError(value[1])
        )
    return value


def load_text_of(path: Path) -> str:
    return everything(load_paper(path))


def one_line_error(path: Path, *, timeout: float = 60.0, memory_mb: int | None = None) -> str:
    """The one-line error loading ``path`` gives (the test fails if it loads)."""
    with pytest.raises(FormatError) as caught:
        guarded(lambda: load_text_of(path), timeout=timeout, memory_mb=memory_mb)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def prose_paper(megabytes: float) -> str:
    """A single-section paper of realistic prose: math, citations, references, bold, macros."""
    rng = random.Random(1)
    words = (
        "we train the model on masked tokens and predict them in parallel so that decoding "
        "needs few steps while the quality of samples stays high on every benchmark we tried"
    ).split()
    extras = (" $x_i = W h_i$", " \\cite{a,b}", " (Section~\\ref{sec:m})", " \\textbf{bold}")
    parts = ["\\documentclass{article}\n\\newcommand{\\sys}{Foo\\xspace}\n\\begin{document}\n"]
    parts.append("\\section{Method}\\label{sec:m}\n")
    size = 0
    while size < megabytes * 1024 * 1024:
        sentences = []
        for _ in range(5):
            sentence = " ".join(rng.choice(words) for _ in range(14)).capitalize()
            if rng.random() < 0.3:
                sentence += rng.choice(extras) + " with \\sys"
            sentences.append(sentence + ".")
        paragraph = "\n".join(sentences) + "\n\n"
        parts.append(paragraph)
        size += len(paragraph)
    return "".join(parts) + TAIL


# --------------------------------------------------------------------------- size


def test_two_megabyte_single_section_paper_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "big.tex", prose_paper(2))
    words = guarded(lambda: load_paper(path).words, timeout=400)
    assert words > 250_000


def test_paper_over_the_time_budget_fails_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "slow.tex", prose_paper(0.05))
    with pytest.raises(FormatError) as caught:
        load_latex(path, time_budget=0.0)
    message = str(caught.value)
    assert message.startswith(str(path)) and "0 s" in message and "\n" not in message


def test_latex_converted_in_pieces_reads_as_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """Converting piece by piece (to stay linear) gives the text one pylatexenc call gives,
    even cut at every safe line end: groups, environments, optional arguments and math
    spanning lines are never cut."""
    fragment = prose_paper(0.02).split("\\label{sec:m}\n", 1)[1].replace(TAIL, "")
    fragment += (
        "\\begin{itemize}\n\\item one\n\n\\item[b)] two\n\\end{itemize}\n"
        "\\twocolumn[\n\\begin{center}\nWide\n\\end{center}\n\n]\n"
        "Display $$a\n\nb$$ and \\[ c\n\n\\] and {grouped\n\ntext} and \\textbf\n{bold\nface}\n"
        "\\cite[p.~3\n]{key} and $\\Big[ x \\in [0, 1) \\Big]$ end.\n"
    )
    monkeypatch.setattr(latex_text, "PIECE_CHARS", 1)
    assert len(list(latex_text._pieces(fragment))) > 50
    assert latex_to_text(fragment) == latex_text.tidy(latex_text._pylatexenc(fragment))


def test_long_run_of_plain_text_reaches_pylatexenc_in_short_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pylatexenc's time grows with the square of a run of plain characters (a 1 MB section
    of prose took minutes): no run it is given may be long."""
    from pylatexenc import latexwalker

    given: list[int] = []
    real_init = latexwalker.LatexWalker.__init__

    def spy(self: Any, s: str, *args: Any, **kwargs: Any) -> None:
        given.append(len(s))
        real_init(self, s, *args, **kwargs)

    monkeypatch.setattr(latexwalker.LatexWalker, "__init__", spy)
    runs = ("word " * 10_000 + "\\emph{x} ") * 4 + "\n\n" + ("line\n" * 10_000 + "--") * 4
    path = write(tmp_path / "run.tex", HEAD + runs + TAIL)
    text = load_text_of(path)
    assert text.count("word") == 40_000 and text.count("line") == 40_000
    assert given and max(given) < 20_000  # of a section of 400,000 characters


# --------------------------------------------------------------------------- macros


def test_def_chain_bomb_fails_fast_with_one_line(tmp_path: Path) -> None:
    names = "abcdefgh"
    defs = "\\def\\a{xxxxxxxx}" + "".join(
        "\\def\\" + name + "{" + ("\\" + prev) * 8 + "}" for prev, name in itertools.pairwise(names)
    )
    path = write(
        tmp_path / "bomb.tex",
        HEAD.replace("\\begin{document}", defs + "\n\\begin{document}") + "\\h" + TAIL,
    )
    message = one_line_error(path, timeout=30)
    assert "macro expansion of \\" in message and "bomb" in message


def test_def_chain_with_arguments_fails_fast_with_one_line(tmp_path: Path) -> None:
    defs = "\\def\\b#1{#1#1#1#1#1#1#1#1}"
    use = "\\b{" * 9 + "xx" + "}" * 9
    path = write(
        tmp_path / "bomb.tex",
        HEAD.replace("\\begin{document}", defs + "\n\\begin{document}") + use + TAIL,
    )
    message = one_line_error(path, timeout=30)
    assert "macro expansion of \\b" in message


def test_self_recursive_def_fails_with_one_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "loop.tex",
        HEAD.replace("\\begin{document}", "\\def\\a{\\a x}\n\\begin{document}") + "\\a" + TAIL,
    )
    message = one_line_error(path, timeout=30)
    assert "\\a" in message and "recursive" in message


def test_many_macros_defined_and_used_load(tmp_path: Path) -> None:
    defs = "".join(f"\\newcommand{{\\m{_letters(i)}}}{{w{i}}}\n" for i in range(3000))
    uses = " ".join(f"\\m{_letters(i)}" for i in range(0, 3000, 7))
    path = write(
        tmp_path / "many.tex",
        HEAD.replace("\\begin{document}", defs + "\\begin{document}") + uses + TAIL,
    )
    text = guarded(lambda: load_text_of(path))
    assert "w2996" in text


def _letters(n: int) -> str:
    out = ""
    for _ in range(3):
        n, rem = divmod(n, 26)
        out += chr(97 + rem)
    return out


# --------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [300, 10_000])
def test_braces_nested_deep_load(tmp_path: Path, depth: int) -> None:
    path = write(
        tmp_path / "braces.tex", HEAD + "{" * depth + "deep text" + "}" * depth + "\nAfter." + TAIL
    )
    text = guarded(lambda: load_text_of(path))
    assert "deep text" in text and "After." in text


def test_braces_nested_deep_in_cli_exit_zero_without_traceback(cli: str, tmp_path: Path) -> None:
    path = write(tmp_path / "braces.tex", HEAD + "\\textbf{" * 300 + "deep" + "}" * 300 + TAIL)
    result = subprocess.run(
        [cli, "paper", str(path), "--view", "reviewer"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "deep" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("env", ["itemize", "figure", "quote", "tabular"])
def test_environments_nested_10000_deep_load(tmp_path: Path, env: str) -> None:
    body = f"\\begin{{{env}}}" * 10_000 + "\\item inner \\caption{C}" + f"\\end{{{env}}}" * 10_000
    path = write(tmp_path / "envs.tex", HEAD + body + "\nAfter." + TAIL)
    text = guarded(lambda: load_text_of(path))
    assert "Visible text." in text and "After." in text


def test_deep_braces_in_a_section_title_load(tmp_path: Path) -> None:
    path = write(
        tmp_path / "title.tex",
        HEAD + "\\section{" + "{" * 2000 + "T" + "}" * 2000 + "}\nBody." + TAIL,
    )
    text = guarded(lambda: load_text_of(path))
    assert "Body." in text


# --------------------------------------------------------------------------- unclosed openers


@pytest.mark.parametrize(
    "opener",
    [
        "\\section[",
        "\\begin{figure}\\caption{",
        "\\caption{",
        "\\newcommand{",
        "\\newcommand{\\x}[",
        "\\def\\x ",
        "\\begin{comment}",
        "\\iffalse ",
        "\\begin{figure}",
        "\\begin{tabular}",
        "$",
        "{",
        "\\textbf{",
        "\\ref{",
        "\\captionof{figure}{",
    ],
)
def test_thousands_of_unclosed_openers_load_or_fail_with_one_line(
    tmp_path: Path, opener: str
) -> None:
    path = write(tmp_path / "open.tex", HEAD + (opener + "w ") * 4000 + "\nEnd." + TAIL)
    try:
        guarded(lambda: load_text_of(path), timeout=60)
    except FormatError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))


@pytest.mark.parametrize(
    "opener",
    [
        "\\cite[w ",
        "\\cite[{]} ",
        "\\cite[$ ",
        "\\newcommand{x}[w ",
        "\\includegraphics[",
        "\\href{",
        "\\textcolor{red}{",
    ],
)
def test_forty_nested_unclosed_macro_arguments_convert(opener: str) -> None:
    """pylatexenc retries such arguments exponentially often (sixteen took half a minute)."""
    text = guarded(lambda: latex_to_text(opener * 40 + "\n\nAfter."), timeout=60)
    assert text.endswith("After.")


def test_macros_missing_their_arguments_convert() -> None:
    """pylatexenc raised KeyError converting these (a traceback from the CLI)."""
    for fragment in ("\\textcolor[", "\\href{a}", "See \\colorbox[x]{y"):
        assert isinstance(latex_to_text(fragment + " tail words"), str)


def test_random_latex_soup_converts() -> None:
    """Random sequences of the constructs above, as a fuzzer would send them."""
    words = (
        "\\href{ \\textcolor{ \\frac{ \\cite[ \\newcommand{ \\includegraphics[ \\textbf{ { } [ ] "
        "$ $$ \\[ \\] \\begin{itemize} \\end{itemize} \\begin{tabular}{ \\item \\section \\url{ "
        "\\sqrt \\left( \\right) \\\\ w * \\emph \\color{ \\fbox \\twocolumn & # ^ _ ~"
    )
    vocabulary = [*words.split(), " ", "\n", "\n\n"]
    rng = random.Random(7)
    soups = [
        "".join(rng.choice(vocabulary) for _ in range(rng.randint(20, 200))) for _ in range(25)
    ]
    texts = guarded(lambda: [latex_to_text(soup) for soup in soups], timeout=120)
    assert len(texts) == len(soups)


# --------------------------------------------------------------------------- markdown and text


def test_markdown_with_a_million_headings_fails_fast_in_little_memory(tmp_path: Path) -> None:
    path = write(tmp_path / "heads.md", "# Heading\n\ntext\n\n" * 1_000_000)
    message = one_line_error(path, timeout=60, memory_mb=600)
    assert "headings" in message


def test_text_with_a_hundred_thousand_numbered_headings_fails_with_one_line(
    tmp_path: Path,
) -> None:
    lines = "".join(
        f"1.{i % 99 + 1}.{i // 99 % 99 + 1} Heading number\n\nSome text.\n\n"
        for i in range(100_000)
    )
    path = write(tmp_path / "heads.txt", lines)
    message = one_line_error(path, timeout=60, memory_mb=600)
    assert "headings" in message


def test_text_with_deep_numbered_headings_loads_shallow(tmp_path: Path) -> None:
    lines = ["Title of the paper", ""]
    number: list[int] = []
    for _ in range(40):
        number = [*number, 1]
        lines += [" ".join([".".join(map(str, number)), "Deep heading"]), "", "Text here.", ""]
    path = write(tmp_path / "deep.txt", "\n".join(lines))
    paper = guarded(lambda: load_paper(path))
    depth = 0
    stack = [(s, 1) for s in paper.sections]
    while stack:
        section, level = stack.pop()
        depth = max(depth, level)
        stack.extend((child, level + 1) for child in section.children)
    assert depth <= MAX_SECTION_DEPTH


@pytest.mark.parametrize(
    "body",
    [
        "# " + "#" * 100_000 + "x\n",
        "<!--" * 200_000 + "\n",
        "![" * 200_000 + "\n",
        "![a](" * 100_000 + "\n",
        "<span " * 100_000 + "\n",
        "<a " * 100_000 + ">" + " " * 100_000 + "x\n",
        ">" * 100_000 + " quoted\n",
        "".join("  " * i + "- item\n" for i in range(3000)),
        "**" + "*" * 100_000 + "x\n",
    ],
    ids=[
        "hash-run",
        "comments",
        "images",
        "image-links",
        "spans",
        "anchors",
        "quotes",
        "list",
        "bold",
    ],
)
def test_markdown_with_pathological_lines_loads(tmp_path: Path, body: str) -> None:
    path = write(
        tmp_path / "odd.md", "# Title\n\n## Intro\n\nFirst words.\n\n" + body + "\nLast words.\n"
    )
    text = guarded(lambda: load_text_of(path), timeout=60)
    assert "First words." in text and "Last words." in text


def test_markdown_paragraphs_of_one_huge_section_load(tmp_path: Path) -> None:
    """Each paragraph used to be appended by copying the section's text so far."""
    path = write(
        tmp_path / "long.md", "# Title\n\n## Intro\n\n" + "A short paragraph.\n\n" * 600_000
    )
    words = guarded(lambda: load_paper(path).words, timeout=120)
    assert words == 1_800_001


def test_sections_nested_deeper_than_the_limit_fail_with_one_line() -> None:
    flat = [Section(title=f"s{i}", level=i + 1) for i in range(MAX_SECTION_DEPTH + 5)]
    with pytest.raises(FormatError) as caught:
        build_tree(flat, where="paper.pdf")
    assert str(caught.value).startswith("paper.pdf: ") and "deep" in str(caught.value)
