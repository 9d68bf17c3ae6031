"""Turning a model's reply into validated ablations, however the model dressed it up.

Accepted: a JSON object ``{"reasoning", "ablations"}`` (with or without code fences, with
trailing commas, Python literals or curly quotes), a bare JSON list of ablations, and
AblationBench's ``<discussion>…</discussion><predictions>JSONL</predictions>`` format. Field
names and actions are normalised (``"Remove"`` -> ``REMOVE``, ``ablatedPart`` ->
``ablated_part``); a missing replacement is null; near-duplicate ablations are merged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from ablationkit.errors import AblationKitError
from ablationkit.schema import Ablation


class ReplyParseError(AblationKitError):
    """The reply could not be read as a plan; the message says why, for the repair prompt."""


_FENCE = re.compile(r"```(?:json|JSON|jsonl)?\s*\n?(.*?)```", re.S)
_KEYS = {
    "name": "name",
    "title": "name",
    "ablation": "name",
    "ablation_name": "name",
    "ablated_part": "ablated_part",
    "ablatedpart": "ablated_part",
    "part": "ablated_part",
    "component": "ablated_part",
    "ablated_component": "ablated_part",
    "target": "ablated_part",
    "action": "action",
    "type": "action",
    "operation": "action",
    "replacement": "replacement",
    "replacements": "replacement",
    "alternatives": "replacement",
    "values": "replacement",
    "variants": "replacement",
    "options": "replacement",
    "metrics": "metrics",
    "metric": "metrics",
    "evaluation_metrics": "metrics",
}
_ACTIONS = (
    ("REMOVE", r"remov|delet|drop|disabl|without|exclud|eliminat|ablate$|turn off"),
    ("REPLACE", r"replac|substitut|swap|vary|varying|chang|modif|sweep|alter|tun|switch"),
    ("ADD", r"\badd|includ|extend|append|augment|insert|introduc"),
)


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
    """The first JSON object or list in a reply; raises ``ReplyParseError``."""
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
        return {"reasoning": discussion.group(1).strip() if discussion else "", "ablations": items}
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


def normalise_action(value: Any) -> str:
    text = str(value or "").strip()
    if text.upper() in {"REMOVE", "REPLACE", "ADD"}:
        return text.upper()
    lowered = text.lower()
    for action, pattern in _ACTIONS:
        if re.search(pattern, lowered):
            return action
    raise ReplyParseError(f'unknown action "{text}" (use REMOVE, REPLACE or ADD)')


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or value.lower() in {"none", "null", "n/a", "-"}:
            return None
        return [v.strip() for v in re.split(r"\s*;\s*", value) if v.strip()]
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    if isinstance(value, list):
        return [
            json.dumps(v) if isinstance(v, (dict, list)) else str(v)
            for v in value
            if v is not None and str(v).strip()
        ]
    return [str(value)]


def normalise_ablation(obj: Any, index: int) -> Ablation:
    if not isinstance(obj, dict):
        raise ReplyParseError(f"ablation {index + 1} is not a JSON object")
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        norm = re.sub(r"[^a-z_]", "", str(key).lower().replace(" ", "_").replace("-", "_"))
        target = _KEYS.get(norm) or _KEYS.get(norm.replace("_", ""))
        if target and target not in fields:
            fields[target] = value
    if not fields.get("ablated_part") and fields.get("name"):
        fields["ablated_part"] = fields["name"]
    if not fields.get("ablated_part"):
        raise ReplyParseError(f'ablation {index + 1} has no "ablated_part"')
    fields.setdefault("name", fields["ablated_part"])
    action = normalise_action(
        fields.get("action", "REMOVE" if "replacement" not in fields else "REPLACE")
    )
    replacement = _as_list(fields.get("replacement"))
    if action == "REMOVE" and replacement:
        action = "REPLACE"  # a "removal" with alternatives is a replacement
    metrics = _as_list(fields.get("metrics")) or []
    if len(metrics) == 1 and "," in metrics[0]:
        metrics = [m.strip() for m in metrics[0].split(",") if m.strip()]
    metrics = list(dict.fromkeys(metrics))
    if replacement:
        replacement = list(dict.fromkeys(replacement))
    try:
        return Ablation(
            name=str(fields["name"]).strip(),
            ablated_part=str(fields["ablated_part"]).strip(),
            action=action,
            replacement=replacement if action != "REMOVE" else None,
            metrics=metrics,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise ReplyParseError(
            f"ablation {index + 1}: {problem['loc'][0]}: {problem['msg']}"
        ) from None


def parse_plan_reply(reply: str) -> tuple[str, list[Ablation]]:
    """``(reasoning, ablations)`` from a model reply; raises ``ReplyParseError``."""
    data = extract_json(reply)
    if isinstance(data, list):
        data = {"reasoning": "", "ablations": data}
    if not isinstance(data, dict):
        raise ReplyParseError("the reply is JSON but neither an object nor a list")
    items = None
    for key in ("ablations", "ablation_plan", "plan", "predictions", "experiments", "studies"):
        if isinstance(data.get(key), list):
            items = data[key]
            break
    if items is None:
        if "ablated_part" in data or "action" in data:
            items = [data]
        else:
            raise ReplyParseError('the JSON object has no "ablations" list')
    reasoning = data.get("reasoning") or data.get("discussion") or data.get("thoughts") or ""
    ablations = [normalise_ablation(obj, i) for i, obj in enumerate(items)]
    if not ablations:
        raise ReplyParseError('the "ablations" list is empty')
    return str(reasoning).strip(), ablations


_STOP = set(
    "a an the of to in on for and or with without by from its their this that is are "
    "be as at using use ablation ablations study studies effect impact".split()
)


def _tokens(ablation: Ablation) -> set[str]:
    words = re.findall(r"[a-z0-9]+", f"{ablation.name} {ablation.ablated_part}".lower())
    return {w for w in words if w not in _STOP}


def merge_duplicates(ablations: list[Ablation], threshold: float = 0.6) -> list[Ablation]:
    """Merge ablations of the same part with the same action (token overlap over
    ``threshold``); the higher-ranked one stays, and gains the other's values and metrics."""
    kept: list[Ablation] = []
    for ablation in ablations:
        tokens = _tokens(ablation)
        twin = None
        for other in kept:
            other_tokens = _tokens(other)
            if not tokens or not other_tokens or other.action != ablation.action:
                continue
            if any(any(c.isdigit() for c in t) for t in tokens ^ other_tokens):
                continue  # "layer 1" and "layer 2" are different ablations
            overlap = len(tokens & other_tokens) / min(len(tokens), len(other_tokens))
            if overlap >= threshold:
                twin = other
                break
        if twin is None:
            kept.append(ablation)
            continue
        if isinstance(twin.replacement, list) and isinstance(ablation.replacement, list):
            twin.replacement = [
                *twin.replacement,
                *(r for r in ablation.replacement if r not in twin.replacement),
            ]
        twin.metrics = [*twin.metrics, *(m for m in ablation.metrics if m not in twin.metrics)]
    return kept
