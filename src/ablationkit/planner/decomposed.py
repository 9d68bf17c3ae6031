"""Decomposed planning (``strategy="decomposed"``): a plan a small model can carry.

The single strategy asks one model call for reasoning and k finished ablations at once. A 1.5B
model then fills fields with the prompt's wording, placeholders ("None", "a simpler model")
and metrics the paper never uses, and spends most of its ~10 tokens/s on prose. Here the model
only does what needs reading, and the planner does the rest from what the model pointed at:

(a) **Components** — one short, schema-bound call lists the method's components: the name as
    the paper writes it, the kind (module, loss term, training step, data choice,
    hyper-parameter), the paper's value and the alternatives it names, and a quote of the
    paper's words. The quote is looked up in the paper (fuzzily: stemmed content words, so
    "distilled answer likelihood" finds "answer-likelihood distillation"); a component whose
    quote or name is not in the paper is dropped as made up, values and alternatives not in
    the paper are dropped, and the paper's sentence found becomes the ablation's evidence.
(b) **Ranking** — inside (a): the model lists the components most important first, and that
    order is the rank. A separate ranking call would cost its own request, the component
    list read again as prompt and ~4 generated tokens per component (ids or scores), and an
    importance field inside (a) would cost as many generated tokens; the order of the list
    costs none. The planner only reorders for coverage: in reviewer mode it skips what the
    paper already ablates, and when nothing chosen sweeps a stated value, the first
    hyper-parameter with a value takes the last place (papers' own ablations very often
    sweep one; small models rarely propose it).
(c) **Ablations** — written without a model: REMOVE the component, or REPLACE it with the
    alternatives the paper names, or, for a hyper-parameter, with values around the paper's
    value (``hints.Setting.sweep``); metrics are the paper's own (the ones the model found
    that occur in the paper, then ``hints.metrics``). Words are needed only for the
    reasoning, so one more short call writes it, about the paper: what the method is made
    of and why the chosen components matter. If that call fails, the reasoning is built
    from the components and the paper's sentences instead (the ablations are already good).

Every call starts with the same messages (system, the paper, a one-line acknowledgement):
llama.cpp keeps the last prompt's KV cache in its slot (``cache_prompt`` is on by default and
the embedded server has one slot), so every call after the first processes only its own new
tokens. When fewer than k usable components come back, one more call of the same prefix asks
for more, naming those already listed. A reply that cannot be used (no JSON, no component
found in the paper) gets one repair round-trip; if that fails too, ``PlanError`` names the
file where the raw replies were saved.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ablationkit.lm.client import LMClient, default_client
from ablationkit.lm.jsonreply import ReplyParseError, extract_json
from ablationkit.lm.repair import RepairFailed, acomplete_and_parse
from ablationkit.lm.retry import Deadline
from ablationkit.lm.types import Completion, Message
from ablationkit.planner.core import (
    REASONING_CHARS,
    PlanError,
    PlanProgress,
    PlanRequest,
    _save_raw,
    _template,
    reply_timings,
)
from ablationkit.planner.guards import concrete_metrics, placeholder_value, whole_sentences
from ablationkit.planner.hints import PaperHints, Setting
from ablationkit.schema import Ablation, Action, Mode, Plan, Usage

STRATEGY = "decomposed"
PLANNER_NAME = "lm-planner-decomposed"
KINDS = ("module", "loss term", "training step", "data choice", "hyper-parameter")
# Components asked for beyond k: some are dropped as made up, already ablated or duplicated.
SPARE = {"author": 2, "reviewer": 3}
# Generated tokens per call: a component is ~45 tokens of JSON; the schema's lengths bound
# each field, these bound the call (the config's max_tokens still caps both).
COMPONENT_TOKENS = 110
REASONING_TOKENS = 400
ACKNOWLEDGEMENT = "I have read the paper."
_FIT = 0.75  # share of a quote's content stems one paper sentence must hold
_NAME_FIT = 0.5  # share of a name's content stems the paper must hold

__all__ = [
    "KINDS",
    "PLANNER_NAME",
    "STRATEGY",
    "Component",
    "PaperIndex",
    "acomplete_decomposed",
    "components_schema",
    "prefix_messages",
    "reasoning_schema",
]


# ---------------------------------------------------------------------------- the paper's words
_STOP = frozenset(
    "a an the of to in on for and or with without by from its their this that these those is "
    "are be as at into per each all any we our us it which when where while than then also "
    "both not no can use used using uses based via over under more most less such".split()
)
_WORD = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=#)")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _stem(word: str) -> str:
    """Five letters: "distilled"/"distillation", "regularised"/"regularized" meet."""
    return word[:5] if word.isalpha() else word


def content_stems(text: str) -> frozenset[str]:
    """Stems of the words that carry meaning (no function words, no one-letter symbols)."""
    return frozenset(_stem(w) for w in _words(text) if len(w) > 1 and w not in _STOP)


def _share(part: frozenset[str], whole: frozenset[str] | set[str]) -> float:
    return len(part & whole) / len(part) if part else 0.0


class PaperIndex:
    """The paper's text, split into sentences with their stems, for grounding checks."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sentences: list[tuple[str, frozenset[str]]] = []
        for piece in _SENTENCE_END.split(text):
            sentence = " ".join(piece.split())
            if sentence:
                self.sentences.append((sentence, content_stems(sentence)))
        self.stems: set[str] = set().union(*(s for _, s in self.sentences))
        words = _words(text)
        self.flat = f" {' '.join(words)} "
        self.numbers = {w for w in words if w[0].isdigit()}

    def contains(self, phrase: str) -> bool:
        """Whether the phrase's words occur in the paper, in order."""
        words = _words(phrase)
        return bool(words) and f" {' '.join(words)} " in self.flat

    def sentence_of(self, quote: str) -> str | None:
        """The paper's sentence a quote comes from, or None when it is not the paper's."""
        stems = content_stems(quote)
        if len(stems) < 2 and not (len(_words(quote)) >= 3 and self.contains(quote)):
            return None  # too short to tell a quote from a coincidence
        best, best_fit = None, 0.0
        for sentence, sentence_stems in self.sentences:
            fit = _share(stems, sentence_stems)
            if fit > best_fit:
                best, best_fit = sentence, fit
        if best is not None and (best_fit >= _FIT or self.contains(quote)):
            return best
        return None

    def names(self, name: str) -> bool:
        """Whether the paper uses (most of) the words of a component's name."""
        stems = content_stems(name)
        if not stems:
            return self.contains(name)
        return _share(stems, self.stems) >= _NAME_FIT

    def has_value(self, value: str) -> bool:
        numbers = _NUMBER.findall(value)
        if numbers:
            return all(n in self.numbers for n in numbers)
        stems = content_stems(value)
        return bool(stems) and _share(stems, self.stems) >= 0.6


