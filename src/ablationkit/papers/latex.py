"""LaTeX projects in: the main file, its inputs, its own macros, and a section tree out.

What a paper's source gives that its PDF does not: exact headings, the section tree, and math
as the authors wrote it. We follow ``\\input``/``\\include``/``\\subfile``/``\\import``, expand the
paper's own ``\\newcommand``/``\\def`` macros, keep captions (not figure or table bodies), keep
display math verbatim, resolve ``\\ref`` to section, figure and table numbers, and turn the rest
into plain text with pylatexenc.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ablationkit.errors import FormatError
from ablationkit.papers.latex_text import latex_to_text
from ablationkit.papers.model import MAX_SECTIONS, Paper, Section, build_tree
from ablationkit.papers.texscan import (
    Deadline,
    expand_macros,
    extract_macros,
    find_environment,
    read_argument,
    read_group,
    read_optional,
    skip_spaces,
    strip_comments,
)
from ablationkit.sandbox import (
    UnsafePathError,
    check_file,
    open_regular,
    resolve_file,
    unsafe_name_reason,
)

MAX_TEX_FILE_BYTES = 8 * 1024 * 1024
MAX_PROJECT_BYTES = 40 * 1024 * 1024
MAX_TEX_FILES_SCANNED = 2000
# Seconds one paper may take to load (pylatexenc reads some hundred kB/s); see load_latex.
LOAD_TIME_BUDGET = 60.0
MAIN_NAMES = ("main", "paper", "ms", "manuscript", "article", "root", "arxiv")
_DOCUMENTCLASS = re.compile(r"^[^%\n]*\\documentclass\s*(\[[^\]]*\])?\s*\{([^}]*)\}", re.M)
_INPUT = re.compile(
    r"\\(?P<cmd>input|include|subfile|import|subimport|inputfrom|subinputfrom|includefrom|"
    r"subincludefrom)\*?(?![A-Za-z@])"
)
_INPUTENC_8BIT = re.compile(
    r"\\usepackage\[[^\]]*(latin1|latin9|cp1252|ansinew)[^\]]*\]"
    r"\{inputenc\}"
)


class LatexError(FormatError):
    """A LaTeX project that cannot be read: missing inputs, cycles, binary junk."""


class NoLatexMainError(LatexError):
    """A folder without a ``.tex`` main file: it may hold the paper in another form."""


# --------------------------------------------------------------------------- files


def read_tex_file(path: Path) -> str:
    """Decode one ``.tex`` file; 8-bit encodings only when the file declares them.

    Only a regular file is read (opened without blocking, so a FIFO cannot hang the load)."""
    try:
        handle = open_regular(path)
    except UnsafePathError:
        raise LatexError("not a regular file", where=path) from None
    except OSError as exc:
        raise LatexError(f"cannot read ({exc.strerror or exc})", where=path) from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_TEX_FILE_BYTES:
            raise LatexError(
                f"{size} bytes, over the {MAX_TEX_FILE_BYTES} byte limit for a .tex file",
                where=path,
            )
        data = handle.read(MAX_TEX_FILE_BYTES + 1)
    head = data[:8192]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in head or (head and controls / len(head) > 0.05):
        raise LatexError("binary data, not LaTeX source", where=path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        latin = data.decode("latin-1")
        if _INPUTENC_8BIT.search(latin):
            return data.decode("cp1252", errors="replace")
        raise LatexError(
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}) and no 8-bit "
            "\\usepackage[...]{inputenc} declared",
            where=path,
        ) from None


def find_main_tex(root: Path) -> Path:
    """The file with ``\\documentclass`` and ``\\begin{document}``; ties go to common names,
    then to files no other file inputs, then to the largest.

    Only regular files under ``root`` are candidates: a ``main.tex`` that is a symlink pointing
    outside, or a FIFO, is never opened."""
    return _find_main_tex(root, [])


def _find_main_tex(root: Path, warnings: list[str]) -> Path:
    """:func:`find_main_tex`, noting the ``.tex`` files it refused in ``warnings``."""
    candidates: list[tuple[Path, str]] = []
    scanned = 0
    for path in sorted(root.rglob("*.tex")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        scanned += 1
        if scanned > MAX_TEX_FILES_SCANNED:
            break
        problem = check_file(root, path)
        if problem is not None:
            reason = "outside the project" if problem == "outside its root" else problem
            warnings.append(f"{rel}: {reason}; not considered as the main file")
            continue
        try:
            with open_regular(path) as handle:
                if os.fstat(handle.fileno()).st_size > MAX_TEX_FILE_BYTES:
                    continue
                text = handle.read(MAX_TEX_FILE_BYTES).decode("utf-8", errors="replace")
        except (OSError, UnsafePathError):
            continue
        match = _DOCUMENTCLASS.search(text)
        if match and match.group(2).strip() not in {"subfiles", "standalone"}:
            candidates.append((path, text))
    if not candidates:
        raise NoLatexMainError("no .tex file with \\documentclass in this directory", where=root)
    with_document = [c for c in candidates if "\\begin{document}" in c[1]] or candidates
    if len(with_document) == 1:
        return with_document[0][0]
    by_name = [c for c in with_document if c[0].stem.lower() in MAIN_NAMES]
    if len(by_name) == 1:
        return by_name[0][0]
    stems = {c[0].stem for c in with_document}
    included = {
        Path(m.group(0)).stem
        for _, text in with_document
        for m in re.finditer(r"(?<=\{)[^{}]+(?=\})", text)
        if Path(m.group(0)).stem in stems
    }
    roots = [c for c in with_document if c[0].stem not in included] or with_document
    return max(roots, key=lambda c: len(c[1]))[0]


@dataclass
class _Flattener:
    """Inlines a project's inputs, reading only regular files under ``root``.

    ``root`` is the project (the directory given, or the folder of the file given); ``base`` is
    the folder LaTeX resolves ``\\input`` against (the main file's, default ``root``). An input
    that is missing, or that names anything outside ``root`` (absolute, ``..``, a symlink
    leading out, a FIFO), is skipped with a warning, or is an error when ``strict``.
    """

    root: Path
    strict: bool
    base: Path | None = None
    warnings: list[str] = field(default_factory=list)
    total: int = 0

    def flatten(self, path: Path, stack: tuple[Path, ...] = ()) -> str:
        resolved = path.resolve()
        if resolved in stack:
            chain = " -> ".join(self._rel(p) for p in (*stack, resolved))
            raise LatexError(f"\\input cycle: {chain}", where=self._rel(stack[-1]))
        if len(stack) > 40:
            raise LatexError("\\input nesting deeper than 40 files", where=self._rel(path))
        text = strip_comments(read_tex_file(path))
        self.total += len(text)
        if self.total > MAX_PROJECT_BYTES:
            raise LatexError(f"project text over {MAX_PROJECT_BYTES} bytes", where=self.root)
        if stack:  # a subfile carries its own preamble: keep only its document body
            body = re.search(r"\\begin\{document\}(.*?)(\\end\{document\}|\Z)", text, re.S)
            if body and _DOCUMENTCLASS.search(text):
                text = body.group(1)
        out: list[str] = []
        pos = 0
        for match in _INPUT.finditer(text):
            if match.start() < pos:
                continue
            parsed = self._parse_input(text, match)
            if parsed is None:
                continue
            names, end = parsed
            target, reason = self._resolve(path, match.group("cmd"), names)
            lineno = text.count("\n", 0, match.start()) + 1
            out.append(text[pos : match.start()])
            pos = end
            if target is None:
                shown = "\\" + match.group("cmd") + "".join(f"{{{n}}}" for n in names)
                message = f"line {lineno}: {shown}: {reason}"
                if self.strict:
                    raise LatexError(f"{message} (strict mode: not skipped)", where=self._rel(path))
                self.warnings.append(f"{self._rel(path)}: {message}; skipped")
                continue
            inner = self.flatten(target, (*stack, resolved))
            out.append(f"\n{inner}\n" if match.group("cmd") != "input" else inner)
        out.append(text[pos:])
        return "".join(out)

    @staticmethod
    def _parse_input(text: str, match: re.Match[str]) -> tuple[list[str], int] | None:
        cmd = match.group("cmd")
        i = skip_spaces(text, match.end(), newlines=False)
        wanted = (
            2
            if cmd
            in {"import", "subimport", "inputfrom", "subinputfrom", "includefrom", "subincludefrom"}
            else 1
        )
        names: list[str] = []
        for _ in range(wanted):
            i = skip_spaces(text, i, newlines=False)
            if i < len(text) and text[i] == "{":
                name, i = read_group(text, i)
            elif cmd == "input" and wanted == 1:
                bare = re.match(r"[^\s{}\\%]+", text[i:])
                if bare is None:
                    return None
                name, i = bare.group(0), i + bare.end()
            else:
                return None
            names.append(name.strip())
        return names, i

    def _resolve(self, current: Path, cmd: str, names: list[str]) -> tuple[Path | None, str]:
        """The file an input command names, or ``(None, why not)``.

        Looked up as LaTeX does (the main file's folder, then the including file's), but only
        through :func:`ablationkit.sandbox.resolve_file`: absolute names are refused before any
        lookup, and nothing outside ``root`` is opened.
        """
        for part in names:
            if part and (unsafe := unsafe_name_reason(part)):
                return None, unsafe
        base = self.base or self.root
        name = names[-1]
        if len(names) == 2:
            folder = names[0].rstrip("/")
            first = current.parent if cmd.startswith("sub") else base
            lookups = [(first, f"{folder}/{name}" if folder else name), (current.parent, name)]
        else:
            lookups = [(base, name), (current.parent, name)]
        problem = ""
        for directory, relative in lookups:
            for candidate in (relative, f"{relative}.tex"):
                found, reason = resolve_file(self.root, candidate, base=directory)
                if found is not None:
                    return found, ""
                if reason != "not found" and not problem:
                    problem = "outside the project" if reason == "outside its root" else reason
        return None, problem or "file not found"

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


# --------------------------------------------------------------------------- document parts

_SECTION_COMMANDS = (
    "part",
    "chapter",
    "section",
    "subsection",
    "subsubsection",
    "paragraph",
    "subparagraph",
)
_SECTIONING = re.compile(
    r"\\(?P<cmd>chapter|section|subsection|subsubsection|paragraph|subparagraph|appendix|"
    r"appendices|begin\{appendices\}|end\{appendices\})(?P<star>\*?)(?![A-Za-z@])"
)
_FLOATS = {
    "figure": "Figure",
    "figure*": "Figure",
    "wrapfigure": "Figure",
    "SCfigure": "Figure",
    "sidewaysfigure": "Figure",
    "subfigure": "Figure",
    "table": "Table",
    "table*": "Table",
    "wraptable": "Table",
    "sidewaystable": "Table",
    "longtable": "Table",
}
_DROPPED_ENVS = (
    "thebibliography",
    "tikzpicture",
    "pgfpicture",
    "picture",
    "tabular",
    "tabular*",
    "tabularx",
    "tabulary",
    "tblr",
    "axis",
)
_FRONT_MATTER = (
    "author",
    "affiliation",
    "affil",
    "institution",
    "email",
    "address",
    "thanks",
    "date",
    "keywords",
    "IEEEauthorblockN",
    "IEEEauthorblockA",
    "icmlauthor",
    "icmlaffiliation",
    "icmlcorrespondingauthor",
    "icmlkeywords",
    "ccsdesc",
    "acmConference",
    "acmYear",
    "acmDOI",
    "setcopyright",
    "copyrightyear",
    "acmBooktitle",
    "acmPrice",
    "acmISBN",
    "IEEEpubid",
    "orcid",
    "footnotetext",
    "bibliography",
    "bibliographystyle",
    "nocite",
    "printbibliography",
    "addbibresource",
    "received",
    "editor",
)
_LABEL = re.compile(r"\\label\s*\{([^{}]*)\}")
_REF = re.compile(
    r"\\(?P<cmd>ref|eqref|cref|Cref|autoref|Autoref|pageref|nameref|vref|"
    r"cpageref)\*?\s*\{(?P<keys>[^{}]*)\}"
)


def _command_arg(text: str, name: str) -> str | None:
    match = re.search(r"\\" + name + r"(?![A-Za-z@])\s*", text)
    if match is None:
        return None
    _, i = read_optional(text, match.end())
    arg = read_argument(text, i)
    return arg[0] if arg else None


def _remove_commands(text: str, names: tuple[str, ...]) -> str:
    """Cut ``\\name[opt]{arg}`` occurrences (with their argument) out of the text."""
    pattern = re.compile(r"\\(" + "|".join(names) + r")\*?(?![A-Za-z@])")
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        if match.start() < pos:
            continue
        _, i = read_optional(text, match.end())
        i = skip_spaces(text, i, newlines=False)
        if i < len(text) and text[i] == "{":
            _, i = read_group(text, i)
        out.append(text[pos : match.start()])
        pos = i
    out.append(text[pos:])
    return "".join(out)


@dataclass
class _Floats:
    counters: dict[str, int] = field(default_factory=lambda: {"Figure": 0, "Table": 0})
    labels: dict[str, str] = field(default_factory=dict)

    def replace(self, text: str) -> str:
        """Each float becomes ``[Figure N: caption]``; its label now means ``Figure N``.

        One pass per kind of float, building the result from pieces (not re-joining the whole
        text per float); floats are numbered kind by kind, figures before ``figure*``.
        """
        for env, kind in _FLOATS.items():
            pieces: list[str] = []
            pos = 0
            while (found := find_environment(text, env, pos)) is not None:
                begin, body_start, body_end, end = found
                body = text[body_start:body_end]
                pieces.append(text[pos:begin])
                pieces.append(self._placeholder(kind, body, nested=env == "subfigure"))
                pos = end
            if pieces:
                pieces.append(text[pos:])
                text = "".join(pieces)
        return self._captionof(text)

    def _placeholder(self, kind: str, body: str, *, nested: bool) -> str:
        captions: list[str] = []
        end = 0
        for match in re.finditer(r"\\(?:sub)?caption(?![A-Za-z@])\*?", body):
            if match.start() < end:
                continue  # inside the previous caption (or a broken one running to the end)
            _, i = read_optional(body, match.end())
            arg = read_argument(body, i)
            if arg is not None:
                captions.append(" ".join(_LABEL.sub("", arg[0]).split()))
                end = arg[1]
        captions = [c for c in captions if c]
        inner = re.findall(r"\[(?:Figure|Table) \d+: [^\]]*\]", body)
        if nested and not captions:
            return ""
        self.counters[kind] += 1
        number = self.counters[kind]
        for label in _LABEL.findall(body):
            self.labels.setdefault(label.strip(), f"{kind} {number}")
        caption = " ".join(captions + inner).strip() or "(no caption)"
        return f"\n\n[{kind} {number}: {caption}]\n\n"

    def _captionof(self, text: str) -> str:
        out: list[str] = []
        pos = 0
        for match in re.finditer(r"\\captionof\*?\s*\{(figure|table)\}", text):
            if match.start() < pos:
                continue
            kind = match.group(1).capitalize()
            caption = _caption_text(text, match.end())
            arg = read_optional(text, match.end())[1]
            group = read_argument(text, arg)
            end = group[1] if group else match.end()
            self.counters[kind] += 1
            out.append(text[pos : match.start()])
            out.append(f"\n\n[{kind} {self.counters[kind]}: {caption}]\n\n")
            pos = end
        out.append(text[pos:])
        return "".join(out)


def _caption_text(text: str, i: int) -> str:
    _, i = read_optional(text, i)
    arg = read_argument(text, i)
    if arg is None:
        return ""
    return " ".join(_LABEL.sub("", arg[0]).split())


def _drop_environments(text: str) -> str:
    """Cut the environments whose content is no text (tables, pictures), in one pass each."""
    for env in _DROPPED_ENVS:
        pieces: list[str] = []
        pos = 0
        while (found := find_environment(text, env, pos)) is not None:
            begin, _, _, end = found
            pieces.append(text[pos:begin])
            pos = end
        if pieces:
            pieces.append(text[pos:])
            text = "".join(pieces)
    return text


@dataclass
class _RawSection:
    command: str
    star: bool
    title_tex: str
    body: str
    appendix: bool
    number: str | None = None
    label: str | None = None


def _split_sections(body: str, *, where: str | Path) -> tuple[str, list[_RawSection]]:
    """Cut the body at sectioning commands; returns the text before the first one.

    More than ``MAX_SECTIONS`` headings is an error, raised before they take memory.
    """
    sections: list[_RawSection] = []
    preamble_end = None
    in_appendix = False
    pos = 0
    current: _RawSection | None = None
    for match in _SECTIONING.finditer(body):
        if match.start() < pos:
            continue
        cmd = match.group("cmd")
        if cmd in {"appendix", "appendices", "begin{appendices}"}:
            in_appendix = True
            if current is not None:
                current.body += body[pos : match.start()]
            elif preamble_end is None:
                preamble_end = match.start()
            pos = match.end()
            continue
        if cmd == "end{appendices}":
            continue
        _short, i = read_optional(body, match.end())
        i = skip_spaces(body, i)
        if i >= len(body) or body[i] != "{":
            continue
        title, i = read_group(body, i)
        if current is not None:
            current.body += body[pos : match.start()]
        elif preamble_end is None:
            preamble_end = match.start()
        if len(sections) >= MAX_SECTIONS:
            raise LatexError(
                f"over {MAX_SECTIONS} section headings; not a paper this loader can read",
                where=where,
            )
        current = _RawSection(cmd, bool(match.group("star")), title, "", in_appendix)
        sections.append(current)
        pos = i
    if current is not None:
        current.body += body[pos:]
    preamble = body[: preamble_end if preamble_end is not None else len(body)]
    return (preamble if sections else body), sections


def _number_sections(sections: list[_RawSection]) -> dict[str, int]:
    """LaTeX's numbering: arabic, letters in the appendix, none for starred or deep levels."""
    used = [c for c in _SECTION_COMMANDS if any(s.command == c for s in sections)]
    top = "chapter" if "chapter" in used else "section"
    order = list(_SECTION_COMMANDS[_SECTION_COMMANDS.index(top) :])
    levels = {cmd: i + 1 for i, cmd in enumerate(order)}
    numbered_depth = 3  # LaTeX's default secnumdepth: three levels below the top are numbered
    counters = [0] * len(order)
    appendix_started = False
    for section in sections:
        level = levels.get(section.command, 1)
        if section.appendix and not appendix_started:
            appendix_started = True
            counters = [0] * len(order)
        if section.star or level > numbered_depth:
            continue
        counters[level - 1] += 1
        for deeper in range(level, len(counters)):
            counters[deeper] = 0
        parts = [str(c) for c in counters[:level]]
        if appendix_started and counters[0] > 0:
            parts[0] = _letters(counters[0])
        section.number = ".".join(parts)
    return levels


def _letters(n: int) -> str:
    out = ""
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def _resolve_refs(text: str, labels: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        cmd = match.group("cmd")
        keys = [k.strip() for k in match.group("keys").split(",") if k.strip()]
        rendered = []
        for key in keys:
            target = labels.get(key)
            if target is None:
                rendered.append(f"[{key}]")
            elif cmd in {"cref", "Cref", "autoref", "Autoref"}:
                rendered.append(target)
            else:
                rendered.append(target.split(" ", 1)[-1])
        joined = ", ".join(rendered)
        return f"({joined})" if cmd == "eqref" else joined

    return _REF.sub(replace, text)


def _project(path: Path) -> tuple[Path, Path, list[str]]:
    """``(root, main file, warnings)`` of a LaTeX project given as a directory or a file.

    The root bounds what the project may read: the directory given, or the folder of the file
    given. The main file itself is the caller's choice (a file given is read even if it is a
    symlink); everything it names must be a regular file under the root.
    """
    warnings: list[str] = []
    if path.is_dir():
        return path, _find_main_tex(path, warnings), warnings
    return path.parent, path, warnings


def load_latex(
    path: str | Path, *, strict: bool = False, time_budget: float | None = None
) -> Paper:
    """Load a LaTeX project (a directory, or its main ``.tex``) into a ``Paper``.

    An ``\\input`` that is missing, or that names a file outside the project (absolute paths,
    ``..`` climbing out, symlinks leading out, FIFOs and devices), is skipped with a warning in
    ``Paper.warnings``: real arXiv sources often input files they do not ship. ``strict=True``
    makes any skipped input an error instead.

    Loading takes time about linear in the paper's size; past ``time_budget`` seconds
    (default ``LOAD_TIME_BUDGET``; ``math.inf`` for none) it stops with a one-line error.
    """
    path = Path(path)
    deadline = Deadline(LOAD_TIME_BUDGET if time_budget is None else time_budget, where=path)
    root, main, warnings = _project(path)
    # LaTeX resolves \input against the directory it runs in: the main file's.
    flattener = _Flattener(root=root, base=main.parent, strict=strict)
    text = flattener.flatten(main)
    warnings.extend(flattener.warnings)
    if not _DOCUMENTCLASS.search(read_tex_file(main)):
        warnings.append(f"{main.name}: no \\documentclass; read as a fragment")
    deadline.check("reading the files")
    text, macros = extract_macros(text)
    text = expand_macros(text, macros, where=main, deadline=deadline)
    deadline.check("expanding macros")

    title_tex = _command_arg(text, "title") or ""
    abstract_tex = ""
    if (found := find_environment(text, "abstract")) is not None:
        begin, body_start, body_end, end = found
        abstract_tex = text[body_start:body_end]
        text = text[:begin] + text[end:]
    elif (abstract_arg := _command_arg(text, "abstract")) is not None:
        abstract_tex = abstract_arg

    body_match = re.search(r"\\begin\{document\}(.*?)(?:\\end\{document\}|\Z)", text, re.S)
    body = body_match.group(1) if body_match else text
    body = _remove_commands(body, ("title", *_FRONT_MATTER))
    floats = _Floats()
    body = floats.replace(body)
    body = _drop_environments(body)
    body = re.sub(r"(\\begin\{lstlisting\})\s*\[[^\]]{0,2000}\]", r"\1", body)
    deadline.check("reading floats and environments")

    preamble, raw_sections = _split_sections(body, where=path)
    levels = _number_sections(raw_sections)
    labels = dict(floats.labels)
    for raw in raw_sections:
        label = re.match(r"\s*\\label\s*\{([^{}]*)\}", raw.body)
        if label and raw.number:
            kind = "Appendix" if raw.appendix and levels.get(raw.command) == 1 else "Section"
            labels[label.group(1).strip()] = f"{kind} {raw.number}"

    def to_text(fragment: str) -> str:
        return latex_to_text(_resolve_refs(_LABEL.sub("", fragment), labels), deadline=deadline)

    flat: list[Section] = []
    if not raw_sections:
        warnings.append("no \\section commands: the whole document is one section")
        flat.append(Section(title="Body", level=1, text=to_text(preamble)))
    for raw in raw_sections:
        flat.append(
            Section(
                number=raw.number,
                title=" ".join(to_text(raw.title_tex).split()) or "(untitled)",
                level=levels.get(raw.command, 1),
                text=to_text(raw.body),
                appendix=raw.appendix,
            )
        )
    return Paper(
        title=" ".join(latex_to_text(title_tex, deadline=deadline).split()),
        abstract=to_text(abstract_tex).strip(),
        sections=build_tree(flat, where=path),
        source=str(path),
        format="latex",
        warnings=warnings,
    )


def heading_text(project: str | Path, heading_tex: str) -> str:
    """Plain text of a LaTeX heading written with the project's own macros, e.g. the
    ``\\isklearn: a Fully-Functional AutoML System`` of a dataset's metadata."""
    root, main, _ = _project(Path(project))
    text = _Flattener(root=root, base=main.parent, strict=False).flatten(main)
    _, macros = extract_macros(text)
    return " ".join(latex_to_text(expand_macros(heading_tex, macros)).split())


__all__ = ["LatexError", "find_main_tex", "heading_text", "load_latex"]
