"""Reading JSON out of a model's reply, however the model dressed it up.

Planner and judges both ask for JSON and both get it wrapped in prose, code fences, trailing
commas, Python literals or curly quotes; this is the one tolerant reader they share. It knows
nothing of plans or verdicts: callers validate the value it returns.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ablationkit.errors import AblationKitError


class ReplyParseError(AblationKitError):
    """A reply could not be used; the message says why, for the repair prompt."""


_FENCE = re.compile(r"```(?:json|JSON|jsonl)?\s*\n?(.*?)```", re.S)


def _balanced(text: str, start: int) -> str | None:
    """The JSON value starting at ``text[start]`` ({ or [), respecting strings."""
    opener = text[start]
    closer = "}" if opener == "{" else "]"
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1] if ch == closer else None
    return None


def _repair_json(text: str) -> str:
    text = text.replace("“", '"').replace("”", '"').replace("’", "'")
    text = re.sub(r",\s*([}\]])", r"\1", text)  # trailing commas
    text = re.sub(r"(?<![\"\w])None(?![\"\w])", "null", text)
    text = re.sub(r"(?<![\"\w])True(?![\"\w])", "true", text)
    return re.sub(r"(?<![\"\w])False(?![\"\w])", "false", text)


# LaTeX commands that begin with a letter JSON reads as an escape (\b \f \n \r \t): a
# backslash followed by exactly one of these words is the command, not a control character.
# For \n, \r and \t the list decides (prose has real newlines: "a\nb" stays one); words a
# newline or tab could plausibly start ("\ne", "\ni", "\neg", "\tan") are left out.
LATEX_ESCAPE_WORDS = frozenset(
    # \n
    "nabla nu neq nleq ngeq nless ngtr nmid nparallel nsubseteq nsupseteq notin not nonumber "
    "nolimits noindent newline newcommand newpage nearrow nwarrow natural normalsize "
    # \r
    "rho right rightarrow Rightarrow rightleftharpoons rangle rceil rfloor rbrace rbrack "
    "rvert rVert rm ref rule rlap raggedright renewcommand "
    # \t
    "tau theta vartheta text textbf textit texttt textrm textsf textsc textnormal textmd "
    "textup textsl textcolor textsubscript textsuperscript textstyle tfrac tbinom times "
    "tilde top to triangle triangleq tanh textwidth tt tiny therefore thinspace "
    "thickspace".split()
)
# A JSON string (an unclosed one runs to the end: linear time on a cut-off reply).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\Z)', re.S)
# One escape in a string: \uXXXX, a quote/backslash/slash, a letter escape with the letters
# after it (the LaTeX word it may start), any other character (invalid in JSON), or nothing.
_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/]|[bfnrt][A-Za-z]*|.?)', re.S)


def _escape_latex(match: re.Match[str]) -> str:
    body = match.group(1)
    if not body or body in ('"', "\\", "/") or (body[0] == "u" and len(body) == 5):
        return match.group(0)  # a real escape (or a lone backslash at the very end)
    if body[0] in "bfnrt":
        # \b and \f never mean a control character in a model's prose: any word is LaTeX
        latex = len(body) > 1 and (body[0] in "bf" or body in LATEX_ESCAPE_WORDS)
        return "\\\\" + body if latex else match.group(0)
    return "\\\\" + body  # not a JSON escape (\alpha, \%, \{): the backslash is literal


def _string_with_latex(match: re.Match[str]) -> str:
    return _ESCAPE.sub(_escape_latex, match.group(0))


def keep_latex(text: str) -> str:
    """``text`` with the backslash of every LaTeX command inside a JSON string escaped.

    Why: models write ``"$\\beta$"`` for $\\beta$; to JSON that is a backspace and ``eta``
    (``\\tau`` a tab, ``\\frac`` a form feed), and ``\\alpha`` is no escape at all, so
    the reply fails to parse. A grammar-constrained reply (llama.cpp's JSON grammar) still
    carries the first kind. An invalid escape keeps its backslash; a valid one followed by
    letters does when they make a LaTeX word (``LATEX_ESCAPE_WORDS``; any word after ``\\b``
    and ``\\f``); ``\\n`` before other letters stays a newline. Only strings are touched.
    """
    if "\\" not in text:
        return text
    return _STRING.sub(_string_with_latex, text)


def _loads(candidate: str) -> Any:
    try:
        return json.loads(keep_latex(candidate))
    except json.JSONDecodeError:
        return json.loads(keep_latex(_repair_json(candidate)))


def extract_json(reply: str) -> Any:
    """The first JSON object or list in a reply; raises ``ReplyParseError``.

    A reply in AblationBench's format (``<discussion>`` and ``<predictions>`` JSONL; the
    closing ``</predictions>`` may be missing) becomes
    ``{"reasoning": <discussion>, "predictions": [<line>, ...]}``.
    """
    text = reply.strip()
    discussion = re.search(r"<discussion>(.*?)</discussion>", text, re.S)
    predictions = re.search(r"<predictions>(.*?)(?:</predictions>|\Z)", text, re.S)
    if predictions:
        items = []
        for line in predictions.group(1).strip().splitlines():
            line = line.strip().rstrip(",")
            if line.startswith("{"):
                try:
                    items.append(_loads(line))
                except json.JSONDecodeError as exc:
                    raise ReplyParseError(f"a predictions line is not JSON: {exc.msg}") from None
        reasoning = discussion.group(1).strip() if discussion else ""
        return {"reasoning": reasoning, "predictions": items}
    fenced = _FENCE.findall(text)
    candidates = [*fenced, text]
    last_error = "no JSON object or list in the reply"
    for candidate in candidates:
        position = 0
        while (match := re.compile(r"[{\[]").search(candidate, position)) is not None:
            block = _balanced(candidate, match.start())
            if block is None:
                # Everything after an unclosed bracket is inside it: the reply was cut off.
                last_error = "the JSON is not closed (the reply was cut off?)"
                break
            try:
                return _loads(block)
            except json.JSONDecodeError as exc:
                last_error = f"invalid JSON: {exc.msg} at position {exc.pos}"
            position = match.start() + len(block)
    raise ReplyParseError(last_error)