# ---------------------------------------------------------------------------- components
@dataclass
class Component:
    """One component of the method as the model named it, checked against the paper."""

    name: str
    kind: str
    quote: str = ""
    value: str = ""
    alternatives: list[str] = field(default_factory=list)
    ablated: bool = False  # reviewer mode: the model says the paper already ablates it
    sentence: str = ""  # the paper's sentence the quote was found in

    def describe(self) -> str:
        value = f", {self.value} in the paper" if self.value else ""
        return f"{self.name} ({self.kind}{value})"


def _text(value: Any, limit: int) -> str:
    return " ".join(str(value).split())[:limit] if value is not None else ""


def _kind(value: Any) -> str:
    text = _text(value, 40).lower()
    for kind, pattern in (
        ("hyper-parameter", r"hyper|param|value|setting|coefficient|weight\b"),
        ("loss term", r"loss|objective|regulari|penalt|term"),
        ("training step", r"train|step|procedure|schedul|optimi|stage|distil"),
        ("data choice", r"data|input|augment|sampl|feature"),
    ):
        if re.search(pattern, text):
            return kind
    return "module"


def _component(item: Any) -> Component | None:
    if not isinstance(item, dict):
        return None
    name = _text(item.get("name") or item.get("component"), 80)
    if not name:
        return None
    alternatives = item.get("alternatives") or []
    if isinstance(alternatives, str):
        alternatives = [alternatives]
    return Component(
        name=name,
        kind=_kind(item.get("kind")),
        quote=_text(item.get("quote") or item.get("sentence"), 400),
        value=_text(item.get("value"), 60),
        alternatives=[_text(a, 80) for a in alternatives if _text(a, 80)][:4],
        ablated=item.get("ablated") is True,
    )


@dataclass
class Extraction:
    """A components reply, checked against the paper."""

    components: list[Component]
    made_up: list[Component]
    metrics: list[str]


