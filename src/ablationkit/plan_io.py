"""Reading plans from any of the formats people hand us, and writing them back out.

Inputs are recognised by their content, not their extension (the seeds are ``.txt``):

* trajectory markdown (ours and AblationBench's site),
* plan JSON (``Plan.to_json``),
* a JSON list of ablation objects,
* AblationBench-style JSONL, one ablation object per line (ground truth, planner output).

A list or JSONL file says nothing about the paper, mode or model, so those come from the
caller (the CLI's flags), with the file name as the paper id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ablationkit.errors import FormatError, describe_validation
from ablationkit.fsutil import load_json
from ablationkit.schema import Ablation, Mode, Plan
from ablationkit.trajectory import looks_like_trajectory, parse_trajectory, render_trajectory

InputFormat = Literal["trajectory", "plan-json", "ablation-list", "jsonl"]
OutputFormat = Literal["json", "md"]
OUTPUT_SUFFIX: dict[OutputFormat, str] = {"json": ".json", "md": ".md"}
MAX_INPUT_BYTES = 64 * 1024 * 1024


def read_text(path: Path) -> str:
    """Read a UTF-8 text file with one-line errors for the usual ways this goes wrong."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file", where=path)
    if path.is_dir():
        raise FormatError("is a directory, not a file", where=path)
    size = path.stat().st_size
    if size == 0:
        raise FormatError("empty file", where=path)
    if size > MAX_INPUT_BYTES:
        raise FormatError(
            f"file is {size} bytes, over the {MAX_INPUT_BYTES} byte limit", where=path
        )
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise FormatError("binary file (NUL bytes), not text", where=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (bad byte at offset {exc.start})", where=path) from None


def _first_line_is_object(text: str) -> bool:
    first = text.strip().split("\n", 1)[0]
    try:
        return isinstance(load_json(first), dict) and "\n" in text.strip()
    except json.JSONDecodeError:
        return False


def detect_format(text: str) -> InputFormat:
    """Name the format of ``text`` from its content; raise ``FormatError`` if none fits."""
    stripped = text.lstrip("\ufeff \t\r\n")
    # "[" also opens TOML/INI files; only treat it as JSON if an element or "]" follows.
    json_like = stripped.startswith("{") or (
        stripped.startswith("[") and stripped[1:].lstrip()[:1] in ("{", '"', "]", "[")
    )
    if json_like:
        try:
            value = load_json(stripped)
        except json.JSONDecodeError:
            if _first_line_is_object(stripped):
                return "jsonl"
            raise
        if isinstance(value, list):
            return "ablation-list"
        if isinstance(value, dict) and "ablations" in value:
            return "plan-json"
        return "jsonl"
    if looks_like_trajectory(stripped):
        return "trajectory"
    if "<div" in stripped and "trajectory-box" in stripped:
        return "trajectory"
    raise FormatError(
        "not a trajectory (.md), plan JSON, JSON list of ablations or JSONL of ablations"
    )


def _ablations(objects: Iterable[tuple[str, Any]]) -> list[Ablation]:
    ablations = []
    for label, obj in objects:
        if not isinstance(obj, dict):
            raise FormatError(f"{label}: expected a JSON object, found {type(obj).__name__}")
        try:
            ablations.append(Ablation.model_validate(obj))
        except ValidationError as exc:
            raise FormatError(describe_validation(exc, f"{label}: ")) from None
    return ablations


def _jsonl_objects(text: str) -> Iterable[tuple[str, Any]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {lineno}", load_json(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"line {lineno}: invalid JSON ({exc.msg})") from None


def parse_plan_text(
    text: str,
    *,
    paper_id: str,
    mode: Mode | None = None,
    model: str | None = None,
    planner: str | None = None,
) -> Plan:
    """Parse ``text`` in any supported format into a ``Plan``.

    For trajectory and plan JSON the file is the authority and the keyword arguments only fill
    gaps; for lists and JSONL they supply what the file cannot say.
    """
    try:
        fmt = detect_format(text)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})", where=None
        ) from None
    if fmt == "trajectory":
        return parse_trajectory(text, mode=mode)
    if fmt == "plan-json":
        data = load_json(text.lstrip("\ufeff"))
        data.setdefault("paper_id", paper_id)
        for key, value in (("mode", mode), ("model", model), ("planner", planner)):
            if value is not None:
                data.setdefault(key, value)
        try:
            return Plan.model_validate(data)
        except ValidationError as exc:
            raise FormatError(describe_validation(exc)) from None
    if fmt == "ablation-list":
        items = load_json(text.lstrip("\ufeff"))
        ablations = _ablations((f"item {i}", obj) for i, obj in enumerate(items))
    else:
        ablations = _ablations(_jsonl_objects(text.lstrip("\ufeff")))
    if mode is None:
        raise FormatError("a list of ablations does not say its mode: give --mode author|reviewer")
    try:
        return Plan(
            planner=planner or "imported",
            model=model or "unknown",
            paper_id=paper_id,
            mode=mode,
            ablations=ablations,
        )
    except ValidationError as exc:
        raise FormatError(describe_validation(exc)) from None


