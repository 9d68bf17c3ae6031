"""The trajectory markdown: AblationBench's styled page for one plan, rendered and parsed.

Layout (see ``../shared/trajectories``)::

    <style>…</style>

    # <planner>/<model>/<paper_id>

    <div …blue…><h2 …>🧠 Reasoning Trace</h2>

    <reasoning, verbatim>
    </div>

    <div …purple (author) | green (reviewer)…><h2 …>📋 Ablation Plan</h2>

    ### <name>
    - **Ablated Part**: <text>
    - **Action**: REMOVE | REPLACE | ADD
    - **Replacement**:␠
      - <value>
    - **Metrics**: <m1>, <m2>

    </div>

(``␠`` marks the trailing space the corpus has there.) The parser is tolerant (field order,
missing fields, mojibake, CRLF) while the renderer is canonical, and
``render_trajectory(parse_trajectory(text)) == text`` for every file in the format. Cases the
corpus never shows get unambiguous spellings of their own: a mapping replacement is written
``  - **key**: value`` (``*`` and ``\\`` in keys backslash-escaped), an empty mapping ``{}``,
metrics that contain ", " as an indented list, and a list item that would read as a mapping
entry gets a leading backslash.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ablationkit.errors import TrajectoryFormatError, describe_validation
from ablationkit.schema import Ablation, Mode, Plan, TrajectoryLayout
from ablationkit.text_repair import repair_mojibake

STYLE_BLOCK = (
    "<style>\n"
    ".trajectory-box strong {\n"
    "  color: #1a1a1a !important;\n"
    "}\n"
    ".trajectory-box h3 {\n"
    "  color: #1a1a1a !important;\n"
    "}\n"
    "</style>\n"
)


@dataclass(frozen=True)
class BoxStyle:
    light: str
    mid: str
    border: str
    title: str


REASONING_STYLE = BoxStyle("#e3f2fd", "#bbdefb", "#2196f3", "#1976d2")
PLAN_STYLES: dict[Mode, BoxStyle] = {
    "author": BoxStyle("#f3e5f5", "#e1bee7", "#9c27b0", "#7b1fa2"),
    "reviewer": BoxStyle("#e8f5e8", "#c8e6c9", "#4caf50", "#2e7d32"),
}
REASONING_HEADING = "🧠 Reasoning Trace"
PLAN_HEADING = "📋 Ablation Plan"


def box_open(style: BoxStyle, heading: str) -> str:
    """The two opening lines of a box: the styled ``<div>`` and its ``<h2>``."""
    return (
        f'<div style="background: linear-gradient(135deg, {style.light} 0%, {style.mid} 100%);'
        f" border-left: 5px solid {style.border}; padding: 20px; margin: 20px 0;"
        ' border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,0.1); color: #1a1a1a;"'
        ' class="trajectory-box">\n'
        f'<h2 style="color: {style.title}; margin-top: 0; margin-bottom: 15px;'
        f' font-size: 1.3em;">{heading}</h2>\n'
    )


# --------------------------------------------------------------------------- rendering

_LIST_ITEM_NEEDS_ESCAPE = re.compile(r"^\\*\*\*")
_MAP_ITEM = re.compile(r"^\*\*((?:[^*\\]|\\.)*)\*\*: (.*)$")
_ESCAPED_LIST_ITEM = re.compile(r"^\\+\*\*")


def _scalar_text(value: Any) -> str:
    # Markdown has no types: strings go in as they are, anything else as JSON text.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _escape_key(key: str) -> str:
    return key.replace("\\", "\\\\").replace("*", "\\*")


def _unescape_key(key: str) -> str:
    return re.sub(r"\\(.)", r"\1", key)


def _replacement_lines(replacement: list[Any] | dict[str, Any]) -> list[str]:
    if isinstance(replacement, dict):
        if not replacement:
            return ["- **Replacement**: {}"]
        return ["- **Replacement**: "] + [
            f"  - **{_escape_key(k)}**: {_scalar_text(v)}" for k, v in replacement.items()
        ]
    items = []
    for value in replacement:
        text = _scalar_text(value)
        if _LIST_ITEM_NEEDS_ESCAPE.match(text):
            text = "\\" + text
        items.append(f"  - {text}")
    return ["- **Replacement**: ", *items]


def _metrics_lines(metrics: list[str]) -> list[str]:
    if metrics == [""] or any(", " in m for m in metrics):
        return ["- **Metrics**: ", *(f"  - {m}" for m in metrics)]
    return [f"- **Metrics**: {', '.join(metrics)}"]


def _ablation_lines(ablation: Ablation) -> list[str]:
    lines = [
        f"### {ablation.name}",
        f"- **Ablated Part**: {ablation.ablated_part}",
        f"- **Action**: {ablation.action.value}",
    ]
    if ablation.replacement is not None:
        lines += _replacement_lines(ablation.replacement)
    lines += _metrics_lines(ablation.metrics)
    return lines


def render_trajectory(plan: Plan) -> str:
    """Render a plan as trajectory markdown (the format of AblationBench's site)."""
    parts = [
        STYLE_BLOCK,
        "\n",
        f"# {plan.planner}/{plan.model}/{plan.paper_id}\n",
        "\n",
        box_open(REASONING_STYLE, REASONING_HEADING),
        "\n",
        plan.reasoning,
        "\n</div>\n",
        "\n",
        box_open(PLAN_STYLES[plan.mode], PLAN_HEADING),
    ]
    layout = plan.layout
    gaps = layout.plan_gaps
    if gaps is None or len(gaps) != len(plan.ablations) + 1:
        gaps = [1] * (len(plan.ablations) + 1)
    for gap, ablation in zip(gaps, plan.ablations, strict=False):
        parts.append("\n" * gap + "\n".join(_ablation_lines(ablation)) + "\n")
    parts.append("\n" * gaps[-1] + "</div>")
    text = "".join(parts)
    if layout.final_newline:
        text += "\n"
    if layout.newline != "\n":
        text = text.replace("\n", layout.newline)
    if layout.bom:
        text = "\ufeff" + text
    return text


# --------------------------------------------------------------------------- parsing

_HEADER = re.compile(r"^# (.*)$", re.MULTILINE)
_H2 = re.compile(r"^<h2\b[^>\n]*>(?P<title>[^<\n]*)</h2>[ \t]*$", re.MULTILINE)
_FIELD = re.compile(r"^- \*\*(?P<label>[^*\n]+)\*\*:(?P<rest>.*)$")
_ITEM = re.compile(r"^ {2,}- ?(?P<text>.*)$")
_FIELD_KEYS = {
    "ablated part": "ablated_part",
    "action": "action",
    "replacement": "replacement",
    "replacements": "replacement",
    "metrics": "metrics",
    "metric": "metrics",
}
_NULL_WORDS = {"none", "null", "n/a", "-", "—"}
_REASONING_TAIL = "\n</div>\n\n"


def _mode_of_box(div_line: str) -> Mode | None:
    for mode, style in PLAN_STYLES.items():
        if style.border in div_line or style.light in div_line:
            return mode
    return None


@dataclass
class _RawField:
    inline: str
    line: int
    items: list[str] = field(default_factory=list)


@dataclass
class _RawAblation:
    name: str
    line: int
    fields: dict[str, _RawField] = field(default_factory=dict)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _normalise(text: str) -> tuple[str, TrajectoryLayout]:
    layout = TrajectoryLayout()
    if text.startswith("\ufeff"):
        layout.bom = True
        text = text[1:]
    if "\r\n" in text and text.count("\r\n") == text.count("\n"):
        layout.newline = "\r\n"
        text = text.replace("\r\n", "\n")
    if ("Reasoning Trace" in text and REASONING_HEADING not in text) or (
        "Ablation Plan" in text and PLAN_HEADING not in text
    ):
        text, layout.repaired_encoding = repair_mojibake(text)
    return text, layout


def _parse_header(text: str, before: int, where: str | None) -> tuple[str, str, str]:
    match = _HEADER.search(text, 0, before)
    if match is None:
        raise TrajectoryFormatError(
            'no "# <planner>/<model>/<paper_id>" header before the boxes', where=where
        )
    header = match.group(1)
    if header.count("/") < 2:
        raise TrajectoryFormatError(
            f'line {_line_of(text, match.start())}: header "# {header}" is not '
            '"# <planner>/<model>/<paper_id>"',
            where=where,
        )
    planner, rest = header.split("/", 1)
    model, paper_id = rest.rsplit("/", 1)
    return planner, model, paper_id


def _parse_reasoning(text: str, start: int, end: int) -> str:
    """Reasoning is everything between the box heading's blank line and ``</div>``."""
    region = text[start:end]
    if region.startswith("\n"):
        region = region[1:]
    if region.endswith(_REASONING_TAIL):
        return region[: -len(_REASONING_TAIL)]
    # Not quite canonical (hand-edited?): drop the closing tag and surrounding blank lines.
    return re.sub(r"\s*</div>\s*$", "", region).strip("\n")


def _parse_plan_body(
    text: str, start: int, end: int, where: str | None
) -> tuple[list[_RawAblation], list[int]]:
    """Raw ablations, and the blank lines before each of them and before ``</div>``."""
    ablations: list[_RawAblation] = []
    gaps: list[int] = []
    blanks = 0
    current_field: _RawField | None = None
    first_line = _line_of(text, start)
    lines = text[start:end].split("\n")
    # The last piece is what precedes "</div>" on its own line; it is not a blank line.
    tail = lines.pop()
    if tail.strip():
        lines.append(tail)
    for index, line in enumerate(lines):
        lineno = first_line + index
        if not line.strip():
            blanks += 1
            continue
        gap, blanks = blanks, 0
        if line.startswith("###"):
            gaps.append(gap)
            name = line[3:]
            ablations.append(
                _RawAblation(name=name[1:] if name.startswith(" ") else name, line=lineno)
            )
            current_field = None
            continue
        if not ablations:
            raise TrajectoryFormatError(
                f'line {lineno}: expected "### <ablation name>", found {line[:60]!r}',
                where=where,
            )
        ablation = ablations[-1]
        if match := _FIELD.match(line):
            label = match.group("label").strip().lower()
            key = _FIELD_KEYS.get(label)
            if key is None:
                raise TrajectoryFormatError(
                    f'line {lineno}: unknown field "{match.group("label")}" in ablation '
                    f'"{ablation.name}"',
                    where=where,
                )
            if key in ablation.fields:
                raise TrajectoryFormatError(
                    f'line {lineno}: second "{match.group("label")}" in ablation "{ablation.name}"',
                    where=where,
                )
            rest = match.group("rest")
            current_field = _RawField(
                inline=rest[1:] if rest.startswith(" ") else rest, line=lineno
            )
            ablation.fields[key] = current_field
            continue
        if (match := _ITEM.match(line)) and current_field is not None:
            current_field.items.append(match.group("text"))
            continue
        raise TrajectoryFormatError(
            f'line {lineno}: unexpected line in ablation "{ablation.name}": {line[:60]!r}',
            where=where,
        )
    gaps.append(blanks)
    return ablations, gaps


def _replacement_value(raw: _RawField | None) -> list[Any] | dict[str, Any] | None:
    if raw is None:
        return None
    inline = raw.inline.strip()
    if not raw.items:
        if not inline:
            return []
        if inline == "{}":
            return {}
        if inline.lower() in _NULL_WORDS:
            return None
        return [raw.inline]
    matches = [_MAP_ITEM.match(item) for item in raw.items]
    if all(matches):
        return {_unescape_key(m.group(1)): m.group(2) for m in matches if m}
    values = [item[1:] if _ESCAPED_LIST_ITEM.match(item) else item for item in raw.items]
    return ([raw.inline] if inline else []) + values


def _metrics_value(raw: _RawField | None) -> list[str]:
    if raw is None:
        return []
    inline = raw.inline.split(", ") if raw.inline else []
    return inline + raw.items


def _build_ablation(raw: _RawAblation, where: str | None) -> Ablation:
    for required, label in (("ablated_part", "Ablated Part"), ("action", "Action")):
        if required not in raw.fields:
            raise TrajectoryFormatError(
                f'line {raw.line}: ablation "{raw.name}" has no "{label}"', where=where
            )
    try:
        return Ablation.model_validate(
            {
                "name": raw.name,
                "ablated_part": raw.fields["ablated_part"].inline,
                "action": raw.fields["action"].inline,
                "replacement": _replacement_value(raw.fields.get("replacement")),
                "metrics": _metrics_value(raw.fields.get("metrics")),
            }
        )
    except ValidationError as exc:
        raise TrajectoryFormatError(
            describe_validation(exc, f'line {raw.line}: ablation "{raw.name}": '), where=where
        ) from None


def looks_like_trajectory(text: str) -> bool:
    """Cheap content sniffing for format detection (no full parse)."""
    head = text[:20000]
    return bool(_HEADER.search(head)) and ("Ablation Plan" in text or "Reasoning Trace" in head)


def parse_trajectory(text: str, *, where: str | None = None, mode: Mode | None = None) -> Plan:
    """Parse trajectory markdown into a ``Plan``.

    ``where`` names the source in error messages. ``mode`` is needed only when the plan box
    has neither the author (purple) nor the reviewer (green) colours. Mojibake (UTF-8 read as
    Mac Roman or Windows-1252) is repaired; rendering the result gives clean UTF-8.
    """
    text, layout = _normalise(text)
    headings = list(_H2.finditer(text))
    plan_headings = [h for h in headings if h.group("title").strip().endswith("Ablation Plan")]
    if not plan_headings:
        raise TrajectoryFormatError('no "Ablation Plan" box', where=where)
    plan_h2 = plan_headings[-1]
    div_start = text.rfind("\n", 0, plan_h2.start() - 1) + 1
    div_line = text[div_start : plan_h2.start()]
    if not div_line.startswith("<div"):
        raise TrajectoryFormatError(
            f'line {_line_of(text, plan_h2.start())}: the "Ablation Plan" heading is not '
            "inside a <div> box",
            where=where,
        )
    box_mode = _mode_of_box(div_line) or mode
    if box_mode is None:
        raise TrajectoryFormatError(
            f"line {_line_of(text, div_start)}: the plan box colour is neither author (purple) "
            "nor reviewer (green); give the mode explicitly",
            where=where,
        )
    reasoning_h2 = next(
        (
            h
            for h in headings
            if h.start() < div_start and h.group("title").strip().endswith("Reasoning Trace")
        ),
        None,
    )
    planner, model, paper_id = _parse_header(
        text, reasoning_h2.start() if reasoning_h2 else div_start, where
    )
    reasoning = _parse_reasoning(text, reasoning_h2.end() + 1, div_start) if reasoning_h2 else ""
    close = text.rfind("</div>")
    if close < plan_h2.end():
        raise TrajectoryFormatError('the "Ablation Plan" box is not closed by </div>', where=where)
    trailing = text[close + len("</div>") :]
    if trailing.strip():
        raise TrajectoryFormatError(
            f"line {_line_of(text, close)}: unexpected text after the plan box: "
            f"{trailing.strip()[:60]!r}",
            where=where,
        )
    layout.final_newline = trailing.startswith("\n")
    raw_ablations, layout.plan_gaps = _parse_plan_body(text, plan_h2.end() + 1, close, where)
    try:
        plan = Plan(
            planner=planner,
            model=model,
            paper_id=paper_id,
            mode=box_mode,
            reasoning=reasoning,
            ablations=[_build_ablation(raw, where) for raw in raw_ablations],
        )
    except ValidationError as exc:
        raise TrajectoryFormatError(describe_validation(exc, "header: "), where=where) from None
    plan._layout = layout
    return plan