def ground(component: Component, index: PaperIndex) -> bool:
    """Keep ``component`` only if its quote and name are the paper's; its value and
    alternatives keep only what the paper states (a made-up value is worse than none)."""
    sentence = index.sentence_of(component.quote) if component.quote else None
    if sentence is None or not index.names(component.name):
        return False
    component.sentence = sentence
    if component.value and (
        placeholder_value(component.value) is not None or not index.has_value(component.value)
    ):
        component.value = ""
    own = {component.name.lower(), component.value.lower()}
    component.alternatives = [
        a
        for a in component.alternatives
        if placeholder_value(a) is None and index.has_value(a) and a.lower() not in own
    ]
    return True


def _same(a: Component, b: Component) -> bool:
    one, two = content_stems(a.name), content_stems(b.name)
    if not one or not two:
        return a.name.lower() == b.name.lower()
    return one <= two or two <= one


def _complete_components(text: str) -> dict[str, Any] | None:
    """The whole component objects of a reply cut off by the token limit: they are as good
    as in a finished reply, and asking again would generate them all a second time."""
    at = text.find('"components"')
    start = text.find("[", at) if at >= 0 else -1
    if start < 0:
        return None
    decoder = json.JSONDecoder()
    items: list[Any] = []
    position = start + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] != "{":
            break
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            break
        items.append(item)
    return {"components": items, "metrics": []} if items else None


def parse_components(reply: Completion, index: PaperIndex, known: list[Component]) -> Extraction:
    """The components of a reply that the paper contains; ``ReplyParseError`` (for the
    repair prompt) when the reply has none: no JSON, no list, or only made-up components."""
    try:
        data: Any = extract_json(reply.text)
    except ReplyParseError as exc:
        if reply.finish_reason != "length":
            raise
        data = _complete_components(reply.text)
        if data is None:
            raise ReplyParseError(
                f"{exc.message}; the reply hit the token limit after "
                f"{reply.usage.completion_tokens} tokens: give fewer, shorter components"
            ) from None
    items = data.get("components") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ReplyParseError('no "components" list in the reply')
    listed = [c for c in (_component(item) for item in items) if c is not None]
    if not listed:
        raise ReplyParseError('the "components" list has no component with a name')
    kept: list[Component] = []
    made_up: list[Component] = []
    for component in listed:
        if any(_same(component, other) for other in [*known, *kept]):
            continue
        (kept if ground(component, index) else made_up).append(component)
    if not kept and not known:
        shown = "; ".join(f"{c.name!r}: {c.quote[:60]!r}" for c in made_up[:3])
        raise ReplyParseError(
            f"none of the {len(made_up)} components is in the paper ({shown}): name only "
            "components of this paper and copy each quote word for word from the paper"
        )
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if isinstance(metrics, str):
        metrics = [metrics]
    found = [_text(m, 60) for m in metrics or [] if isinstance(m, str)]
    return Extraction(kept, made_up, concrete_metrics([m for m in found if index.contains(m)]))


# ---------------------------------------------------------------------------- schemas, prompts
def _string(limit: int, *, empty: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": limit}
    if not empty:
        schema["minLength"] = 1
    return schema


def components_schema(n: int, mode: Mode) -> dict[str, Any]:
    """The components reply: short, bounded fields, the quote before the value (the model
    copies the paper's words first, then reads the value off them)."""
    properties: dict[str, Any] = {
        "name": _string(60),
        "kind": {"type": "string", "enum": list(KINDS)},
        "quote": _string(160),
        "value": _string(40, empty=True),
        "alternatives": {"type": "array", "items": _string(60), "maxItems": 3},
    }
    if mode == "reviewer":
        properties["ablated"] = {"type": "boolean"}
    component = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "object",
        "properties": {
            "components": {"type": "array", "items": component, "minItems": 1, "maxItems": n},
            "metrics": {"type": "array", "items": _string(40), "maxItems": 4},
        },
        "required": ["components", "metrics"],
    }


def reasoning_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"reasoning": _string(REASONING_CHARS)},
        "required": ["reasoning"],
    }


def paper_text(request: PlanRequest) -> str:
    """The paper as ``prepare_plan`` fitted it into the model's context (inside the
    ``<paper_source>`` tags that end its user message)."""
    content = request.messages[-1]["content"]
    start, end = content.find("<paper_source>\n"), content.rfind("\n</paper_source>")
    if start < 0 or end < start:
        return str(content)
    return str(content[start + len("<paper_source>\n") : end])


