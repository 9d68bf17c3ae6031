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
from collections import Counter
from typing import Any

from pydantic import ValidationError

# moved to lm (the judges read JSON replies too); re-exported here for older imports
from ablationkit.lm.jsonreply import ReplyParseError as ReplyParseError
from ablationkit.lm.jsonreply import extract_json as extract_json
from ablationkit.schema import Ablation

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
        return Ablation.model_validate(
            {
                "name": str(fields["name"]).strip(),
                "ablated_part": str(fields["ablated_part"]).strip(),
                "action": action,
                "replacement": replacement if action != "REMOVE" else None,
                "metrics": metrics,
            }
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
# Words that name no component: an action, or a generic "component"/"different". Counted,
# they made "Replace Prediction with a Different Model" a twin of "Replace Feature Extraction
# with a Different Algorithm" (3 of 5 words shared), and "Remove the Scaling component" one of
# "Remove the Preprocessing component": the embedded model's 5 good iSklearn items became 3,
# one with both lists of alternatives, and a follow-up call re-asked for the same two.
_GENERIC = set(
    "remove removing removed removal replace replacing replaced replacement add adding added "
    "addition no component components module modules part parts different alternative "
    "alternatives other another variant variants simpler simple new approach method "
    "technique strategy choice version".split()
)
_IGNORED = _STOP | _GENERIC


def _tokens(ablation: Ablation) -> set[str]:
    words = re.findall(r"[a-z0-9]+", f"{ablation.name} {ablation.ablated_part}".lower())
    return {w for w in words if w not in _IGNORED}


def _plan_context(token_sets: list[set[str]]) -> set[str]:
    """Words in more than half of a plan's items (of three or more): the plan's setting, not
    a component's name. "the X stage of the pipeline", "… (§4 Assessing Pipelines …)" or
    "event" in three of five CoLES items made "Event sequence length" a twin of "Event
    sequence encoder architecture"."""
    if len(token_sets) < 3:
        return set()
    counts = Counter(word for tokens in token_sets for word in tokens)
    return {word for word, n in counts.items() if 2 * n > len(token_sets)}


def _overlap(a: set[str], b: set[str], context: set[str]) -> float:
    """Shared words over the smaller set, outside the plan's context words unless that
    leaves nothing to compare (four items that all say "the event sequence encoder")."""
    if (a - context) and (b - context):
        a, b = a - context, b - context
    return len(a & b) / min(len(a), len(b))


def merge_duplicates(ablations: list[Ablation], threshold: float = 1.0) -> list[Ablation]:
    """Merge ablations of the same part with the same action; the higher-ranked one stays,
    and gains the other's values and metrics.

    Twins: the share of the smaller item's words (name and part, ``_overlap``) found in the
    other reaches ``threshold``. The default asks for all of them: at 0.6, "Bottom-level
    sampling" and "Mid-level sampling" were twins (2 of 3 words), and so were the GRU of
    the sequence encoder and the linear layers of the event encoder. A repeat, or a part
    restated with more words ("the cosine mask schedule" in "the masking schedule function
    with the cosine mask schedule"), is still merged."""
    token_sets = {id(a): _tokens(a) for a in ablations}
    context = _plan_context(list(token_sets.values()))
    kept: list[Ablation] = []
    for ablation in ablations:
        tokens = token_sets[id(ablation)]
        twin = None
        for other in kept:
            other_tokens = token_sets[id(other)]
            if not tokens or not other_tokens or other.action != ablation.action:
                continue
            if any(any(c.isdigit() for c in t) for t in tokens ^ other_tokens):
                continue  # "layer 1" and "layer 2" are different ablations
            if _overlap(tokens, other_tokens, context) >= threshold:
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
