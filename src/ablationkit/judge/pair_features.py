"""What the offline judge looks at in a (planned, ground-truth) pair of ablations.

The labelling rules of ``benchmarks/data/judge-labels.jsonl`` split a match into two
questions: is it the **same component** (M1), and is it a **compatible change** (M2, M3: the
same action, or REMOVE against a REPLACE by what is left; a value or alternative in common)?
The features follow that split, so that ``ablationkit.judge.offline`` can learn one model
per question: component features come from sentence embeddings and word overlap of the
ablated parts, and two or more alternatives in common; change features compare actions and
replacement lists (numbers in common or in conflict, the same alternative or the same value of
the same knob, a target that only describes its values, vague alternatives such as "a simpler
model", a replacement that is what is left without the component).

One cosine-only score (the plain embedding judge) cannot tell "cutoff 10 → 5 min" from
"cutoff 10 → 20 min": both are nearly the same sentence. The change features can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ablationkit.schema import Ablation

if TYPE_CHECKING:
    from ablationkit.judge.embedding import MiniLMEncoder

COMPONENT_FEATURES: tuple[str, ...] = (
    "full",
    "part",
    "name_part",
    "part_contain",
    "part_jaccard",
    "alternatives_shared",
)
CHANGE_FEATURES: tuple[str, ...] = (
    "same_action",
    "remove_vs_replace",
    "numbers_shared",
    "numbers_conflict",
    "described_vs_values",
    "target_described",
    "same_alternative",
    "replacement_cosine",
    "replacement_jaccard",
    "vague",
    "leftover",
    "planned_without_values",
    "target_without_values",
)

_STOPWORDS = frozenset(
    (
        "the a an of to in for and or with on by from is are be as at that this its their using use"
    ).split()
)
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_NUMBER = re.compile(r"(?<![a-z])\d+(?:\.\d+)?")
_DESCRIBED = re.compile(r"range|varying|vary|other values|values shown|different values|e\.g\.")
_VAGUE = re.compile(r"\b(other|simpler|more complex|alternative|different|variants?)\b")
# E1's "what is left without X": "no X", "without", "random ...", "top-K", a value of 0
# ("0 epochs", "lambda = 0"; not "0.1", not "fixed to 0"). Not "uniform": uniform sampling is
# an alternative selector, not the absence of one (KESTREL's H1 "uniform among the top-64").
_LEFTOVER = re.compile(r"\b(no|without|zero|none|random)\b|\btop-k\b|(^|=\s*)0(\.0+)?(?![.\d])")
_SUFFIX = re.compile(r"(ing|es|s|ed)$")
_STEM_LENGTH = 6
_ASSIGNED = re.compile(r"([a-z_]\w*)\s*=\s*(\d+(?:\.\d+)?)")
_WITH_UNIT = re.compile(r"(?<![a-z0-9.=])(\d+(?:\.\d+)?)\s*([a-z]+)")


def replacement_items(ablation: Ablation) -> list[str]:
    """The replacement as a list of strings (a mapping gives ``"key: value"`` items)."""
    value = ablation.replacement
    if isinstance(value, dict):
        return [f"{key}: {item}" for key, item in value.items()]
    return [str(item) for item in value or []]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _stems(text: str) -> set[str]:
    """Words cut to their first six letters once a plural or verb ending is off.

    Why cut: M1 reads the component against the paper, not the wording, and the same part is
    often written with another form of a word ("dimension" / "dimensionality", "regularised" /
    "regularisation", "uniform" / "uniformly", "candidate" / "candidates", which the suffix
    rule alone turns into "candidate" / "candidat"). Leave-one-paper-out, 5, 6 or 7 letters
    give the same agreement (8: one match fewer)."""
    return {_unsuffixed(w)[:_STEM_LENGTH] for w in _words(text)}


def _unsuffixed(word: str) -> str:
    """``word`` without a plural or verb ending; short words stay whole ("gas", "bus")."""
    return _SUFFIX.sub("", word) if len(word) > 4 else word


def _numbers(items: Sequence[str]) -> set[float]:
    return {float(n) for item in items for n in _NUMBER.findall(item.lower())}


def keyed_values(items: Sequence[str]) -> set[tuple[str, float]]:
    """The values of ``items`` with what they are a value of: the symbol assigned
    ("p = 3" -> ("p", 3.0)) or the unit that follows ("15min", "20 min" -> ("min", ...)).

    Why: under E2 a target may change several knobs in one item ("p=3 with 15 min cutoff"),
    so no planned item equals a target item, yet "p = 3" is the same value of the same knob."""
    found: set[tuple[str, float]] = set()
    for item in items:
        text = item.lower()
        found.update((key, float(value)) for key, value in _ASSIGNED.findall(text))
        found.update(
            (_unsuffixed(unit), float(value))
            for value, unit in _WITH_UNIT.findall(text)
            if unit not in _STOPWORDS
        )
    return found


def _is_value(item: str) -> bool:
    """A concrete value ("64", "p = 3", "0 epochs (no warm-up)"), not a rule that happens to
    hold a number ("stop once every token confidence exceeds 0.9"): E3 matches a described
    target with concrete other values, not with a rule instead of values."""
    words = [w for w in _WORD.findall(item.lower()) if not _NUMBER.fullmatch(w)]
    return bool(_NUMBER.search(item.lower())) and len(words) <= 3


def _item_key(item: str) -> str:
    return re.sub(r"[^a-z0-9.]+", " ", item.lower()).strip()


def shared_alternatives(a_items: Sequence[str], b_items: Sequence[str]) -> int:
    """How many of ``a_items`` name one of ``b_items`` (equal, or one inside the other, once
    punctuation and case are set aside: "square-root" is "square root").

    Why a component feature: two lists with two or more alternatives in common ("square,
    cubic, exponential" schedules; K in 8 and 32) are the same component's ablation however
    differently the parts are worded; on the labelled set every such pair is a match (8 of 8),
    while the parts' cosine put some of them near 0."""
    keys = [_item_key(x) for x in b_items]
    return sum(
        any(x == y or (len(x) > 2 and len(y) > 2 and (x in y or y in x)) for y in keys)
        for x in map(_item_key, a_items)
        if x
    )


def _jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / max(1, len(a | b))


def _full_text(ablation: Ablation) -> str:
    # the plain embedding judge's text, so "full" is exactly its similarity
    from ablationkit.judge.embedding import ablation_text

    return ablation_text(ablation)


def _name_part(ablation: Ablation) -> str:
    return f"{ablation.name}: {ablation.ablated_part}"


def pair_features(
    planned: Sequence[Ablation], targets: Sequence[Ablation], encoder: MiniLMEncoder
) -> list[list[dict[str, float]]]:
    """``features[i][j]`` for planned ``i`` against target ``j``: every name of
    ``COMPONENT_FEATURES`` and ``CHANGE_FEATURES``. Each distinct text is encoded once."""
    texts: dict[str, int] = {}

    def slot(text: str) -> int:
        return texts.setdefault(text, len(texts))

    def keys(a: Ablation) -> tuple[int, int, int, list[int]]:
        return (
            slot(_full_text(a)),
            slot(a.ablated_part),
            slot(_name_part(a)),
            [slot(r) for r in replacement_items(a)],
        )

    planned_keys = [keys(a) for a in planned]
    target_keys = [keys(b) for b in targets]
    vectors = encoder.encode(list(texts))

    def cos(i: int, j: int) -> float:
        return float(vectors[i] @ vectors[j])

    rows: list[list[dict[str, float]]] = []
    for a, (a_full, a_part, a_name_part, a_reps) in zip(planned, planned_keys, strict=True):
        row = []
        for b, (b_full, b_part, b_name_part, b_reps) in zip(targets, target_keys, strict=True):
            features = {
                "full": cos(a_full, b_full),
                "part": cos(a_part, b_part),
                "name_part": cos(a_name_part, b_name_part),
                "replacement_cosine": max((cos(i, j) for i in a_reps for j in b_reps), default=0.0),
            }
            features.update(_lexical(a, b))
            row.append(features)
        rows.append(row)
    return rows


def _lexical(a: Ablation, b: Ablation) -> dict[str, float]:
    """The features that need no encoder."""
    a_items, b_items = replacement_items(a), replacement_items(b)
    a_numbers, b_numbers = _numbers(a_items), _numbers(b_items)
    a_stems = _stems(f"{a.ablated_part} {a.name}")
    b_stems = _stems(f"{b.ablated_part} {b.name}")
    a_lower = {x.lower().strip() for x in a_items}
    b_lower = {x.lower().strip() for x in b_items}
    # a target that only describes its values (E3): numbers in it ("e.g. 8-60") are not
    # the values swept, so they neither conflict with nor confirm the planned ones
    described = bool(_DESCRIBED.search(", ".join(b_items).lower()))
    remove_vs_replace = {a.action.value, b.action.value} == {"REMOVE", "REPLACE"}
    return {
        "part_contain": len(a_stems & b_stems) / max(1, min(len(a_stems), len(b_stems))),
        "part_jaccard": _jaccard(_words(a.ablated_part), _words(b.ablated_part)),
        "alternatives_shared": float(shared_alternatives(a_items, b_items) >= 2),
        "same_action": float(a.action == b.action),
        "remove_vs_replace": float(remove_vs_replace),
        "numbers_shared": float(bool(a_numbers & b_numbers)),
        "numbers_conflict": float(
            bool(a_numbers and b_numbers and not a_numbers & b_numbers) and not described
        ),
        "described_vs_values": float(described and any(map(_is_value, a_items))),
        "target_described": float(described),
        # the same alternative, or the same value of the same knob (E2: "p = 3" is in
        # "p=3 with 15 min cutoff"); one feature, so what other papers' same alternatives
        # teach the model carries over to jointly varied knobs
        "same_alternative": float(
            bool(a_lower & b_lower)
            or bool(keyed_values(a_items) & keyed_values(b_items))
            or any(x in y or y in x for x in a_lower for y in b_lower if len(x) > 3 and len(y) > 3)
        ),
        "replacement_jaccard": _jaccard(_words(" ".join(a_items)), _words(" ".join(b_items))),
        "vague": float(bool(_VAGUE.search(" ".join(a_items).lower()))),
        # E1: the REPLACE side names what is left without the component; item by item, so
        # that a 0 must be the item's value ("0 epochs"), not a digit of "0.1" or "fixed to 0"
        "leftover": float(
            remove_vs_replace and any(_LEFTOVER.search(x.lower()) for x in a_items + b_items)
        ),
        "planned_without_values": float(not a_items),
        "target_without_values": float(not b_items),
    }