def prefix_messages(text: str, mode: Mode) -> list[Message]:
    """The messages every call of a decomposed plan begins with, identical byte for byte so
    the server's prompt cache reuses them; the acknowledgement keeps roles alternating for
    chat templates that insist on it."""
    return [
        {"role": "system", "content": _render("decomposed_system.j2", mode=mode)},
        {"role": "user", "content": _render("decomposed_paper.j2", paper=text, mode=mode)},
        {"role": "assistant", "content": ACKNOWLEDGEMENT},
    ]


def _render(name: str, **values: Any) -> str:
    return str(_template(name, None).render(**values)).strip()


# ---------------------------------------------------------------------------- ablations
_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _setting(component: Component, hints: PaperHints) -> Setting | None:
    """The paper's value of a hyper-parameter: a stated setting its text names, else the
    single plain number of its value."""
    text = f"{component.name} {component.value} {component.sentence}"
    for setting in hints.settings:
        symbol = setting.name.strip("\\")
        named = re.search(rf"(?<![A-Za-z]){re.escape(symbol)}(?![A-Za-z])", text)
        if named and (setting.value in component.value or setting.value in component.sentence):
            return setting
    numbers = _PLAIN_NUMBER.findall(component.value)
    if len(numbers) == 1 and "^" not in component.value:
        return Setting(component.name, numbers[0])
    return None


def ablation_for(component: Component, hints: PaperHints, metrics: list[str]) -> Ablation | None:
    """The ablation of one component, from the paper's facts only; None for a
    hyper-parameter the paper gives no value or alternatives for (nothing concrete to try).
    ``evidence`` is the paper's sentence (the key AblationBench's ground truth uses)."""
    values: list[str] | None = component.alternatives or None
    if component.kind == "hyper-parameter":
        setting = _setting(component, hints)
        values = values or (setting.sweep() if setting else None)
        if not values:
            return None
        if not component.value and setting is not None:
            component.value = setting.value
    return Ablation.model_validate(
        {
            "name": component.name[:1].upper() + component.name[1:],
            "ablated_part": component.describe(),
            "action": Action.REPLACE if values else Action.REMOVE,
            "replacement": list(values) if values else None,
            "metrics": list(metrics),
            "evidence": component.sentence[:400],
        }
    )


_ABLATION_HEADING = re.compile(r"^(#+)\s*(.*)$")


@lru_cache(maxsize=8)
def _ablation_sentences(text: str) -> tuple[frozenset[str], ...]:
    """Stems of the sentences under headings that say ablation (reviewer mode's view)."""
    found: list[frozenset[str]] = []
    level: int | None = None
    for line in text.splitlines():
        heading = _ABLATION_HEADING.match(line.strip())
        if heading:
            depth = len(heading.group(1))
            if level is not None and depth <= level:
                level = None
            if level is None and re.search(r"ablat", heading.group(2), re.I):
                level = depth
            continue
        if level is not None:
            found.extend(content_stems(s) for s in re.split(r"(?<=[.!?])\s+", line) if s)
    return tuple(found)


def already_ablated(component: Component, text: str) -> bool:
    """Whether the paper reports an ablation of the component: the model says so, or a
    sentence of an ablation section holds every content word of its name."""
    if component.ablated:
        return True
    stems = content_stems(component.name)
    return bool(stems) and any(stems <= s for s in _ablation_sentences(text))


def _is_sweep(ablation: Ablation) -> bool:
    return any(_PLAIN_NUMBER.fullmatch(str(v)) for v in ablation.replacement or [])


@dataclass
class Choice:
    chosen: list[tuple[Component, Ablation]]
    reported: list[Component]
    skipped: list[Component]
    sweep_added: Component | None


def choose(
    components: list[Component],
    k: int,
    mode: Mode,
    text: str,
    hints: PaperHints,
    metrics: list[str],
) -> Choice:
    """The top k ablations in the model's order (its ranking), skipping what the paper
    already ablates (reviewer mode) and hyper-parameters with nothing to try."""
    reported: list[Component] = []
    skipped: list[Component] = []
    usable: list[tuple[Component, Ablation]] = []
    for component in components:
        if mode == "reviewer" and already_ablated(component, text):
            reported.append(component)
            continue
        ablation = ablation_for(component, hints, metrics)
        if ablation is None:
            skipped.append(component)
        else:
            usable.append((component, ablation))
    chosen = usable[:k]
    sweep_added = None
    if k >= 3 and not any(_is_sweep(a) for _, a in chosen):
        rest = [(c, a) for c, a in usable[k:] if c.kind == "hyper-parameter" and _is_sweep(a)]
        if rest:
            sweep_added = rest[0][0]
            chosen = [*chosen[: k - 1], rest[0]] if len(chosen) >= k else [*chosen, rest[0]]
    return Choice(chosen, reported, skipped, sweep_added)


