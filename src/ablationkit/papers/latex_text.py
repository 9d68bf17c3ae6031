"""LaTeX fragment -> plain text through pylatexenc, tuned for what a planner should read.

Math stays LaTeX (``$...$`` and display environments verbatim); citation keys are kept in
brackets because names like ``Esser21vqgan`` tell a model which baseline is meant; font,
spacing and layout commands vanish together with their arguments.

pylatexenc is quadratic in the length of a run of plain characters (it appends each one to a
string attribute) and recursive in the nesting of groups, so a fragment is converted in pieces:
cut at line ends outside any group, environment, optional argument or math, and inside a
run of plain text when that run grows long. Pieces nested too deep for its recursion are
converted by a plain brace-stripping fallback instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from ablationkit.errors import FormatError
from ablationkit.papers.texscan import Deadline

_KEEP_ARG = (
    "textsf",
    "texttt",
    "textrm",
    "textnormal",
    "textup",
    "textmd",
    "textsl",
    "textsc",
    "textbf",
    "textit",
    "emph",
    "underline",
    "uline",
    "mbox",
    "hbox",
    "text",
    "textcolor",
    "colorbox",
    "revised",
    "added",
    "highlight",
    "hl",
    "ensuremath",
    "fbox",
    "framebox",
    "makebox",
    "raisebox",
    "scalebox",
    "resizebox",
    "rotatebox",
    "smash",
    "phantomsection",
    "centerline",
    "leftline",
)
_DROP_WITH_ARGS = {
    # name: argument spec for the parser ({ mandatory, [ optional, * star)
    "fontsize": "{{",
    "selectfont": "",
    "vspace": "*{",
    "hspace": "*{",
    "vskip": "",
    "hskip": "",
    "includegraphics": "*[[{",
    "includesvg": "[{",
    "setlength": "{{",
    "addtolength": "{{",
    "setcounter": "{{",
    "addtocounter": "{{",
    "linewidth": "",
    "newpage": "",
    "clearpage": "",
    "cleardoublepage": "",
    "pagebreak": "[",
    "noindent": "",
    "centering": "",
    "raggedright": "",
    "raggedleft": "",
    "small": "",
    "footnotesize": "",
    "scriptsize": "",
    "tiny": "",
    "large": "",
    "Large": "",
    "LARGE": "",
    "huge": "",
    "Huge": "",
    "normalsize": "",
    "bfseries": "",
    "itshape": "",
    "ttfamily": "",
    "sffamily": "",
    "rmfamily": "",
    "scshape": "",
    "upshape": "",
    "mdseries": "",
    "normalfont": "",
    "color": "[{",
    "definecolor": "{{{",
    "label": "{",
    "maketitle": "",
    "tableofcontents": "",
    "FloatBarrier": "",
    "vfill": "",
    "hfill": "",
    "medskip": "",
    "bigskip": "",
    "smallskip": "",
    "par": "",
    "protect": "",
    "relax": "",
    "null": "",
    "IEEEpubidadjcol": "",
    "IEEEoverridecommandlockouts": "",
    "balance": "",
    "looseness": "",
    "sloppy": "",
    "todo": "[{",
    "marginpar": "[{",
    "thispagestyle": "{",
    "pagestyle": "{",
    "linenumbers": "",
    "onecolumn": "",
    "twocolumn": "[",
    "bibliographystyle": "{",
    "bibliography": "{",
    "vspace*": "{",
    "index": "{",
}
_ABBREVIATIONS = {
    "eg": "e.g. ",
    "ie": "i.e. ",
    "Eg": "E.g. ",
    "Ie": "I.e. ",
    "cf": "cf. ",
    "Cf": "Cf. ",
    "etc": "etc. ",
    "vs": "vs. ",
    "wrt": "w.r.t. ",
    "dof": "d.o.f. ",
    "etal": "et al. ",
    "iid": "i.i.d. ",
    "aka": "a.k.a. ",
    "resp": "resp. ",
    "xspace": "",
    "ldots": "...",
    "dots": "...",
    "LaTeX": "LaTeX",
    "TeX": "TeX",
}
_CITE_COMMANDS = (
    "cite",
    "citep",
    "citet",
    "citealp",
    "citealt",
    "citeauthor",
    "citeyear",
    "citeyearpar",
    "parencite",
    "textcite",
    "autocite",
    "footcite",
    "Cite",
    "Citep",
    "Citet",
    "citenum",
    "shortcite",
)


@cache
def _converter() -> tuple[Any, Any]:
    from pylatexenc.latex2text import (
        LatexNodes2Text,
        MacroTextSpec,
        get_default_latex_context_db,
    )
    from pylatexenc.latexwalker import get_default_latex_context_db as walker_db
    from pylatexenc.macrospec import MacroSpec

    def cite(node: Any, l2tobj: Any) -> str:
        args = node.nodeargd.argnlist if node.nodeargd else []
        keys = l2tobj.nodelist_to_text([args[-1]]) if args and args[-1] is not None else ""
        return "[" + ", ".join(k.strip() for k in keys.split(",") if k.strip()) + "]"

    walker = walker_db()
    walker.add_context_category(
        "ablationkit",
        prepend=True,
        macros=[MacroSpec(name, spec) for name, spec in _DROP_WITH_ARGS.items()]
        + [MacroSpec(name, "*[[{") for name in _CITE_COMMANDS]
        + [MacroSpec(name, "{") for name in _KEEP_ARG if name not in {"textcolor", "colorbox"}]
        + [
            MacroSpec("textcolor", "[{{"),
            MacroSpec("colorbox", "[{{"),
            MacroSpec("url", "{"),
            MacroSpec("href", "{{"),
        ]
        + [MacroSpec(name, "") for name in _ABBREVIATIONS],
    )
    text_db = get_default_latex_context_db()
    text_db.add_context_category(
        "ablationkit",
        prepend=True,
        macros=[MacroTextSpec(name, "") for name in _DROP_WITH_ARGS]
        + [MacroTextSpec(name, cite) for name in _CITE_COMMANDS]
        + [
            MacroTextSpec(name, "%(1)s")
            for name in _KEEP_ARG
            if name not in {"textcolor", "colorbox"}
        ]
        + [
            MacroTextSpec("textcolor", "%(3)s"),
            MacroTextSpec("colorbox", "%(3)s"),
            MacroTextSpec("url", "%(1)s"),
            MacroTextSpec("href", "%(2)s"),
        ]
        + [MacroTextSpec(name, text) for name, text in _ABBREVIATIONS.items()],
    )
    return walker, LatexNodes2Text(
        latex_context=text_db, math_mode="verbatim", strict_latex_spaces=False
    )


# A piece is cut at the first safe line end after this many characters: small pieces keep
# pylatexenc's runs short, and those without any command or special character need no
# pylatexenc at all.
PIECE_CHARS = 256
# A run of plain characters (no backslash, brace or dollar) longer than this is cut even where
# no cut is safe: pylatexenc's cost grows with the square of such a run.
MAX_PLAIN_RUN = 8192
# Pieces whose groups and environments nest deeper than this skip pylatexenc (recursive: it
# fails near 250 levels) for the fallback.
MAX_NESTING = 100

_TOKEN = re.compile(
    r"\\(?P<env>begin|end)\s*\{[^{}\n]*\}|\\\[|\\\]|\\\(|\\\)|(?P<cs>\\[A-Za-z@]+\*?|\\.)"
    r"|\$\$|[{}$\n\[\]]",
    re.S,
)
_OPTIONAL_AHEAD = re.compile(r"[ \t]*\n?[ \t]*\[")


@cache
def _argspec(name: str) -> str:
    """pylatexenc's argument spec for macro ``name`` (``"[{"``: optional, then mandatory)."""
    spec = _converter()[0].get_macro_spec(name)
    parser = getattr(spec, "args_parser", None)
    return str(getattr(parser, "argspec", "") or "")


