"""Guard rails on a planner's output: items that copy the prompt's example, or that carry a
placeholder instead of a concrete change.

Small models lean on whatever concrete text the prompt gives them. A reviewer-mode plan on
the embedded model once proposed the system prompt's own example word for word ("the 8
attention heads of the fusion encoder", ``["4", "16"]``) for a paper with no fusion encoder,
and DeepSeek-V3 ended 3 of 4 items in "… of the fusion encoder". Others filled the fields
with ``"None"``, ``"N/A"`` or "a simpler model": valid JSON, useless ablations. These checks
are pure and fast (no model): the planner runs them on every reply (and re-asks once for the
items they flag), and the quality benchmark counts what they find.

The example ablation lives here, once: ``system.j2`` renders ``PROMPT_EXAMPLE_JSON`` and
``example_copy`` reads the same object, so the prompt and the detector cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ablationkit.schema import Ablation


@dataclass(frozen=True)
class PromptExample:
    """An example ablation shown in the prompt, and its component as a noun phrase (the
    wording a model most often grafts onto its own items: "… of the fusion encoder")."""

    ablation: dict[str, Any]
    component: str


PROMPT_EXAMPLES: tuple[PromptExample, ...] = (
    PromptExample(
        ablation={
            "name": "Number of attention heads",
            "ablated_part": "the 8 attention heads of the fusion encoder",
            "action": "REPLACE",
            "replacement": ["4", "16"],
            "metrics": ["accuracy"],
        },
        component="fusion encoder",
    ),
)
# The example as the prompt shows it (one JSON object per line).
PROMPT_EXAMPLE_JSON = "\n".join(
    json.dumps(example.ablation, ensure_ascii=False) for example in PROMPT_EXAMPLES
)

# Words that carry no content of their own: an n-gram of the example counts as distinctive
# only with at least two words outside this list ("of the fusion" is not; "fusion encoder" is).
_FUNCTION_WORDS = frozenset(
    "a an the of to in on for and or with without by from its their this that is are be as "
    "at into per each all any number effect impact study ablation ablations".split()
)


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


@lru_cache(maxsize=8)
def _normalised(text: str) -> str:
    """Lower-case words joined by single spaces and padded, so a phrase test is one
    substring search that respects word boundaries (a paper is searched once per item)."""
    return f" {' '.join(_words(text))} "


def _contains(haystack: str, words: Iterable[str]) -> bool:
    return f" {' '.join(words)} " in haystack


def _content(words: Iterable[str]) -> list[str]:
    return [w for w in words if w not in _FUNCTION_WORDS and not w.isdigit()]


def _item_text(ablation: Ablation) -> str:
    replacement = ablation.replacement
    if isinstance(replacement, dict):
        values: list[Any] = [*replacement.keys(), *replacement.values()]
    else:
        values = list(replacement or [])
    return " | ".join([ablation.name, ablation.ablated_part, *(str(v) for v in values)])


def _example_phrases(example: PromptExample) -> list[list[str]]:
    """The example's distinctive n-grams (3+ words, 2+ content words), longest first, from
    its name and ablated part (its replacement values and metrics are generic: "4", "16",
    "accuracy")."""
    phrases: list[list[str]] = []
    for field_name in ("name", "ablated_part"):
        words = _words(str(example.ablation.get(field_name, "")))
        for size in range(len(words), 2, -1):
            for start in range(len(words) - size + 1):
                gram = words[start : start + size]
                if len(_content(gram)) >= 2 and gram not in phrases:
                    phrases.append(gram)
    return sorted(phrases, key=len, reverse=True)


def example_copy(ablation: Ablation, paper_text: str) -> str | None:
    """The phrase ``ablation`` copies from the prompt's example, or None.

    Flagged: the example's component noun phrase ("fusion encoder"), or a distinctive
    n-gram of its name or ablated part, found in the item but not in the paper's text. An
    n-gram ("number of attention heads") must also bring in a content word the paper never
    uses: a transformer paper may still ablate its own attention heads in its own words.
    """
    item = _normalised(_item_text(ablation))
    paper = _normalised(paper_text)
    paper_words: set[str] | None = None
    for example in PROMPT_EXAMPLES:
        component = _words(example.component)
        if _contains(item, component) and not _contains(paper, component):
            return " ".join(component)
        for gram in _example_phrases(example):
            if not _contains(item, gram) or _contains(paper, gram):
                continue
            if paper_words is None:
                paper_words = set(paper.split())
            if any(word not in paper_words for word in _content(gram)):
                return " ".join(gram)
    return None


# A value that names nothing: empty words, "N/A", "...", a template slot such as "<value>".
_EMPTY_VALUES = frozenset(
    "none null nil na tbd tbc todo unknown unspecified undefined placeholder value values "
    "x xx xxx etc other others same default alternative alternatives variant variants option "
    "options replacement replacements something anything nothing metric metrics".split()
) | {"n a", "not applicable", "to be determined", "see above", "as above"}
_TEMPLATE = re.compile(r"^\s*(?:<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}|\.{2,}|…+|[-?*_/]+)\s*$")
# "a simpler model", "a more complex decoder", "alternative losses", "other variants of the
# loss", "different schedules": a qualifier and at most three words, naming no alternative.
_VAGUE = re.compile(
    r"^(?:an?|the|some|any)?\s*(?:simpler|more complex|less complex|more sophisticated|"
    r"more advanced|more powerful|alternative|alternate|other|different|another|various|"
    r"similar|new|improved|better|modified)\b"
    r"(?:\s+(?:variants?|versions?|types?|kinds?|forms?|choices?)\s+of)?"
    r"(?:\s+[a-z-]+){0,3}$"
)
# A metric word that names no measurement on its own: "return" was seen on a mesh paper
# ("average return" or "episode return" of an RL paper pass).
_EMPTY_METRICS = _EMPTY_VALUES | {"return", "performance", "results", "result", "score"}


def _is_empty_value(value: str) -> bool:
    text = " ".join(value.split()).strip().strip("\"'`").strip()
    if not text or _TEMPLATE.match(text):
        return True
    lowered = text.lower()
    return " ".join(_words(lowered)) in _EMPTY_VALUES | {""}


def placeholder_value(value: Any) -> str | None:
    """Why one replacement value names no concrete alternative or value, or None.

    A value with a number, a colon, brackets or "e.g." is taken as concrete ("a simpler
    model (a linear probe)", "different rates: 1e-4"): only bare qualifiers are vague.
    """
    text = str(value) if value is not None else ""
    if _is_empty_value(text):
        return f"placeholder value {text.strip()!r}" if text.strip() else "empty value"
    lowered = " ".join(text.lower().split())
    if re.search(r"[0-9:()=]|e\.g\.|such as|\bvs\b", lowered):
        return None
    if _VAGUE.match(lowered.strip(".")):
        return f"vague value {text.strip()!r} (no concrete alternative)"
    return None


def _replacement_values(replacement: Any) -> list[Any]:
    if isinstance(replacement, dict):
        return [f"{key}: {value}" for key, value in replacement.items()]
    return list(replacement or [])


def placeholder_metric(metric: str) -> bool:
    """Whether a metric names no measurement ("None", "N/A", a bare "return")."""
    text = " ".join(str(metric).split()).strip()
    return (
        not text or bool(_TEMPLATE.match(text)) or " ".join(_words(text)) in _EMPTY_METRICS | {""}
    )


def placeholder(ablation: Ablation) -> str | None:
    """A one-phrase reason why ``ablation`` carries a placeholder or a vague change, or None.

    Flagged: an empty or placeholder ablated part or name; REPLACE/ADD with no replacement,
    or with a value such as "None", "N/A", "TBD", "...", "<value>", "a simpler model", "a
    more complex decoder", "alternative losses", "other variants of X", "different X"
    (values that name no concrete alternative); metrics such as "None" or a bare "return".
    Such items pass a JSON schema and read as a plan, yet tell an author nothing to run.
    """
    for label, text in (("ablated part", ablation.ablated_part), ("name", ablation.name)):
        if _is_empty_value(text or ""):
            shown = (text or "").strip()
            return f"{label} is a placeholder ({shown!r})" if shown else f"empty {label}"
    action = getattr(ablation.action, "value", ablation.action)
    if action in ("REPLACE", "ADD"):
        values = _replacement_values(ablation.replacement)
        if not values:
            return f"{action} with no replacement"
        for value in values:
            reason = placeholder_value(value)
            if reason is not None:
                return f"{action} with {reason}"
    for metric in ablation.metrics:
        if placeholder_metric(metric):
            return f"placeholder metric {metric.strip()!r}" if metric.strip() else "empty metric"
    return None


def concrete_values(values: list[Any]) -> list[Any]:
    """``values`` without its placeholders: the planner keeps "GRU" of ``["GRU", "None"]``
    rather than spending a model call on the item."""
    return [value for value in values if placeholder_value(value) is None]


def concrete_metrics(metrics: list[str]) -> list[str]:
    """``metrics`` without placeholders such as "None" or a bare "return"."""
    return [metric for metric in metrics if not placeholder_metric(metric)]


__all__ = [
    "PROMPT_EXAMPLES",
    "PROMPT_EXAMPLE_JSON",
    "PromptExample",
    "concrete_metrics",
    "concrete_values",
    "example_copy",
    "placeholder",
    "placeholder_metric",
    "placeholder_value",
]
