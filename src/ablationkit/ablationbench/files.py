"""AblationBench's planner and judge output folders, read and written as its harness does.

A planner folder holds ``<id>.jsonl`` (one ablation per line, no final newline; an empty file when
planning failed) and ``plans.json`` (``{id: {"predictions": <the JSONL text>, "cost": $}}``). A
judge folder holds ``<id>.jsonl`` (author: ``{"name_in_paper", "name_in_plan": str|list|null}``;
reviewer: ``{"name_in_plan", "appears_in_review"}``) and usually ``evaluations.json`` (records with
``id``, the labels, the scores and ``cost``). Files from elsewhere are untrusted: only regular
files inside the folder are read, and a bad line is one error naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ablationkit.ablationbench.scoring import AuthorLine, ReviewerLine
from ablationkit.errors import FormatError
from ablationkit.fsutil import atomic_write_text
from ablationkit.sandbox import is_inside

MAX_FILE_BYTES = 50 * 1024 * 1024
JudgeLine = AuthorLine | ReviewerLine


@dataclass
class PlannerOutput:
    """One planner folder: each instance's ablation lines (raw dicts, in file order) and costs."""

    plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)


@dataclass
class JudgeOutput:
    """One judge folder: each instance's judge lines, and costs where ``evaluations.json`` has
    them."""

    lines: dict[str, list[JudgeLine]] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)


def _read_text(path: Path, root: Path) -> str:
    if not is_inside(root, path) or not path.is_file():
        raise FormatError("not a regular file inside the folder; refused", where=path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FormatError(f"{size} bytes, over the {MAX_FILE_BYTES} byte limit", where=path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 (byte offset {exc.start})", where=path) from None


def read_jsonl(path: Path, root: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; blank lines skipped, a final newline optional."""
    out = []
    for number, line in enumerate(_read_text(path, root).splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise FormatError(f"line {number}: not JSON ({message})", where=path) from None
        if not isinstance(value, dict):
            raise FormatError(f"line {number}: not a JSON object", where=path)
        out.append(value)
    return out


def _read_json(path: Path, root: Path) -> Any:
    try:
        return json.loads(_read_text(path, root))
    except (json.JSONDecodeError, RecursionError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise FormatError(f"not JSON ({message})", where=path) from None


def _jsonl_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FormatError("not a folder", where=folder)
    return {
        path.name[: -len(".jsonl")]: path
        for path in sorted(folder.iterdir())
        if path.name.endswith(".jsonl") and not path.name.startswith(".")
    }


def read_planner_output(folder: Path, ids: Iterable[str] | None = None) -> PlannerOutput:
    """A planner folder; ``ids`` limits it to those instances (a missing file is an error)."""
    folder = Path(folder)
    files = _jsonl_files(folder)
    wanted = list(files) if ids is None else list(ids)
    out = PlannerOutput()
    for instance_id in wanted:
        path = files.get(instance_id)
        if path is None:
            raise FormatError(f"no plan file {instance_id}.jsonl", where=folder)
        out.plans[instance_id] = read_jsonl(path, folder)
    summary = folder / "plans.json"
    if summary.exists():
        data = _read_json(summary, folder)
        if isinstance(data, dict):
            for instance_id, row in data.items():
                if isinstance(row, dict) and isinstance(row.get("cost"), int | float):
                    out.costs[str(instance_id)] = float(row["cost"])
    return out


def _judge_line(row: dict[str, Any], mode: str, where: str) -> JudgeLine:
    if mode == "author":
        paper, plan = row.get("name_in_paper"), row.get("name_in_plan")
        plan_ok = (
            plan is None
            or isinstance(plan, str)
            or (isinstance(plan, list) and all(isinstance(p, str) for p in plan))
        )
        if not isinstance(paper, str) or not plan_ok:
            raise FormatError(
                "an author-mode judge line needs name_in_paper (string) and name_in_plan "
                "(string, list of strings or null)",
                where=where,
            )
        return AuthorLine(name_in_paper=paper, name_in_plan=plan)
    name, appears = row.get("name_in_plan"), row.get("appears_in_review", False)
    if not isinstance(name, str) or not isinstance(appears, bool):
        raise FormatError(
            "a reviewer-mode judge line needs name_in_plan (string) and appears_in_review "
            "(true/false)",
            where=where,
        )
    return ReviewerLine(name_in_plan=name, appears_in_review=appears)


def read_judge_output(
    folder: Path, mode: Literal["author", "reviewer"], ids: Iterable[str] | None = None
) -> JudgeOutput:
    """A judge folder; instances without a file are left out (the reference skips them too)."""
    folder = Path(folder)
    files = _jsonl_files(folder)
    wanted = list(files) if ids is None else [i for i in ids if i in files]
    out = JudgeOutput()
    for instance_id in wanted:
        path = files[instance_id]
        rows = read_jsonl(path, folder)
        out.lines[instance_id] = [
            _judge_line(row, mode, f"{path}: line {n}") for n, row in enumerate(rows, 1)
        ]
    evaluations = folder / "evaluations.json"
    if evaluations.exists():
        data = _read_json(evaluations, folder)
        for record in data if isinstance(data, list) else []:
            if isinstance(record, dict) and isinstance(record.get("cost"), int | float):
                out.costs[str(record.get("id"))] = float(record["cost"])
    return out


def _file_for(folder: Path, instance_id: str) -> Path:
    """``<id>.jsonl`` in ``folder``; an id that is not a plain file name is refused, never
    allowed to name a path elsewhere."""
    if (
        not instance_id
        or instance_id in {".", ".."}
        or any(c in instance_id for c in "/\\\x00")
        or instance_id.startswith(".")
    ):
        raise FormatError(f"id {instance_id!r} cannot be an AblationBench file name", where=folder)
    return folder / f"{instance_id}.jsonl"


def _jsonl_text(rows: Iterable[Mapping[str, Any]]) -> str:
    # The reference joins lines with "\n" and writes no final newline.
    return "\n".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows)


def write_planner_output(
    folder: Path, plans: Mapping[str, Sequence[Mapping[str, Any]]], costs: Mapping[str, float]
) -> None:
    """``<id>.jsonl`` per plan and ``plans.json``, each written atomically."""
    folder = Path(folder)
    summary = {}
    for instance_id, rows in plans.items():
        text = _jsonl_text(rows)
        atomic_write_text(_file_for(folder, instance_id), text)
        summary[instance_id] = {"predictions": text, "cost": costs.get(instance_id, 0.0)}
    atomic_write_text(folder / "plans.json", json.dumps(summary, indent=4, ensure_ascii=False))


def write_judge_output(
    folder: Path,
    lines: Mapping[str, Sequence[JudgeLine]],
    evaluations: Sequence[Mapping[str, Any]] = (),
) -> None:
    """``<id>.jsonl`` per judged instance and, when given, ``evaluations.json``."""
    folder = Path(folder)
    for instance_id, rows in lines.items():
        atomic_write_text(_file_for(folder, instance_id), _jsonl_text(r.to_json() for r in rows))
    if evaluations:
        atomic_write_text(
            folder / "evaluations.json",
            json.dumps(list(evaluations), indent=4, ensure_ascii=False),
        )
