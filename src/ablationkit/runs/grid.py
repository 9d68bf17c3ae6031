"""``grid``: a plan's ablations as concrete runs of the user's experiment.

A model proposes, for each planned ablation, the setting changes that run it (REPLACE: one
variant per value; REMOVE: the switch-off; ADD: the variant). Nothing it says is taken on
trust: every key must be one of the experiment's knobs (:mod:`ablationkit.runs.project`) and
every value of the knob's kind, else the whole ablation is listed under ``unmapped`` with the
reason. A mapping is never repaired by guessing, because a wrong run looks exactly like a
right one in the results table. Variants identical to the baseline are dropped (they would
be a second baseline). The seeds multiply every variant in :meth:`Grid.runs`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ablationkit.errors import AblationKitError
from ablationkit.lm.jsonreply import ReplyParseError, extract_json
from ablationkit.runs.model import (
    AblationMapping,
    Grid,
    OverrideValue,
    Unmapped,
    Variant,
)
from ablationkit.runs.project import Experiment, Knob, format_value
from ablationkit.schema import Ablation, Action, Plan, Usage

# Per-knob value types in the reply schema only up to this many knobs: beyond it the
# constrained grammar of a local model grows too large, and validation here does the work.
SCHEMA_KNOB_LIMIT = 60
# Knobs listed in the prompt: a few hundred lines cost a local model minutes of prompt
# processing, and the ablations touch a handful of them.
PROMPT_KNOB_LIMIT = 120
MAX_VARIANTS = 8
MAX_VALUE_CHARS = 500  # a setting's value, not a document


class GridError(AblationKitError):
    """No usable mapping from the model (both its reply and the repaired one were broken)."""

    exit_code = 4


@dataclass
class GridResult:
    """The grid, what its model calls cost, and what was dropped or noticed on the way."""

    grid: Grid
    usage: Usage = field(default_factory=Usage)
    notes: list[str] = field(default_factory=list)


# --- the prompt -----------------------------------------------------------------------------


@cache
def _template(name: str) -> Any:
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined, autoescape=False)
    text = resources.files("ablationkit.planner").joinpath("prompts", name).read_text("utf-8")
    return env.from_string(text)


def _replacement_text(ablation: Ablation) -> str:
    value = ablation.replacement
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return ""


_STOPWORDS = frozenset(
    "the a an of and or to in on for with by is are be as at from this that its it than "
    "into per not no use used using each all any value values".split()
)


def _stems(text: str) -> set[str]:
    """Content words cut to five letters: "augmentation" meets "augment", "components" meets
    "component", "standardise" meets "standardisation"."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w[:5] for w in words if len(w) > 1 and w not in _STOPWORDS}


def shown_knobs(plan: Plan, experiment: Experiment, limit: int = PROMPT_KNOB_LIMIT) -> list[Knob]:
    """The knobs the prompt lists: all of them, or for a large config the ``limit`` that share
    the most words with the planned ablations (key words count double), in config order.

    Only what the model is shown is narrowed: validation still accepts every knob.
    """
    knobs = list(experiment.knobs.values())
    if len(knobs) <= limit:
        return knobs
    wanted: set[str] = set()
    for ablation in plan.ablations:
        wanted |= _stems(f"{ablation.name} {ablation.ablated_part} {_replacement_text(ablation)}")

    def score(index: int) -> tuple[int, int]:
        knob = knobs[index]
        key_words = _stems(knob.key.replace("_", " ").replace("-", " "))
        return (-(2 * len(key_words & wanted) + len(_stems(knob.note) & wanted)), index)

    chosen = sorted(sorted(range(len(knobs)), key=score)[:limit])
    return [knobs[i] for i in chosen]


def grid_messages(plan: Plan, experiment: Experiment, title: str = "") -> list[dict[str, str]]:
    """The system and user messages asking for the mapping of every ablation of ``plan``."""
    knobs = shown_knobs(plan, experiment)
    values = {
        "title": title or plan.paper_id,
        "source": experiment.source(),
        "knobs": [knob.describe() for knob in knobs],
        "total": len(experiment.knobs),
        "seed_key": experiment.seed_key,
        "ablations": [
            {
                "name": a.name,
                "action": a.action.value,
                "ablated_part": a.ablated_part,
                "replacement": _replacement_text(a),
            }
            for a in plan.ablations
        ],
    }
    return [
        {"role": "system", "content": _template("grid_system.j2").render(**values).strip()},
        {"role": "user", "content": _template("grid.j2").render(**values).strip()},
    ]


