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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ablationkit.planner.hints import HINT_LABELS, Setting
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
def _examples_json(*, metrics: bool) -> str:
    return "\n".join(
        json.dumps(
            {k: v for k, v in example.ablation.items() if metrics or k != "metrics"},
            ensure_ascii=False,
        )
        for example in PROMPT_EXAMPLES
    )


PROMPT_EXAMPLE_JSON = _examples_json(metrics=True)
# ... and when the model writes no metrics (the planner gives the paper's)
PROMPT_EXAMPLE_JSON_NO_METRICS = _examples_json(metrics=False)

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
        copied = _hint_label(text or "")
        if copied:
            return f"{label} is the prompt's label {copied!r}, not a component of the paper"
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


def _hint_label(text: str) -> str | None:
    """The label of the prompt's facts list that ``text`` is ("the hyper-parameters and
    their values in the paper"), or None."""
    words = _words(text)
    if words[:1] == ["the"]:
        words = words[1:]
    stems = {_stem(w) for w in words}
    for label, wanted, label_stems in _label_words():
        # "the metrics mentioned in the paper": the label, and words that only point at it;
        # "the value of a hyper-parameter in the paper": the label's words, reworded
        if words and words[: len(wanted)] == wanted and set(words[len(wanted) :]) <= _POINTERS:
            return label
        if stems <= label_stems and len(stems - _POINTERS) >= 3:
            return label
    return None


_POINTERS = frozenset("a an in of from by the this paper papers stated".split())


@lru_cache(maxsize=1)
def _label_words() -> list[tuple[str, list[str], frozenset[str]]]:
    """Each facts label, its words, and its word stems with the pointers (built once, not
    per planned item)."""
    return [
        (label, _words(label), frozenset(_stem(w) for w in _words(label)) | _POINTERS)
        for label in HINT_LABELS
    ]


def concrete_values(values: list[Any]) -> list[Any]:
    """``values`` without its placeholders: the planner keeps "GRU" of ``["GRU", "None"]``
    rather than spending a model call on the item."""
    return [value for value in values if placeholder_value(value) is None]


def concrete_metrics(metrics: list[str]) -> list[str]:
    """``metrics`` without placeholders such as "None" or a bare "return"."""
    return [metric for metric in metrics if not placeholder_metric(metric)]


# ------------------------------------------------------------------ planner-added sweeps
_INDEX_NAMES = frozenset("i j t n".split())
_INDICATOR_WORDS = re.compile(
    r"\b(?:index|indices|indicator|mask|masks|masked|binary|boolean|flag|whether|iteration|"
    r"step|timestep|time step|position)\b",
    re.I,
)


def _symbol_parts(name: str) -> tuple[str, str]:
    """``m_{i}`` -> (``m``, ``i``); ``\\lambda`` -> (``lambda``, "")."""
    base, _, sub = name.strip().lstrip("\\").partition("_")
    return base, sub.strip("{}")


def is_symbol(name: str) -> bool:
    """Whether a setting's name is a bare symbol (``c``, ``\\lambda``, ``N_c``) rather than
    the words of a quantity (``learning rate``, ``margin``)."""
    name = name.strip()
    return name.startswith("\\") or "_" in name or "{" in name or len(name) <= 3


def is_index_or_indicator(setting: Setting) -> bool:
    """Whether a ``$x = v$`` of the paper is an index, a per-element variable or an
    indicator rather than a hyper-parameter: ``i``, ``t``, ``n``; anything subscripted by an
    index (``m_i``, ``x_t``); anything the paper calls a mask, index or indicator. Sweeping
    ``m_i = 1`` (a mask indicator) is not an ablation."""
    if not is_symbol(setting.name):
        return False
    base, sub = _symbol_parts(setting.name)
    if base in _INDEX_NAMES or (sub and set(sub.replace(",", "")) <= set("ijktn")):
        return True
    return bool(setting.meaning and _INDICATOR_WORDS.search(setting.meaning))


def describe_setting(setting: Setting) -> str | None:
    """The ablated part of a planner-added sweep: "c, the margin of the contrastive loss,
    0.2 in the paper"; None when the setting must not be swept (an index or indicator) or
    is a bare symbol whose meaning the paper's text did not give (a reader cannot tell what
    "c = 0.2" is, so the sweep is not added)."""
    if is_index_or_indicator(setting):
        return None
    if is_symbol(setting.name):
        if not setting.meaning:
            return None
        return f"{setting.name}, {setting.meaning}, {setting.value} in the paper"
    return f"{setting.name}, {setting.value} in the paper"


# ------------------------------------------------------------------ reasoning about the paper
def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


@lru_cache(maxsize=16)
def _instruction_rules(instructions: str) -> tuple[frozenset[str], ...]:
    """Each instruction sentence's content stems (cached: the same prompt for every paper of
    a mode, and building them was most of this check's CPU per paper)."""
    rules = (
        frozenset(_stem(w) for w in _content(_words(sentence)))
        for sentence in _sentences(instructions)
    )
    return tuple(rule for rule in rules if len(rule) >= 3)


def _restates(sentence: str, rules: Sequence[frozenset[str]]) -> bool | None:
    """Whether ``sentence`` restates one of ``rules`` (None: too short to tell)."""
    words = {_stem(w) for w in _content(_words(sentence))}
    if len(words) < 4:
        return None
    return any(len(words & rule) >= 0.6 * len(words) for rule in rules)


def whole_sentences(reasoning: str, limit: int) -> str:
    """A reasoning the schema's ``limit`` cut mid-sentence ("... The paper's"), back to its
    last whole sentence, or marked "…" where that would lose most of it. A reasoning that
    ends on its own is returned as it is."""
    text = reasoning.rstrip()
    if len(text) < limit - 40 or re.search(r"[.!?][\"')\]]*$", text):
        return reasoning
    ends = [m.end() for m in re.finditer(r"[.!?][\"')\]]*(?=\s)", text)]
    if ends and ends[-1] >= len(text) // 2:
        return text[: ends[-1]]
    return text + " …"


