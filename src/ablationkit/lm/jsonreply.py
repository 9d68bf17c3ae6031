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


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        return json.loads(_repair_json(candidate))


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