def _value_schema(knob: Knob) -> dict[str, Any]:
    """The JSON schema of one knob's value: its kind, or null (a REMOVE may unset it)."""
    if knob.choices:
        return {"enum": [*knob.choices, None]}
    value = knob.value
    if knob.flag or isinstance(value, bool):
        return {"type": ["boolean", "null"]}
    if isinstance(value, (int, float)):
        return {"type": ["number", "null"]}
    if isinstance(value, str):
        return {"type": ["string", "null"]}
    return {"type": ["string", "number", "boolean", "null"]}


def grid_schema(experiment: Experiment, n: int, shown: list[Knob] | None = None) -> dict[str, Any]:
    """The reply's JSON schema: one mapping per ablation, overrides keyed by the knobs (those
    ``shown`` in the prompt, default all)."""
    listed = shown if shown is not None else list(experiment.knobs.values())
    knobs = [k for k in listed if k.key != experiment.seed_key]
    if len(knobs) <= SCHEMA_KNOB_LIMIT:
        overrides: dict[str, Any] = {
            "type": "object",
            "properties": {k.key: _value_schema(k) for k in knobs},
            "additionalProperties": False,
        }
    else:
        overrides = {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        }
    mapping = {
        "type": "object",
        "properties": {
            "ablation": {"type": "integer", "minimum": 1, "maximum": max(n, 1)},
            "mapped": {"type": "boolean"},
            "reason": {"type": "string", "maxLength": 300},
            "variants": {
                "type": "array",
                "maxItems": MAX_VARIANTS,
                "items": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string", "minLength": 1, "maxLength": 40},
                        "overrides": overrides,
                    },
                    "required": ["label", "overrides"],
                },
            },
        },
        "required": ["ablation", "mapped", "reason", "variants"],
    }
    return {
        "type": "object",
        "properties": {"mappings": {"type": "array", "items": mapping, "maxItems": n}},
        "required": ["mappings"],
    }


# --- validating the reply -------------------------------------------------------------------


def coerce(knob: Knob, value: Any) -> OverrideValue:
    """``value`` as the knob takes it, or ValueError saying why it cannot be.

    Numbers written as text ("0.5") and switches as words ("false") are read; a word for a
    number, an option not among the knob's choices, or a nested object are refused.
    """
    if isinstance(value, dict):
        raise ValueError("a nested object is not a value")
    if value is None:
        return None
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"{_shown(value)} is longer than {MAX_VALUE_CHARS} characters")
    default = knob.value
    if isinstance(value, list):
        if isinstance(default, list) or default is None:
            return format_value(value)
        raise ValueError(f"a list for a key whose value is {format_value(default)}")
    if knob.choices:
        text = format_value(value)
        if text not in knob.choices:
            options = ", ".join(knob.choices)
            raise ValueError(f"{_shown(text)} is not one of its options ({options})")
        return text
    if knob.flag or isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUTH:
            return _TRUTH[value.strip().lower()]
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{_shown(value)} is not true or false")
    if isinstance(default, (int, float)):
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"{_shown(value)} is not a number") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"{_shown(value)} is not a number")
        if isinstance(default, int) and float(number).is_integer():
            return int(number)
        return float(number) if isinstance(number, float) else number
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _shown(value: Any) -> str:
    """A model's value in a message: quoted, and cut (a reason is one short line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TRUTH = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def same_value(a: Any, b: Any) -> bool:
    """Equal as settings: ``1`` is ``1.0``, but ``True`` is not ``1`` and ``"1"`` not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, list) or isinstance(b, list):
        return format_value(a) == format_value(b)
    return type(a) is type(b) and a == b


def _normal_key(key: str) -> str:
    """A key as the model may dress it: ``--lr`` or Hydra's ``+key`` / ``++key``."""
    return key.strip().lstrip("+").removeprefix("--")