def drop_restated(
    reasoning: str, instructions: str, keep: Callable[[str], bool] | None = None
) -> tuple[str, int]:
    """``reasoning`` without its sentences that restate an instruction (as
    ``restated_share`` counts them) unless ``keep`` says a sentence is a claim to keep, and
    how many went. Lines are kept as lines: a reasoning is short, its paragraphs the model's."""
    rules = _instruction_rules(instructions)
    removed = 0
    lines = []
    for line in reasoning.split("\n"):
        kept = []
        for sentence in re.split(r"(?<=[.!?])\s+", line):
            if sentence.strip() and _restates(sentence, rules) and not (keep and keep(sentence)):
                removed += 1
            else:
                kept.append(sentence)
        lines.append(" ".join(kept))
    if not removed:
        return reasoning, 0
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text, removed


def restated_share(reasoning: str, instructions: str) -> float:
    """The share of the reasoning's sentences that restate an instruction sentence.

    A sentence restates an instruction when at least 60% of its content words (4 or more)
    are the content words of one sentence of ``instructions`` ("I will read the method
    section and list its main components"). A reasoning about the paper names the paper's
    own components, which the instructions never contain, so it scores near 0.
    """
    rules = _instruction_rules(instructions)
    counted = restated = 0
    for sentence in _sentences(reasoning):
        verdict = _restates(sentence, rules)
        if verdict is None:
            continue
        counted += 1
        restated += verdict
    return restated / counted if counted else 0.0


# ------------------------------------------------------------------ a reply that loops
class RepetitionGuard:
    """An ``on_token`` wrapper that ends a streamed reply once one sentence of at least
    ``min_words`` words has come ``times`` times: a small model that loops (seen: 510 s of
    generation on one repeated sentence) would otherwise run to its token limit. It raises
    ``StopGeneration`` (finish reason ``"repetition"``), and the reply goes to the repair
    path like a truncated one. Linear in the reply: each sentence is counted once, when it
    ends.
    """

    FINISH_REASON = "repetition"

    def __init__(
        self,
        emit: Callable[[str], None] | None = None,
        *,
        min_words: int = 8,
        times: int = 3,
    ) -> None:
        self.emit = emit
        self.min_words = min_words
        self.times = times
        self.buffer = ""
        self.counts: dict[str, int] = {}
        self.repeated: str | None = None

    # a sentence ends at . ! ? followed by a space, a quote or a backslash, at a (JSON-escaped)
    # newline, or at a quote (the end of a JSON string)
    _END = re.compile(r"[.!?]+(?=[\s\"\\])|\\n|\n|\"")

    def __call__(self, piece: str) -> None:
        if self.emit is not None:
            self.emit(piece)
        self.buffer += piece
        last = 0
        for match in self._END.finditer(self.buffer):
            self._count(self.buffer[last : match.start()])
            last = match.end()
        self.buffer = self.buffer[last:]
        if len(self.buffer) > 4000:  # no sentence end for pages: count what there is
            self._count(self.buffer)
            self.buffer = ""

    def _count(self, sentence: str) -> None:
        words = _words(sentence)
        if len(words) < self.min_words:
            return
        key = " ".join(words)
        self.counts[key] = count = self.counts.get(key, 0) + 1
        if count >= self.times:
            from ablationkit.lm.types import StopGeneration

            self.repeated = sentence.strip()
            raise StopGeneration(
                f"the reply repeated one sentence {count} times", self.FINISH_REASON
            )

    def reset(self) -> None:
        """Start over (a retried call streams its reply again from the beginning)."""
        self.buffer, self.counts, self.repeated = "", {}, None


_OPEN_REASONING = re.compile(r'\s*(?:```(?:json)?\s*)?\{\s*"reasoning"\s*:\s*"')


def salvage_reasoning(text: str) -> str | None:
    """The reasoning of a reply stopped while it looped inside its "reasoning" string, each
    sentence once (a cut-off last sentence left out); None when the reply is not one whose
    reasoning string is still open. What a small model wrote before it looped is usually
    fine: the planner keeps it and asks for the ablations alone, with a schema that has no
    reasoning to loop in, instead of asking for the whole reply again (it loops again).
    """
    from ablationkit.lm.jsonreply import keep_latex

    opened = _OPEN_REASONING.match(text)
    if opened is None:
        return None
    body = text[opened.end() :]
    escaped = False
    for char in body:  # an unescaped quote closes the string: the loop was elsewhere
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None
    if escaped:
        body = body[:-1]
    try:
        prose = str(json.loads(keep_latex(f'"{body}"')))
    except ValueError:
        prose = body.replace('\\"', '"').replace("\\n", "\n")
    kept: list[str] = []
    seen: set[str] = set()
    for sentence in _sentences(prose):
        key = " ".join(_words(sentence))
        if key and key not in seen and re.search(r"[.!?]\s*$", sentence):
            seen.add(key)
            kept.append(sentence.strip())
    return " ".join(kept) or None


__all__ = [
    "PROMPT_EXAMPLES",
    "PROMPT_EXAMPLE_JSON",
    "PROMPT_EXAMPLE_JSON_NO_METRICS",
    "PromptExample",
    "RepetitionGuard",
    "concrete_metrics",
    "concrete_values",
    "describe_setting",
    "example_copy",
    "is_index_or_indicator",
    "is_symbol",
    "placeholder",
    "placeholder_metric",
    "placeholder_value",
    "restated_share",
    "salvage_reasoning",
]