class _Piecer:
    """Cuts a fragment into pieces for pylatexenc; see ``_pieces``."""

    def __init__(self, fragment: str) -> None:
        self.fragment = fragment
        self.start = 0  # where the current piece begins
        self.deepest = 0  # deepest group/environment nesting in the current piece
        self.neutral: list[int] = []  # '[' in the current piece to hide from pylatexenc
        self.optional = -1  # index of the '[' of the optional argument now open, or -1
        self.optional_braces = 0  # brace depth where it opened
        self.optional_rest = ""  # the macro's argument spec after it
        self.open_braces = 0  # groups opened in this piece and not closed yet

    def cut(self, end: int, depth: int) -> tuple[str, int]:
        """The piece up to ``end``; an optional argument still open in it is not one, and its
        groups still open are closed (pylatexenc's recovery from an unclosed group, like its
        retries of an optional argument, is exponential in how many nest)."""
        if self.optional != -1:
            self.neutral.append(self.optional)
            self.optional = -1
        piece = self.fragment[self.start : end]
        if self.neutral:
            # '{[}' is a bracket character to pylatexenc, never an optional argument.
            chunks, pos = [], self.start
            for at in sorted(self.neutral):
                chunks += [self.fragment[pos:at], "{[}"]
                pos = at + 1
            piece = "".join([*chunks, self.fragment[pos:end]])
            self.neutral = []
        if self.open_braces:
            piece += "}" * self.open_braces
            self.open_braces = 0
        deepest, self.start, self.deepest = self.deepest, end, depth
        return piece, deepest