def _overrides_of(raw: Any) -> dict[str, Any]:
    """The overrides of a variant as an object; a list of ``{"key", "value"}`` pairs or of
    ``"key=value"`` words is read too (models write both)."""
    if isinstance(raw, dict):
        return {str(k): v for k, v in raw.items()}
    if isinstance(raw, list):
        pairs: dict[str, Any] = {}
        for item in raw:
            if isinstance(item, dict) and "key" in item:
                pairs[str(item["key"])] = item.get("value")
            elif isinstance(item, str) and "=" in item:
                key, _, text = item.partition("=")
                pairs[key] = text
            else:
                raise ValueError(f"override {_shown(item)} is not key=value")
        return pairs
    raise ValueError("its overrides are not an object of key: value")


def _index_of(value: Any, plan: Plan) -> int | None:
    """Which planned ablation an item means: its number (1-based) or its exact name."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and float(value).is_integer():
        index = int(value) - 1
        return index if 0 <= index < len(plan.ablations) else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _index_of(int(text), plan)
        for i, ablation in enumerate(plan.ablations):
            if ablation.name.strip().lower() == text.lower():
                return i
    return None


def parse_mapping_reply(
    text: str, plan: Plan, experiment: Experiment
) -> tuple[list[AblationMapping], list[Unmapped], list[str]]:
    """``(mappings, unmapped, notes)`` from a reply, in the plan's order.

    A reply that is not JSON, has no ``mappings`` list, or names none of the plan's
    ablations raises :class:`ReplyParseError` (the caller asks once more); anything wrong
    inside one mapping only moves that ablation to ``unmapped`` with the reason.
    """
    data = extract_json(text)
    if isinstance(data, list):
        data = {"mappings": data}
    if not isinstance(data, dict) or not isinstance(data.get("mappings"), list):
        raise ReplyParseError('the JSON has no "mappings" list')
    items: dict[int, dict[str, Any]] = {}
    notes: list[str] = []
    for position, item in enumerate(data["mappings"]):
        if not isinstance(item, dict):
            raise ReplyParseError("a mapping is not a JSON object")
        index = _index_of(item.get("ablation", position + 1), plan)
        if index is None:
            named = _shown(item.get("ablation"))
            notes.append(f"a mapping for ablation {named}, which is not in the plan: ignored")
        elif index in items:
            notes.append(f"a second mapping for ablation {index + 1}: ignored")
        else:
            items[index] = item
    if plan.ablations and not items:
        raise ReplyParseError(
            f"no mapping names a planned ablation by its number (1 to {len(plan.ablations)})"
        )
    mappings: list[AblationMapping] = []
    unmapped: list[Unmapped] = []
    for index, ablation in enumerate(plan.ablations):
        item = items.get(index)
        if item is None:
            unmapped.append(Unmapped(ablation=ablation.name, reason="the model gave no mapping"))
            continue
        result = _validate(ablation, item, experiment)
        if isinstance(result, AblationMapping):
            mappings.append(result)
        else:
            unmapped.append(result)
    return mappings, unmapped, notes


def _validate(
    ablation: Ablation, item: dict[str, Any], experiment: Experiment
) -> AblationMapping | Unmapped:
    """One ablation's mapping, checked against the knobs; any problem -> ``Unmapped``."""
    reason = " ".join(str(item.get("reason") or "").split())[:300]
    variants_raw = item.get("variants")
    if item.get("mapped") is False:
        return Unmapped(
            ablation=ablation.name, reason=reason or "the model found no setting that runs it"
        )
    if not variants_raw:
        why = "the model gave no variant to run" + (f" ({reason})" if reason else "")
        return Unmapped(ablation=ablation.name, reason=why)
    if not isinstance(variants_raw, list):
        return Unmapped(ablation=ablation.name, reason="its variants are not a list")
    variants: list[Variant] = []
    dropped: list[str] = []
    labels: set[str] = set()
    for raw in _split_value_lists(variants_raw, experiment)[:MAX_VARIANTS]:
        if not isinstance(raw, dict):
            return Unmapped(ablation=ablation.name, reason="a variant is not a JSON object")
        try:
            given = _overrides_of(raw.get("overrides"))
        except ValueError as exc:
            return Unmapped(ablation=ablation.name, reason=f"a variant: {exc}")
        overrides: dict[str, OverrideValue] = {}
        for raw_key, raw_value in given.items():
            key = _normal_key(raw_key)
            knob = experiment.knobs.get(key)
            if knob is None:
                return Unmapped(
                    ablation=ablation.name,
                    reason=f"the model used {_shown(raw_key)}, which is not a setting of "
                    f"{experiment.source()}",
                )
            if key == experiment.seed_key:
                dropped.append(f"its {key} override (the grid sets the seed)")
                continue
            try:
                overrides[key] = coerce(knob, raw_value)
            except ValueError as exc:
                return Unmapped(ablation=ablation.name, reason=f"{key}: {exc}")
        label = _variant_label(raw.get("label"), overrides)
        if all(same_value(v, experiment.knobs[k].value) for k, v in overrides.items()):
            dropped.append(f"variant {label!r} (it is the baseline's setting)")
            continue
        if any(v.overrides == overrides for v in variants):
            dropped.append(f"variant {label!r} (the same overrides as another)")
            continue
        variants.append(Variant(label=_unique_label(label, labels), overrides=overrides))
    if ablation.action is Action.REMOVE and len(variants) > 1:
        dropped.extend(f"variant {v.label!r} (a removal runs once)" for v in variants[1:])
        variants = variants[:1]
    if not variants:
        why = "; ".join(dropped) or "no variant"
        return Unmapped(ablation=ablation.name, reason=f"nothing left to run: dropped {why}")
    rationale = reason
    if dropped:
        if rationale and rationale[-1] not in ".!?":
            rationale += "."
        rationale = (rationale + " " if rationale else "") + "Dropped " + "; ".join(dropped) + "."
    return AblationMapping(
        ablation=ablation.name, action=ablation.action, variants=variants, rationale=rationale
    )