def _metrics(found: list[str], hints: PaperHints) -> list[str]:
    """The paper's own metrics: those the model read that occur in it, then the hints'."""
    metrics: list[str] = []
    for metric in [*found, *hints.metrics]:
        if metric.lower() not in {m.lower() for m in metrics}:
            metrics.append(metric)
    return metrics[:3]


def _plan_line(component: Component, ablation: Ablation) -> str:
    if ablation.action == Action.REMOVE:
        change = "remove it"
    else:
        change = "replace it with " + ", ".join(str(v) for v in ablation.replacement or [])
    return f"{component.describe()}: {change}"


def _summary(components: list[Component], made_up: list[Component], choice: Choice, k: int) -> str:
    """What the planner did, about the paper: the components, what was dropped and why."""
    lines = [
        "Components of the method found in the paper, most important first: "
        + "; ".join(f"{c.name} ({c.kind})" for c in components)
        + "."
    ]
    if choice.reported:
        lines.append(
            "Already ablated in the paper, so not planned again: "
            + "; ".join(c.name for c in choice.reported)
            + "."
        )
    if choice.skipped:
        lines.append(
            "Not planned (a hyper-parameter the paper gives no value for): "
            + "; ".join(c.name for c in choice.skipped)
            + "."
        )
    if made_up:
        lines.append(
            "Dropped as not found in the paper's text: " + "; ".join(c.name for c in made_up) + "."
        )
    if choice.sweep_added is not None:
        lines.append(
            f"Added by the planner: a sweep of {choice.sweep_added.describe()}, a value the "
            "paper states that no other chosen ablation varies."
        )
    if len(choice.chosen) < k:
        lines.append(
            f"Only {len(choice.chosen)} of the {k} ablations asked for: the paper's text "
            "gave no more components to ablate."
        )
    return "\n".join(lines)


def _fallback_reasoning(choice: Choice) -> str:
    """The reasoning when the model's could not be used: each chosen component with the
    paper's own sentence about it."""
    return " ".join(f'{c.name}: "{c.sentence}"' for c, _ in choice.chosen)


# ---------------------------------------------------------------------------- the model calls
@dataclass
class _Calls:
    """What every call of one plan shares: its prefix, settings, deadline and replies."""

    request: PlanRequest
    client: LMClient
    progress: PlanProgress
    prefix: list[Message]
    deadline: Deadline | None
    replies: list[Completion] = field(default_factory=list)

    async def ask(
        self,
        task: str,
        schema: dict[str, Any],
        parse: Any,
        *,
        max_tokens: int,
        what: str,
    ) -> Any:
        config = self.request.config
        params = {
            **config.request_params(),
            "max_tokens": min(config.generation.max_tokens, max_tokens),
        }
        try:
            result, replies = await acomplete_and_parse(
                self.client,
                [*self.prefix, {"role": "user", "content": task}],
                self.request.model,
                parse,
                instruction="Reply again with only the JSON object in the required format.",
                on_repair=lambda error: self.progress.stage(
                    f"{what}: reply unusable ({error}); asking the model to repair it"
                ),
                schema=schema,
                on_token=self.progress.on_token,
                on_retry=self.progress.retry,
                timeout=config.timeout,
                deadline=self.deadline,
                **params,
            )
        except RepairFailed as failure:
            self.replies.extend(failure.replies)
            raise
        self.replies.extend(replies)
        self._note(what, replies)
        return result

    def _note(self, what: str, replies: list[Completion]) -> None:
        new = sum(r.timings.get("prompt_n", 0.0) for r in replies)
        cached = sum(r.timings.get("cache_n", 0.0) for r in replies)
        if new or cached:
            self.progress.stage(
                f"{what}: {int(new)} new prompt tokens, {int(cached)} reused from the cache"
            )

    def fail(self, raw_dir: Path | None, message: str) -> PlanError:
        request = self.request
        raw_path = _save_raw(raw_dir, request.paper_id, request.mode, self.replies)
        return PlanError(
            f"{request.model.id} gave no usable plan: {message}",
            raw_path=raw_path,
            where=request.paper_id,
        )