def _pieces(fragment: str) -> Iterator[tuple[str, int]]:
    """``(piece, deepest nesting in it)`` in order; the pieces join to ``fragment`` (but for
    the brackets hidden as ``{[}``).

    A safe cut is right after a newline outside every brace group, environment, optional
    argument (``\\twocolumn[`` ... ``]``) and math, where the next line does not continue an
    argument (``{``, ``[``, ``*``). Mistaking the state (a ``\\verb`` holding a brace) only
    costs cuts; a forced cut inside a long plain run, the one unsafe cut, never happens in
    ordinary prose, which has a command every few hundred characters.

    pylatexenc retries a macro's optional arguments exponentially often when they nest or stay
    unclosed (sixteen ``\\cite[`` take half a minute), so the arguments of each macro are
    followed through its spec and only one optional argument is open at a time, as in TeX,
    whose first ``]`` ends it: a ``[`` that would open another, or one left open, is hidden.
    """
    state = _Piecer(fragment)
    braces = envs = 0
    math: str | None = None
    optional_at = mandatory_at = -1  # where the current macro's next argument would open
    optional_rest = mandatory_rest = ""  # its spec after that argument
    pending: dict[int, str] = {}  # brace depth -> spec left when the group opened there closes
    run_start = 0  # where the current run of plain characters began
    n = len(fragment)

    def expect(spec: str, pos: int) -> None:
        """Note where the next argument of a macro whose remaining spec is ``spec`` opens."""
        nonlocal optional_at, optional_rest, mandatory_at, mandatory_rest
        optional_at = mandatory_at = -1
        spec = spec.lstrip("*")
        while spec.startswith("["):
            if ahead := _OPTIONAL_AHEAD.match(fragment, pos):
                optional_at, optional_rest = ahead.end() - 1, spec[1:]
                return
            spec = spec[1:].lstrip("*")
        if spec.startswith("{"):
            j = pos
            while j < n and fragment[j] in " \t\n":
                j += 1
            mandatory_at, mandatory_rest = j, spec[1:]

    def forced_cuts(upto: int) -> Iterator[tuple[str, int]]:
        nonlocal run_start
        while upto - run_start > MAX_PLAIN_RUN:
            cut = fragment.rfind(" ", run_start + MAX_PLAIN_RUN // 2, run_start + MAX_PLAIN_RUN)
            cut = cut + 1 if cut != -1 else run_start + MAX_PLAIN_RUN
            yield state.cut(cut, braces + envs)
            run_start = cut

    for match in _TOKEN.finditer(fragment):
        token = match.group()
        at = match.start()
        yield from forced_cuts(at)
        if token == "\n":
            if (
                braces == 0
                and envs == 0
                and state.optional == -1
                and math is None
                and match.end() - state.start >= PIECE_CHARS
            ):
                j = match.end()
                while j < n and fragment[j] in " \t":
                    j += 1
                if j < n and fragment[j] in "{[*":
                    continue
                yield state.cut(match.end(), 0)
                run_start = match.end()
            continue
        if token == "[":
            if at == optional_at:
                if state.optional == -1:
                    state.optional, state.optional_braces = at, braces
                    state.optional_rest = optional_rest
                else:
                    state.neutral.append(at)
            continue
        if token == "]":
            if state.optional != -1 and braces == state.optional_braces:
                state.optional = -1
                expect(state.optional_rest, match.end())
            continue
        run_start = match.end()
        if cs := match.group("cs"):
            expect(_argspec(cs[1:].rstrip("*") or cs[1:]), match.end())
        elif token == "{":
            if at == mandatory_at:
                pending[braces] = mandatory_rest
            braces += 1
            state.open_braces += 1
        elif token == "}":
            braces = max(0, braces - 1)
            state.open_braces = max(0, state.open_braces - 1)
            if state.optional != -1 and braces < state.optional_braces:
                state.neutral.append(state.optional)  # its group closed first: never closed
                state.optional = -1
            expect(pending.pop(braces, ""), match.end())
        elif match.group("env") == "begin":
            envs += 1
        elif match.group("env") == "end":
            envs = max(0, envs - 1)
        elif token in ("$", "$$"):
            math = token if math is None else None if math == token else math
        elif token in ("\\[", "\\("):
            math = token
        elif token in ("\\]", "\\)"):
            math = None
        state.deepest = max(state.deepest, braces + envs)
    yield from forced_cuts(n)
    if state.start < n:
        yield state.cut(n, 0)


# pylatexenc reads about one token per character; a piece that needs this many times more
# has hit one of its exponential recoveries (nested macros with unclosed arguments) and is
# converted by the fallback instead.
TOKENS_PER_CHAR = 10


class _TooManyTokens(BaseException):
    """pylatexenc went over its token budget (a BaseException, so nothing in it catches it)."""


@cache
def _bounded_walker() -> type:
    from pylatexenc.latexwalker import LatexWalker

    class BoundedWalker(LatexWalker):
        """A LatexWalker that reads at most ``budget`` tokens: pylatexenc re-reads the text
        when it recovers from errors, exponentially often for some nestings, and this is
        the one place every such re-reading goes through."""

        def __init__(
            self, s: str, *, budget: int, deadline: Deadline | None, **kwargs: Any
        ) -> None:
            super().__init__(s, **kwargs)
            self.budget = budget
            self.deadline = deadline

        def get_token(self, *args: Any, **kwargs: Any) -> Any:
            self.budget -= 1
            if self.budget < 0:
                raise _TooManyTokens
            if self.deadline is not None and self.budget % 4096 == 0:
                self.deadline.check("converting LaTeX to text")
            return super().get_token(*args, **kwargs)

    return BoundedWalker


def _pylatexenc(piece: str, deadline: Deadline | None = None) -> str:
    walker_context, converter = _converter()
    walker = _bounded_walker()(
        piece,
        budget=TOKENS_PER_CHAR * len(piece) + 1000,
        deadline=deadline,
        latex_context=walker_context,
        tolerant_parsing=True,
    )
    nodes, _, _ = walker.get_latex_nodes()
    return str(converter.nodelist_to_text(nodes))


_FALLBACK_DROP = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}|\\[A-Za-z@]+\*?|[{}]")