def _split_value_lists(variants: list[Any], experiment: Experiment) -> list[Any]:
    """A variant whose one setting holds a list of values for a knob that takes one value
    (``{"augment.noise": [0.5, 2]}``: a REPLACE written in one variant) as one variant per
    value; anything else as it is (validation judges it)."""
    out: list[Any] = []
    for raw in variants:
        overrides = raw.get("overrides") if isinstance(raw, dict) else None
        if isinstance(overrides, dict) and len(overrides) == 1:
            ((key, value),) = overrides.items()
            knob = experiment.knobs.get(_normal_key(str(key)))
            scalar = knob is not None and not isinstance(knob.value, (list, type(None)))
            if isinstance(value, list) and scalar:
                out.extend({"overrides": {key: item}} for item in value)
                continue
        out.append(raw)
    return out


_ACTION_WORDS = frozenset({"remove", "replace", "add", "ablate", "ablation", "removing"})


def _variant_label(given: Any, overrides: dict[str, OverrideValue]) -> str:
    """The model's label when it names the variant in a few words; else what the variant
    changes (``pca_components=0``). Small models restate the ablation ("REMOVE PCA
    projection") or write a sentence, which the results table already shows beside it."""
    label = " ".join(str(given or "").split())
    words = label.split()
    if words and len(words) <= 4 and words[0].lower() not in _ACTION_WORDS:
        return label
    text = " ".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in overrides.items())
    return text[:60] or "variant"


def _unique_label(label: str, seen: set[str]) -> str:
    candidate, n = label, 2
    while candidate.lower() in seen:
        candidate = f"{label} ({n})"
        n += 1
    seen.add(candidate.lower())
    return candidate


# --- the grid -------------------------------------------------------------------------------


def seed_list(experiment: Experiment, seeds: int) -> list[int]:
    """``seeds`` seeds starting from the config's own (so the baseline's run is among them)."""
    start = 0
    if experiment.seed_key is not None:
        value = experiment.knobs[experiment.seed_key].value
        if isinstance(value, int) and not isinstance(value, bool):
            start = value
    return list(range(start, start + seeds))


def reply_tokens(n: int) -> int:
    """A bounded reply: a mapping with a few variants is ~150 tokens."""
    return 300 + 250 * max(n, 1)


