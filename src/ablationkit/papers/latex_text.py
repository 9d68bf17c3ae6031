"""LaTeX fragment -> plain text through pylatexenc, tuned for what a planner should read.

Math stays LaTeX (``$...$`` and display environments verbatim); citation keys are kept in
brackets because names like ``Esser21vqgan`` tell a model which baseline is meant; font,
spacing and layout commands vanish together with their arguments.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

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


def latex_to_text(fragment: str) -> str:
    """Plain text of a LaTeX fragment, math kept as LaTeX, whitespace tidied."""
    if not fragment.strip():
        return ""
    from pylatexenc.latexwalker import LatexWalker

    walker_context, converter = _converter()
    nodes, _, _ = LatexWalker(
        fragment, latex_context=walker_context, tolerant_parsing=True
    ).get_latex_nodes()
    text = converter.nodelist_to_text(nodes)
    return tidy(text)


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