def _fallback(piece: str) -> str:
    """Text of a piece pylatexenc cannot take (nested too deep for its recursion, over its
    token budget, or crashing on a macro without its arguments): commands, environment tags
    and braces dropped, everything else kept. Crude, but only broken or hostile papers get
    here."""
    return _FALLBACK_DROP.sub("", piece).replace("\\", "")


# What pylatexenc does not give back as it is: commands, groups, math, specials and ligatures.
_SPECIAL = re.compile(r"[\\{}$&#^_~%\[\]]|--|``|''|!`|\?`")


def latex_to_text(fragment: str, *, deadline: Deadline | None = None) -> str:
    """Plain text of a LaTeX fragment, math kept as LaTeX, whitespace tidied.

    Converted piece by piece (see ``_pieces``) so the time stays linear in the fragment's
    size; ``deadline`` is checked between pieces and every few thousand tokens.
    """
    if not fragment.strip():
        return ""
    parts: list[str] = []
    for piece, nesting in _pieces(fragment):
        if deadline is not None:
            deadline.check("converting LaTeX to text")
        if nesting > MAX_NESTING:
            parts.append(_fallback(piece))
            continue
        if _SPECIAL.search(piece) is None:
            parts.append(piece)  # plain text: pylatexenc would give it back unchanged
            continue
        try:
            parts.append(_pylatexenc(piece, deadline))
        except _TooManyTokens:
            parts.append(_fallback(piece))
        except FormatError:
            raise  # the deadline
        except Exception:
            # RecursionError, or a KeyError from a macro missing its arguments (a broken
            # \textcolor[): a stranger's paper must not crash the load.
            parts.append(_fallback(piece))
    return tidy("".join(parts))


def _unwrap(paragraph: str) -> str:
    """Join the source's hard-wrapped lines; keep lines in math and list items apart."""
    if "\\begin{" in paragraph or "$$" in paragraph or "\\[" in paragraph:
        return paragraph
    return re.sub(r"\n(?!\* )", " ", paragraph)


def tidy(text: str) -> str:
    text = text.replace("\xa0", " ")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = "\n\n".join(_unwrap(p) for p in text.split("\n\n"))
    text = re.sub(r"\.\s+([,;:])", r".\1", text)
    return text.strip()