def make_grid(
    plan: Plan,
    experiment: Experiment,
    *,
    plan_path: str | Path,
    model: str = "local",
    client: Any = None,
    api_base: str | None = None,
    seeds: int = 3,
    timeout: float | None = None,
    deadline: float | None = None,
    title: str = "",
    **params: Any,
) -> GridResult:
    """Ask ``model`` to map every ablation of ``plan`` onto ``experiment``; validate; build
    the grid. A reply that stays broken after one repair is a :class:`GridError`."""
    from ablationkit.lm.client import default_client
    from ablationkit.lm.repair import RepairFailed, complete_and_parse
    from ablationkit.lm.types import Completion

    if seeds < 1:
        raise AblationKitError(f"--seeds must be at least 1, not {seeds}")
    notes = list(experiment.notes)
    mappings: list[AblationMapping] = []
    unmapped: list[Unmapped] = []
    usage = Usage()
    if plan.ablations:
        client = client or default_client()
        messages = grid_messages(plan, experiment, title)
        shown = shown_knobs(plan, experiment)
        schema = grid_schema(experiment, len(plan.ablations), shown)
        if len(shown) < len(experiment.knobs):
            notes.append(
                f"showed the model {len(shown)} of {len(experiment.knobs)} settings (those "
                "sharing the most words with the ablations); any of them is accepted"
            )
        call: dict[str, Any] = {"temperature": 0, "max_tokens": reply_tokens(len(plan.ablations))}
        call.update(params)

        def parse(
            reply: Completion,
        ) -> tuple[list[AblationMapping], list[Unmapped], list[str]]:
            return parse_mapping_reply(reply.text, plan, experiment)

        try:
            (mappings, unmapped, parse_notes), replies = complete_and_parse(
                client,
                messages,
                model,
                parse,
                instruction="Reply again with only the JSON object.",
                schema=schema,
                api_base=api_base,
                timeout=timeout,
                deadline=deadline,
                **call,
            )
        except RepairFailed as failure:
            raise GridError(
                f"{model} gave no usable mapping: {failure.message}", where=str(plan_path)
            ) from None
        notes.extend(parse_notes)
        usage = Usage.total(r.as_usage() for r in replies)
    if experiment.seed_key is None and seeds > 1:
        notes.append(
            f"{experiment.source()} has no seed setting: the {seeds} seeds repeat the same command"
        )
    grid = Grid(
        plan=str(Path(plan_path).resolve()),
        paper_id=plan.paper_id,
        project=str(experiment.project),
        config=experiment.config,
        style=experiment.style,
        seed_key=experiment.seed_key,
        seeds=seed_list(experiment, seeds),
        mappings=mappings,
        unmapped=unmapped,
        command=experiment.command,
        knobs={k.key: k.value for k in experiment.knobs.values()},
    )
    return GridResult(grid=grid, usage=usage, notes=notes)


def check_grid(grid: Grid) -> list[str]:
    """What an edited grid file got wrong against the knobs it was made with (empty if it
    records none): unknown keys, one line each, so a typo is caught before any run."""
    if not grid.knobs:
        return []
    problems: list[str] = []
    known = set(grid.knobs)
    for mapping in grid.mappings:
        for variant in mapping.variants:
            for key in variant.overrides:
                if _normal_key(key) not in known:
                    problems.append(
                        f"{mapping.ablation} / {variant.label}: {key!r} is not a setting "
                        f"of the project"
                    )
    problems.extend(
        f"baseline: {key!r} is not a setting of the project"
        for key in grid.baseline
        if _normal_key(key) not in known
    )
    return problems


def describe_mapping(grid: Grid) -> list[tuple[str, str, str, str]]:
    """Rows for the confirmation table: (ablation, action, variant, overrides)."""
    rows: list[tuple[str, str, str, str]] = []
    for mapping in grid.mappings:
        for variant in mapping.variants:
            words = ", ".join(f"{k}={format_value(v)}" for k, v in variant.overrides.items())
            rows.append((mapping.ablation, mapping.action.value, variant.label, words))
    return rows


def grid_json(grid: Grid) -> str:
    """The grid file's text: indented JSON, ending with a newline (the user edits it)."""
    return grid.model_dump_json(indent=2) + "\n"


def save_grid(grid: Grid, path: str | Path) -> Path:
    """Write the grid atomically; a failure names the file."""
    from ablationkit.fsutil import atomic_write_text

    target = Path(path)
    try:
        atomic_write_text(target, grid_json(grid))
    except OSError as exc:
        problem = exc.strerror or exc
        raise AblationKitError(f"cannot write the grid ({problem})", where=target) from None
    return target


__all__: Sequence[str] = [
    "GridError",
    "GridResult",
    "check_grid",
    "coerce",
    "describe_mapping",
    "grid_messages",
    "grid_schema",
    "make_grid",
    "parse_mapping_reply",
    "save_grid",
]