async def acomplete_decomposed(
    request: PlanRequest,
    *,
    client: LMClient | None = None,
    raw_dir: Path | None = None,
    progress: PlanProgress | None = None,
) -> Plan:
    """A plan by decomposed planning (see the module docstring): components, their order,
    ablations from the paper's facts, and the reasoning; usage and timings of every call
    summed. ``PlanError`` when the components reply is unusable after its repair."""
    progress = progress or PlanProgress()
    client = client or default_client()
    if request.reference is not None or request.config.protocol != "ablationkit":
        raise PlanError(
            "the decomposed strategy works with the ablationkit protocol only",
            where=request.paper_id,
        )
    config, mode, k = request.config, request.mode, request.k
    begun = time.perf_counter()
    text = paper_text(request)
    index = PaperIndex(text)
    calls = _Calls(
        request,
        client,
        progress,
        prefix_messages(text, mode),
        Deadline(config.deadline) if config.deadline else None,
    )

    def extract(known: list[Component], n: int, what: str) -> Any:
        task = _render("decomposed_components.j2", n=n, mode=mode, known=[c.name for c in known])
        return calls.ask(
            task,
            components_schema(n, mode),
            lambda reply: parse_components(reply, index, known),
            max_tokens=COMPONENT_TOKENS * n + 100,
            what=what,
        )

    progress.stage("decomposed planning: listing the method's components")
    try:
        first: Extraction = await extract([], k + SPARE[mode], "components")
    except RepairFailed as failure:
        raise calls.fail(raw_dir, failure.message) from None
    components, made_up, found_metrics = first.components, first.made_up, first.metrics
    metrics = _metrics(found_metrics, request.hints)
    choice = choose(components, k, mode, text, request.hints, metrics)
    if len(choice.chosen) < k:
        missing = k - len(choice.chosen)
        progress.stage(f"only {len(choice.chosen)} of {k} ablations; asking for more components")
        try:
            more: Extraction = await extract(
                [*components, *made_up], missing + 1, "more components"
            )
        except RepairFailed as failure:
            progress.stage(f"warning: no more components ({failure.message})")
        else:
            components = [*components, *more.components]
            made_up = [*made_up, *more.made_up]
            metrics = _metrics([*found_metrics, *more.metrics], request.hints)
            choice = choose(components, k, mode, text, request.hints, metrics)
    if len(choice.chosen) < k:
        progress.stage(f"warning: {len(choice.chosen)} of the {k} ablations asked for")
    progress.stage(
        f"{len(components)} components in the paper"
        + (f", {len(made_up)} made up and dropped" if made_up else "")
        + f"; {len(choice.chosen)} ablations"
    )
    reasoning = _fallback_reasoning(choice)
    if choice.chosen:
        task = _render(
            "decomposed_reasoning.j2",
            mode=mode,
            chosen=[_plan_line(c, a) for c, a in choice.chosen],
            reported=[c.name for c in choice.reported],
        )
        try:
            reasoning = await calls.ask(
                task,
                reasoning_schema(),
                _parse_reasoning,
                max_tokens=REASONING_TOKENS,
                what="reasoning",
            )
        except RepairFailed as failure:
            saved = _save_raw(raw_dir, request.paper_id, mode, calls.replies)
            progress.stage(
                f"warning: the reasoning reply was unusable ({failure.message}; raw replies "
                f"saved to {saved}); the reasoning quotes the paper instead"
            )
    summary = _summary(components, made_up, choice, k)
    replies = calls.replies
    return Plan(
        planner=PLANNER_NAME,
        model=request.model.id,
        paper_id=request.paper_id,
        mode=mode,
        reasoning=f"{reasoning}\n\n{summary}".strip(),
        ablations=[a for _, a in choice.chosen],
        usage=Usage.total(r.as_usage() for r in replies),
        timings=reply_timings(request, replies, begun),
    )


def _parse_reasoning(reply: Completion) -> str:
    data = extract_json(reply.text)
    reasoning = data.get("reasoning") if isinstance(data, dict) else None
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise ReplyParseError('no "reasoning" text in the reply')
    return whole_sentences(" ".join(reasoning.split()), REASONING_CHARS)
