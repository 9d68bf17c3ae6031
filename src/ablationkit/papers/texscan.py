"""Low-level LaTeX scanning: comments, balanced groups, environments and user macros.

These are the few pieces of TeX's reading rules a paper loader needs to be right about; the
conversion of what remains to text is left to pylatexenc.

Everything here is linear in the text it reads, whatever a hostile paper holds: each scan
either consumes what it read or is bounded, so a paper of thousands of unclosed braces,
brackets or comment environments cannot make a load quadratic.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ablationkit.errors import FormatError

CONTROL_WORD = re.compile(r"\\([A-Za-z@]+)")


class Deadline:
    """A wall-clock budget for loading one paper, checked between the steps of the load.

    Every step is linear, but pylatexenc reads only some hundred kilobytes a second, so a
    paper of many megabytes (or many expanded ones) could still keep a batch busy for
    minutes; past its budget the load fails with one line instead. ``None`` means no budget.
    """

    def __init__(self, seconds: float | None, *, where: str | Path | None = None) -> None:
        self.seconds = seconds
        self.where = where
        self._end = None if seconds is None else time.monotonic() + seconds

    def check(self, doing: str) -> None:
        if self._end is not None and time.monotonic() > self._end:
            raise FormatError(
                f"loading took longer than its {self.seconds:g} s time budget (stopped while "
                f"{doing}); the paper is too large or too convoluted",
                where=self.where,
            )


def strip_comments(text: str) -> str:
    """Drop ``%`` comments (not ``\\%``), keeping line breaks so line numbers stay right."""
    out = []
    for line in text.split("\n"):
        if "%" in line:
            index = _comment_start(line)
            if index is not None:
                line = line[:index]
        out.append(line)
    text = "\n".join(out)
    text = _cut_spans(text, _COMMENT_BEGIN, _COMMENT_END)
    return _cut_spans(text, _IFFALSE, _FI)


_COMMENT_BEGIN = re.compile(r"\\begin\{comment\}")
_COMMENT_END = re.compile(r"\\end\{comment\}")
_IFFALSE = re.compile(r"\\iffalse\b")
_FI = re.compile(r"\\fi\b")


def _cut_spans(text: str, begin: re.Pattern[str], end: re.Pattern[str]) -> str:
    """``re.sub(begin + ".*?" + end, "", text, flags=re.S)`` without its quadratic worst case.

    The regex retries every unclosed opener up to the end of the text; but once no closer
    follows an opener, none follows any later opener either, so one failed search ends it.
    """
    pieces: list[str] = []
    pos = 0
    while (opened := begin.search(text, pos)) is not None:
        closed = end.search(text, opened.end())
        if closed is None:
            break
        pieces.append(text[pos : opened.start()])
        pos = closed.end()
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


def _comment_start(line: str) -> int | None:
    start = 0
    while (index := line.find("%", start)) != -1:
        backslashes = 0
        j = index - 1
        while j >= 0 and line[j] == "\\":
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            return index
        start = index + 1
    return None


def read_group(text: str, start: int) -> tuple[str, int]:
    """Content of the balanced ``{...}`` group opening at ``text[start]``, and the index after it.

    Escaped braces (``\\{``) do not count. An unclosed group runs to the end of the text,
    as a tolerant reader of half-finished drafts should.
    """
    assert text[start] == "{"
    end = group_end(text, start)
    if end is None:
        return text[start + 1 :], len(text)
    return text[start + 1 : end - 1], end


_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.S)
_SCAN_FIRST = 4096
_TABLES = threading.local()


def group_end(text: str, start: int) -> int | None:
    """The index after the ``}`` closing the group that opens at ``text[start]``; ``None`` if
    the group is never closed.

    Most groups close within a few kilobytes and are scanned; for a longer (or unclosed) one
    the answer comes from a table of every brace pair of the text, built once in one pass, so
    that callers probing thousands of unclosed groups stay linear.
    """
    depth = 0
    window = min(len(text), start + _SCAN_FIRST)
    for match in _BRACE_TOKEN.finditer(text, start, window):
        ch = match.group()
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return match.end()
    if window == len(text):
        return None
    close = _brace_table(text).get(start)
    return None if close is None else close + 1


def _brace_table(text: str) -> dict[int, int]:
    """``{open index: close index}`` of every closed brace pair of ``text``.

    The tables of the last two texts are kept (per thread, keyed by identity, which is safe
    because the entry holds the text): a load reads one large text at a time.
    """
    cache: list[tuple[str, dict[int, int]]] = getattr(_TABLES, "entries", [])
    for cached_text, table in cache:
        if cached_text is text:
            return table
    table = {}
    stack: list[int] = []
    for match in _BRACE_TOKEN.finditer(text):
        ch = match.group()
        if ch == "{":
            stack.append(match.start())
        elif ch == "}" and stack:
            table[stack.pop()] = match.start()
    _TABLES.entries = [(text, table), *cache[:1]]
    return table


_SPACES = re.compile(r"[ \t\n\r]*")
_SPACES_NO_NEWLINE = re.compile(r"[ \t]*")


def skip_spaces(text: str, i: int, *, newlines: bool = True) -> int:
    match = (_SPACES if newlines else _SPACES_NO_NEWLINE).match(text, i)
    return match.end() if match else i


def read_argument(text: str, i: int) -> tuple[str, int] | None:
    """A mandatory TeX argument at ``i``: a ``{group}``, a control sequence or one character."""
    i = skip_spaces(text, i)
    if i >= len(text):
        return None
    if text[i] == "{":
        return read_group(text, i)
    if text[i] == "\\":
        match = CONTROL_WORD.match(text, i)
        end = match.end() if match else min(i + 2, len(text))
        return text[i:end], end
    return text[i], i + 1


def read_optional(text: str, i: int) -> tuple[str | None, int]:
    j = skip_spaces(text, i)
    if j < len(text) and text[j] == "[":
        found = read_bracket(text, j)
        if found is not None:
            return found
    return None, i


MAX_OPTIONAL_CHARS = 2000
_BRACKET_TOKEN = re.compile(r"\\.|[{}\]]", re.S)


def read_bracket(text: str, start: int) -> tuple[str, int] | None:
    """``[...]`` content, allowing braces (and brackets inside braces) within it.

    ``None`` when no ``]`` closes it within ``MAX_OPTIONAL_CHARS``: that is not an optional
    argument (or a broken one), and scanning on would make every such ``[`` re-read the rest
    of the paper.
    """
    depth = 0
    limit = min(len(text), start + 1 + MAX_OPTIONAL_CHARS)
    for match in _BRACKET_TOKEN.finditer(text, start + 1, limit):
        ch = match.group()
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "]" and depth <= 0:
            return text[start + 1 : match.start()], match.end()
    if limit == len(text):
        return text[start + 1 :], len(text)  # unclosed at the end: a half-finished draft
    return None


def find_environment(text: str, name: str, start: int = 0) -> tuple[int, int, int, int] | None:
    """``(begin, body_start, body_end, end)`` of the next ``name`` environment, nesting-aware.

    Each tag is searched for once: an environment nested thousands deep costs one pass, not a
    search from every ``\\begin`` to the first ``\\end``.
    """
    begin_tag = f"\\begin{{{name}}}"
    end_tag = f"\\end{{{name}}}"
    begin = text.find(begin_tag, start)
    if begin == -1:
        return None
    depth = 0
    i = begin
    next_begin = begin
    next_end = text.find(end_tag, i)
    while True:
        if next_begin != -1 and next_begin < i:
            next_begin = text.find(begin_tag, i)
        if next_end != -1 and next_end < i:
            next_end = text.find(end_tag, i)
        if next_end == -1:
            return begin, begin + len(begin_tag), len(text), len(text)
        if next_begin != -1 and next_begin < next_end:
            depth += 1
            i = next_begin + len(begin_tag)
            continue
        depth -= 1
        if depth == 0:
            return begin, begin + len(begin_tag), next_end, next_end + len(end_tag)
        i = next_end + len(end_tag)


# --------------------------------------------------------------------------- user macros


@dataclass(frozen=True)
class Macro:
    nargs: int
    default: str | None
    body: str


# Commands whose meaning the loader relies on; a paper redefining them is not followed.
PROTECTED = frozenset(
    (
        "part chapter section subsection subsubsection paragraph subparagraph appendix "
        "appendices begin end item label ref eqref cref Cref autoref cite citep citet caption "
        "captionof input include subfile import subimport title author maketitle abstract "
        "documentclass usepackage newcommand renewcommand def bibliography"
    ).split()
)

_DEFINITION = re.compile(
    r"\\(?P<kind>(?:re|provide)?newcommand\*?|[gex]?def|DeclareMathOperator\*?|"
    r"DeclareRobustCommand\*?|(?:re)?newenvironment\*?)(?![A-Za-z@])"
)
_DEF_PARAMETERS = re.compile(r"((?:\s*#\d)*)\s*\{")
MAX_DEPTH = 40
# Expansion may grow the text to this many times its size, or to MIN_EXPANSION_ALLOWANCE
# characters if that is more; a paper's own macros never come near (they abbreviate), a \def
# bomb (each macro eight of the previous) passes it within a few levels.
MAX_EXPANSION_GROWTH = 4
MIN_EXPANSION_ALLOWANCE = 2_000_000
MAX_EXPANSIONS = 500_000


def extract_macros(text: str) -> tuple[str, dict[str, Macro]]:
    """Collect ``\\newcommand``/``\\def``-style definitions and cut them out of the text."""
    macros: dict[str, Macro] = {}
    pieces: list[str] = []
    pos = 0
    for match in _DEFINITION.finditer(text):
        if match.start() < pos:
            continue
        parsed = _parse_definition(text, match)
        if parsed is None:
            continue
        name, macro, end = parsed
        pieces.append(text[pos : match.start()])
        pos = end
        if name and macro and name not in PROTECTED:
            macros[name] = macro
    pieces.append(text[pos:])
    return "".join(pieces), macros


def _skip_argument(text: str, i: int) -> int | None:
    """Where the mandatory argument at ``i`` ends, without copying it; ``None`` if there is
    none or its group is never closed (a definition that cannot be read, to be left alone)."""
    i = skip_spaces(text, i)
    if i >= len(text):
        return None
    if text[i] == "{":
        return group_end(text, i)
    found = read_argument(text, i)
    return None if found is None else found[1]


def _parse_definition(text: str, match: re.Match[str]) -> tuple[str, Macro | None, int] | None:
    """``(name, macro, end)`` of the definition at ``match``; ``None`` leaves it in the text.

    A definition that cannot be read returns ``None`` after reading a bounded amount (an
    unclosed group is recognised from the brace table, not by copying the rest), so that
    thousands of broken definitions cost no more than thousands of good ones.
    """
    kind = match.group("kind").rstrip("*")
    i = skip_spaces(text, match.end())
    if kind.endswith("environment"):
        end = _skip_argument(text, i)
        if end is None:
            return None
        _, i = read_optional(text, end)
        _, i = read_optional(text, i)
        for _ in range(2):
            end = _skip_argument(text, i)
            if end is None:
                return None
            i = end
        return "", None, i
    # The macro's name: {\name} or \name.
    if i < len(text) and text[i] == "{":
        end = group_end(text, i)
        if end is None:
            return None
        raw_name, i = text[i + 1 : end - 1].strip(), end
    else:
        name_match = CONTROL_WORD.match(text, i)
        if name_match is None:
            return None
        raw_name, i = name_match.group(0), name_match.end()
    if not raw_name.startswith("\\"):
        return None
    name = raw_name[1:]
    if kind.startswith("DeclareMathOperator"):
        body = read_argument(text, i)
        if body is None:
            return None
        return name, Macro(0, None, f"\\operatorname{{{body[0]}}}"), body[1]
    if kind.endswith("def"):
        # Undelimited parameters only (#1#2...): delimited ones are beyond what a paper
        # loader should emulate.
        params = _DEF_PARAMETERS.match(text, i)
        if params is None:
            return None
        definition, end = read_group(text, params.end() - 1)
        return name, Macro(len(re.findall(r"#\d", params.group(1))), None, definition), end
    nargs_text, i = read_optional(text, i)
    default, i = read_optional(text, i)
    body_arg = read_argument(text, i)
    if body_arg is None:
        return None
    try:
        nargs = int(nargs_text) if nargs_text else 0
    except ValueError:
        return None
    return name, Macro(nargs, default, body_arg[0]), body_arg[1]


def _substitute(body: str, args: list[str]) -> str:
    """Put the arguments in for ``#1``..``#9``; ``##`` is a literal ``#``."""

    def arg(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return args[index - 1] if 0 < index <= len(args) else ""

    return re.sub(r"#(\d)", arg, body).replace("##", "#")


_NO_XSPACE_BEFORE = set(",.'/?;:!~-)]}\"\\\n") | {""}
_LETTER_NAME = re.compile(r"[A-Za-z@]+")


def _macro_pattern(macros: dict[str, Macro]) -> re.Pattern[str]:
    """Control sequences that may name one of ``macros``.

    Letter names are matched as any control word and looked up (one alternation of thousands
    of names would be tried at every backslash); the rare names with other characters
    (``\\newcommand{\\R2}``) are tried first, longest first, as before.
    """
    odd = sorted((n for n in macros if not _LETTER_NAME.fullmatch(n)), key=len, reverse=True)
    alternatives = [re.escape(n) for n in odd] + ["[A-Za-z@]+"]
    return re.compile(r"\\(" + "|".join(alternatives) + r")(?![A-Za-z@])")


def expand_macros(
    text: str,
    macros: dict[str, Macro],
    *,
    where: str | Path | None = None,
    deadline: Deadline | None = None,
) -> str:
    """Expand the paper's own macros the way TeX would, recursively, with bounds.

    A control word swallows the spaces after it; ``\\xspace`` at the end of an expansion gives
    the space back when a word follows. Runaway recursion, a result over
    ``MAX_EXPANSION_GROWTH`` times the text (or ``MIN_EXPANSION_ALLOWANCE``) and more than
    ``MAX_EXPANSIONS`` expansions are one-line errors naming the macro, not a hang: an
    argument-free macro is expanded once and its text reused, so a chain of them costs what
    its result costs.
    """
    if not macros:
        return text
    pattern = _macro_pattern(macros)
    limit = max(MAX_EXPANSION_GROWTH * len(text), MIN_EXPANSION_ALLOWANCE)
    expansions = 0
    # name -> (expansion, how many levels below its body the expansion went)
    memo: dict[str, tuple[str, int]] = {}

    def too_deep(name: str) -> FormatError:
        return FormatError(
            f"macro expansion of \\{name} nests too deep (over {MAX_DEPTH} levels: "
            "a recursive \\def or \\newcommand?)",
            where=where,
        )

    def expand(fragment: str, depth: int, name: str) -> tuple[str, int]:
        """The expansion of ``fragment`` at ``depth``, and the deepest level it reached."""
        nonlocal expansions
        if depth > MAX_DEPTH:
            raise too_deep(name)
        out: list[str] = []
        size = 0
        deepest = depth
        pos = 0
        for match in pattern.finditer(fragment):
            if match.start() < pos:
                continue
            called = match.group(1)
            macro = macros.get(called)
            if macro is None:
                continue
            i = match.end()
            args: list[str] = []
            next_char_override = None
            if macro.nargs == 0:
                i = skip_spaces(fragment, i, newlines=False)
                if fragment.startswith("{}", i):
                    i += 2
                    next_char_override = "{"  # xspace adds no space before a group
            else:
                count = macro.nargs
                if macro.default is not None:
                    optional, i = read_optional(fragment, i)
                    args.append(macro.default if optional is None else optional)
                    count -= 1
                for _ in range(count):
                    arg = read_argument(fragment, i)
                    if arg is None:
                        break
                    args.append(arg[0])
                    i = arg[1]
            remembered = memo.get(called) if macro.nargs == 0 else None
            if remembered is not None:
                expanded, below = remembered
                if depth + 1 + below > MAX_DEPTH:
                    raise too_deep(called)
            else:
                expansions += 1
                if expansions > MAX_EXPANSIONS:
                    raise FormatError(
                        f"macro expansion of \\{called} exceeds {MAX_EXPANSIONS} expansions "
                        "(a \\def loop or bomb?)",
                        where=where,
                    )
                if deadline is not None and expansions % 1024 == 0:
                    deadline.check("expanding macros")
                expanded, reached = expand(_substitute(macro.body, args), depth + 1, called)
                below = reached - depth - 1
                if macro.nargs == 0:
                    memo[called] = (expanded, below)
            deepest = max(deepest, depth + 1 + below)
            if expanded.endswith("\\xspace"):
                expanded = expanded[: -len("\\xspace")]
                following = next_char_override or fragment[i : i + 1]
                if following not in _NO_XSPACE_BEFORE and following != "{":
                    expanded += " "
            size += match.start() - pos + len(expanded)
            if size > limit:
                raise FormatError(
                    f"macro expansion of \\{name or called} exceeds {limit} characters "
                    "(a \\def loop or bomb?)",
                    where=where,
                )
            out.append(fragment[pos : match.start()])
            out.append(expanded)
            pos = i
        if not out:
            return fragment, deepest
        out.append(fragment[pos:])
        return "".join(out), deepest

    expanded_text, _ = expand(text, 0, "")
    return expanded_text.replace("\\xspace", "")