def paper_id_from_path(path: Path) -> str:
    return Path(path).stem.replace("/", "_") or "paper"


def load_plan(
    path: str | Path,
    *,
    mode: Mode | None = None,
    model: str | None = None,
    planner: str | None = None,
    paper_id: str | None = None,
) -> Plan:
    """Load a plan from a file in any supported format (see module docstring)."""
    path = Path(path)
    text = read_text(path)
    try:
        return parse_plan_text(
            text,
            paper_id=paper_id or paper_id_from_path(path),
            mode=mode,
            model=model,
            planner=planner,
        )
    except FormatError as exc:
        if exc.where is None:
            exc.where = str(path)
            exc.args = (exc.one_line(),)
        raise


def dump_plan(plan: Plan, fmt: OutputFormat) -> str:
    """The plan as text in ``fmt``: trajectory markdown, or JSON ending with a newline."""
    if fmt == "md":
        return render_trajectory(plan)
    if fmt == "json":
        return plan.to_json() + "\n"
    raise ValueError(f"unknown output format {fmt!r}")


def plan_file_stem(plan: Plan) -> str:
    """``<paper_id>.<mode>``: the name of a plan's files, so that the author and the
    reviewer plan of one paper sit side by side instead of overwriting each other."""
    from ablationkit.fsutil import safe_name

    return f"{safe_name(plan.paper_id)}.{plan.mode}"


def save_plan(
    plan: Plan, out_dir: str | Path, formats: Iterable[OutputFormat] = ("json", "md")
) -> list[Path]:
    """Write ``plan`` into ``out_dir`` as ``<paper_id>.<mode>.json`` (plan JSON) and
    ``<paper_id>.<mode>.md`` (trajectory), atomically; return the paths written.

    The paper id is made file-name safe (``fsutil.safe_name``); the mode is in the name so
    that planning one paper in both modes into one folder keeps both plans.
    """
    from ablationkit.errors import AblationKitError
    from ablationkit.fsutil import atomic_write_text

    stem = plan_file_stem(plan)
    written: list[Path] = []
    for fmt in formats:
        target = Path(out_dir) / f"{stem}{OUTPUT_SUFFIX[fmt]}"
        try:
            atomic_write_text(target, dump_plan(plan, fmt))
        except OSError as exc:
            raise AblationKitError(
                f"cannot write the plan ({exc.strerror or exc})", where=target
            ) from None
        written.append(target)
    return written


class ConversionResult:
    """What happened to one input of ``convert_files``: an output path, text, or an error
    (with the exit code its error has: 2 for an input we cannot read, 1 otherwise)."""

    __slots__ = ("error", "exit_code", "output", "source", "text")

    def __init__(
        self,
        source: Path,
        *,
        output: Path | None = None,
        text: str | None = None,
        error: str | None = None,
        exit_code: int = 1,
    ) -> None:
        self.source = source
        self.output = output
        self.text = text
        self.error = error
        self.exit_code = exit_code if error is not None else 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        state = f"error={self.error!r}" if self.error else f"output={self.output or '<text>'}"
        return f"ConversionResult({self.source}, {state})"


def convert_files(
    inputs: Iterable[str | Path],
    to: OutputFormat,
    out_dir: str | Path | None = None,
    *,
    mode: Mode | None = None,
    model: str | None = None,
    planner: str | None = None,
    paper_id: str | None = None,
) -> list[ConversionResult]:
    """Convert each input; one bad input never stops the others.

    With ``out_dir`` each input becomes ``out_dir/<stem>.<json|md>`` (written atomically);
    without it the converted text is returned on the result. Two inputs that would write the
    same output file are refused rather than silently overwriting each other.
    """
    from ablationkit.fsutil import atomic_write_text

    paths = [Path(p) for p in inputs]
    if paper_id is not None and len(paths) > 1:
        raise ValueError("paper_id applies to a single input only")
    results: list[ConversionResult] = []
    claimed: dict[Path, Path] = {}
    for path in paths:
        try:
            plan = load_plan(path, mode=mode, model=model, planner=planner, paper_id=paper_id)
            text = dump_plan(plan, to)
        except FormatError as exc:
            results.append(ConversionResult(path, error=exc.one_line(), exit_code=exc.exit_code))
            continue
        if out_dir is None:
            results.append(ConversionResult(path, text=text))
            continue
        target = Path(out_dir) / f"{path.stem}{OUTPUT_SUFFIX[to]}"
        if target in claimed:
            results.append(
                ConversionResult(
                    path,
                    error=f"{path}: would overwrite {target}, already written from "
                    f"{claimed[target]}",
                )
            )
            continue
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            results.append(ConversionResult(path, error=f"{target}: cannot write ({exc.strerror})"))
            continue
        claimed[target] = path
        results.append(ConversionResult(path, output=target))
    return results
