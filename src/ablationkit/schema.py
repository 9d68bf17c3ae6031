"""The data model every stage shares: an ``Ablation`` and a ``Plan`` of them.

Field names follow AblationBench's JSONL (``name``, ``ablated_part``, ``action``,
``replacement``, ``metrics``) so its files load as they are and ours load in its tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

# The one definition of the planner's modes: author (plan a paper's ablations from its method)
# and reviewer (name the ablations a submission is missing). Everything else derives from it:
# the paper views, the CLI's choices, the web app's query check, ``PlanConfig``.
Mode = Literal["author", "reviewer"]
MODES: tuple[Mode, ...] = get_args(Mode)


def parse_mode(value: object) -> Mode:
    """``value`` as a ``Mode``, case and surrounding space ignored (``" Reviewer"``);
    ``ValueError`` naming the modes otherwise."""
    if isinstance(value, str) and value.strip().lower() in MODES:
        return cast(Mode, value.strip().lower())
    raise ValueError(f"unknown mode {value!r}: use {' or '.join(MODES)}")


_LINE_BREAKS = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x85|\x0b|\x0c|\x1c|\x1d|\x1e")


def one_line(text: str) -> str:
    """Fold line breaks into spaces.

    Names, parts, metrics and replacement values are one-line fields in the trajectory
    markdown; a model that puts a newline inside one must not be able to break the layout.
    Other whitespace is kept as is so that parsing and rendering stay byte-exact.
    """
    return _LINE_BREAKS.sub(" ", text)


class Action(StrEnum):
    REMOVE = "REMOVE"
    REPLACE = "REPLACE"
    ADD = "ADD"


def _one_line_value(value: Any) -> Any:
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, list):
        return [_one_line_value(v) for v in value]
    if isinstance(value, dict):
        return {one_line(str(k)): _one_line_value(v) for k, v in value.items()}
    return value


class Ablation(BaseModel):
    """One planned (or ground-truth) ablation.

    ``replacement`` is a list of alternatives or values, a mapping (e.g. hyper-parameter to
    values), or ``None`` for a plain removal. Unknown keys from other tools (AblationBench's
    ground truth carries ``evidence``) are kept, so converting a file loses nothing.
    """

    model_config = ConfigDict(extra="allow", use_enum_values=False)

    name: str
    ablated_part: str
    action: Action
    replacement: list[Any] | dict[str, Any] | None = None
    metrics: list[str] = Field(default_factory=list)

    @field_validator("name", "ablated_part", mode="before")
    @classmethod
    def _text_field(cls, value: Any) -> Any:
        return one_line(value) if isinstance(value, str) else value

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().upper()
        return value

    @field_validator("replacement", mode="before")
    @classmethod
    def _replacement(cls, value: Any) -> Any:
        if isinstance(value, (list, dict)):
            return _one_line_value(value)
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [one_line(m) if isinstance(m, str) else m for m in value]
        return value


class Usage(BaseModel):
    """Tokens and money spent on one plan; ``cost_usd`` is None when the price is unknown."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    @classmethod
    def total(cls, usages: Iterable[Usage | None]) -> Usage:
        """Sum of several calls; the cost is unknown (None) if any part of it is."""
        parts = list(usages)
        costs = [u.cost_usd if u is not None else None for u in parts]
        return cls(
            prompt_tokens=sum(u.prompt_tokens for u in parts if u is not None),
            completion_tokens=sum(u.completion_tokens for u in parts if u is not None),
            cost_usd=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        )


class Timings(BaseModel):
    """Wall-clock seconds per stage, so slow papers can be explained, not only noticed."""

    load_s: float | None = None
    prompt_s: float | None = None
    generation_s: float | None = None
    total_s: float | None = None
    # prompt tokens the runtime computed in prompt_s (llama.cpp's prompt_n): the rest of
    # usage.prompt_tokens came from its cache (a repair, a follow-up, a batch's system prompt)
    prompt_computed: int | None = None


class TrajectoryLayout(BaseModel):
    """Byte-level details of a parsed trajectory file that the plan itself does not carry.

    Kept on the parsed ``Plan`` (never in its JSON) so that rendering a parsed file gives
    back the same bytes, even for files with Windows line endings or a final newline.
    """

    newline: str = "\n"
    final_newline: bool = False
    bom: bool = False
    repaired_encoding: str | None = None
    # Blank lines before each ablation and before the closing </div>; a few corpus files
    # omit the last one. Used only while the number of ablations still matches.
    plan_gaps: list[int] | None = None


class Plan(BaseModel):
    """A reasoning trace plus a ranked list of ablations for one paper."""

    model_config = ConfigDict(extra="forbid")

    planner: str = "lm-planner"
    model: str
    paper_id: str
    mode: Mode
    reasoning: str = ""
    ablations: list[Ablation] = Field(default_factory=list)
    usage: Usage | None = None
    timings: Timings | None = None

    _layout: TrajectoryLayout = PrivateAttr(default_factory=TrajectoryLayout)

    @field_validator("planner", "paper_id")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        # The trajectory header is "<planner>/<model>/<paper_id>": the model may contain
        # slashes (openai/gpt-4o), so the two ends may not.
        if "/" in value or _LINE_BREAKS.search(value):
            raise ValueError("must not contain '/' or line breaks")
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if _LINE_BREAKS.search(value) or not value:
            raise ValueError("must be a non-empty single line")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def layout(self) -> TrajectoryLayout:
        return self._layout

    def __eq__(self, other: object) -> bool:
        # Two plans are equal when their content is; how a file was laid out is not content.
        if not isinstance(other, Plan):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    def to_json(self, *, indent: int | None = 2) -> str:
        """Plan JSON with exactly the documented top-level keys (usage/timings may be null)."""
        return self.model_dump_json(indent=indent)


class Match(BaseModel):
    """Planned ablation ``planned`` (0-based rank) matches ground-truth item ``target``."""

    planned: int
    target: int


class Judgement(BaseModel):
    """A judge's verdict on one plan: which planned ablations match which ground truth.

    ``error`` is set when the judge could not give a verdict (an unparseable reply, a failed
    call): scores count such a paper as 0 and list it as failed, never leave it out.
    """

    judge: str
    paper_id: str
    mode: Mode
    k: int
    planned: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    matches: list[Match] = Field(default_factory=list)
    reasoning: str = ""
    votes: list[list[Match]] | None = None
    error: str | None = None
    usage: Usage | None = None
    # Reviewer mode judged against raw reviews (no named targets): how many ablations the
    # reviewers asked for, as AblationBench's ``num_ablation_suggestions``.
    target_count: int | None = None
    # The AblationBench protocol scores the judge's own lines (names, not indices): they are
    # kept here, with the seeded draw (sides, shuffles) that framed the question.
    lines: list[dict[str, Any]] | None = None
    draw: dict[str, Any] | None = None

    def matched_planned(self) -> set[int]:
        return {m.planned for m in self.matches if m.planned < self.k}

    def matched_targets(self) -> set[int]:
        return {m.target for m in self.matches if m.planned < self.k}
