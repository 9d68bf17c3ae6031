"""Low-level LaTeX scanning: comments, balanced groups, environments and user macros.

These are the few pieces of TeX's reading rules a paper loader needs to be right about; the
conversion of what remains to text is left to pylatexenc.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ablationkit.errors import FormatError

CONTROL_WORD = re.compile(r"\\([A-Za-z@]+)")


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
    text = re.sub(r"\\begin\{comment\}.*?\\end\{comment\}", "", text, flags=re.DOTALL)
    return re.sub(r"\\iffalse\b.*?\\fi\b", "", text, flags=re.DOTALL)


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


def read_group(text: str, start: int, open_: str = "{", close: str = "}") -> tuple[str, int]:
    """Content of the balanced group opening at ``text[start]``, and the index after it.

    Escaped braces (``\\{``) do not count. An unclosed group runs to the end of the text,
    as a tolerant reader of half-finished drafts should.
    """
    assert text[start] == open_
    depth = 0
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return text[start + 1 :], n


def skip_spaces(text: str, i: int, *, newlines: bool = True) -> int:
    chars = " \t\n\r" if newlines else " \t"
    while i < len(text) and text[i] in chars:
        i += 1
    return i


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
        return read_bracket(text, j)
    return None, i


def read_bracket(text: str, start: int) -> tuple[str, int]:
    """``[...]`` content, allowing braces (and brackets inside braces) within it."""
    i = start + 1
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "]" and depth <= 0:
            return text[start + 1 : i], i + 1
        i += 1
    return text[start + 1 :], len(text)


def find_environment(text: str, name: str, start: int = 0) -> tuple[int, int, int, int] | None:
    """``(begin, body_start, body_end, end)`` of the next ``name`` environment, nesting-aware."""
    begin_tag = f"\\begin{{{name}}}"
    end_tag = f"\\end{{{name}}}"
    begin = text.find(begin_tag, start)
    if begin == -1:
        return None
    depth = 0
    i = begin
    while True:
        next_begin = text.find(begin_tag, i)
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
MAX_EXPANDED_CHARS = 50_000_000
MAX_DEPTH = 40


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


def _parse_definition(text: str, match: re.Match[str]) -> tuple[str, Macro | None, int] | None:
    kind = match.group("kind").rstrip("*")
    i = skip_spaces(text, match.end())
    if kind.endswith("environment"):
        arg = read_argument(text, i)
        if arg is None:
            return None
        _, i = arg
        nargs_text, i = read_optional(text, i)
        _, i = read_optional(text, i)
        for _ in range(2):
            arg = read_argument(text, i)
            if arg is None:
                return None
            i = arg[1]
        return "", None, i
    # The macro's name: {\name} or \name.
    if i < len(text) and text[i] == "{":
        raw_name, i = read_group(text, i)
        raw_name = raw_name.strip()
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
        brace = text.find("{", i)
        if brace == -1:
            return None
        params = text[i:brace]
        if not re.fullmatch(r"(?:\s*#\d)*\s*", params):
            return None  # delimited parameters: beyond what a paper loader should emulate
        body, end = read_group(text, brace)
        return name, Macro(len(re.findall(r"#\d", params)), None, body), end
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


def expand_macros(text: str, macros: dict[str, Macro], *, where: str | None = None) -> str:
    """Expand the paper's own macros the way TeX would, recursively, with bounds.

    A control word swallows the spaces after it; ``\\xspace`` at the end of an expansion gives
    the space back when a word follows. Runaway recursion is an error, not a hang.
    """
    if not macros:
        return text
    pattern = re.compile(
        r"\\(" + "|".join(sorted(map(re.escape, macros), key=len, reverse=True)) + r")(?![A-Za-z@])"
    )
    budget = [MAX_EXPANDED_CHARS]

    def expand(fragment: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise FormatError(
                "macro expansion nests too deep (a recursive \\newcommand?)", where=where
            )
        out: list[str] = []
        pos = 0
        for match in pattern.finditer(fragment):
            if match.start() < pos:
                continue
            macro = macros[match.group(1)]
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
            body = _substitute(macro.body, args)
            expanded = expand(body, depth + 1)
            if expanded.endswith("\\xspace"):
                expanded = expanded[: -len("\\xspace")]
                following = next_char_override or fragment[i : i + 1]
                if following not in _NO_XSPACE_BEFORE and following != "{":
                    expanded += " "
            budget[0] -= len(expanded)
            if budget[0] < 0:
                raise FormatError("macro expansion grows without bound", where=where)
            out.append(fragment[pos : match.start()])
            out.append(expanded)
            pos = i
        out.append(fragment[pos:])
        return "".join(out)

    expanded_text = expand(text, 0)
    return expanded_text.replace("\\xspace", "")
