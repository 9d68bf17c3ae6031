"""The reference's LM planner (``--protocol ablationbench``): its input, its reply, no more.

AblationBench's planner sends the paper's raw source files (``ablationbench.source``) with the
title and abstract, asks for ``num_ablations`` ablations, and keeps whatever ``<predictions>``
lines come back: no context fitting, no repair round-trip, no merging of near-duplicates, no
added sweeps, no cut to k (a longer plan is kept and scored in full, as there). Its reply is
parsed as strictly as there: one line that is not a valid ablation fails the paper. The prompt
text is ours unless ``--planner-config`` names the reference's own YAML file.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ablationkit.ablationbench.config import PromptConfig, load_prompt_config, packaged_prompts
from ablationkit.ablationbench.source import raw_source
from ablationkit.errors import AblationKitError, FormatError
from ablationkit.schema import Ablation, Mode, Plan, Timings, Usage

PLANNER_NAME = "ablationbench-planner"


class ReferenceReplyError(AblationKitError):
    """A reply the reference's parser would reject (the paper fails, scoring 0)."""


class _ReferenceRow(BaseModel):
    """One predicted ablation, validated as the reference validates it (exact action names,
    ``metrics`` required)."""

    name: str
    ablated_part: str
    action: Literal["REPLACE", "REMOVE", "ADD"]
    replacement: list[Any] | dict[str, Any] | None = None
    metrics: list[str]


@cache
def default_prompts(mode: str) -> PromptConfig:
    """Our own prompt text in the reference's shape and variables."""
    return packaged_prompts("ablationkit.planner", f"ablationbench_{mode}")


def prompts_for(mode: Mode, config_file: str | Path | None) -> PromptConfig:
    return load_prompt_config(config_file) if config_file else default_prompts(mode)


@dataclass
class ReferencePlanRequest:
    """A prepared reference-protocol request: the messages and what went into them."""

    paper_id: str
    mode: Mode
    messages: list[dict[str, str]]
    temperature: float
    top_p: float
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    load_s: float = 0.0


def paper_folder(path: str | Path) -> Path:
    """The folder whose source files the reference reads: the path itself, or a file's folder."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    raise FormatError("no such paper file or folder", where=path)


def prepare_reference_plan(
    path: str | Path,
    *,
    paper_id: str,
    mode: Mode,
    k: int,
    title: str | None = None,
    abstract: str | None = None,
    planner_config: str | Path | None = None,
) -> ReferencePlanRequest:
    """Read the paper's folder and build the reference planner's messages.

    ``title`` and ``abstract`` come from the dataset row when there is one (as there); else
    from the paper itself.
    """
    started = time.perf_counter()
    folder = paper_folder(path)
    source = raw_source(folder)
    warnings = list(source.warnings)
    if title is None or abstract is None:
        from ablationkit.papers import load_paper

        paper = load_paper(path)
        title = paper.title if title is None else title
        abstract = paper.abstract if abstract is None else abstract
    prompts = prompts_for(mode, planner_config)
    messages = prompts.messages(
        paper_title=title,
        problem_statement=abstract,
        num_ablations=k,
        paper_source=source.text,
    )
    return ReferencePlanRequest(
        paper_id=paper_id,
        mode=mode,
        messages=messages,
        temperature=prompts.temperature,
        top_p=prompts.top_p,
        files=source.files,
        warnings=warnings,
        load_s=time.perf_counter() - started,
    )


def parse_reference_reply(reply: str) -> tuple[str, list[Ablation]]:
    """``(discussion, ablations)`` as the reference's parser reads them, or an error."""
    discussion = re.search(r"<discussion>(.*?)</discussion>", reply, re.S)
    found = re.search(r"<predictions>(.*?)</predictions>", reply, re.S)
    lines = [line for line in found.group(1).strip().split("\n") if line] if found else []
    ablations = []
    for number, line in enumerate(lines, 1):
        try:
            row = _ReferenceRow.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ReferenceReplyError(f"prediction line {number} is not JSON: {exc.msg}") from None
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ReferenceReplyError(
                f"prediction line {number} is not an ablation ({where}: {problem['msg']})"
            ) from None
        ablations.append(Ablation.model_validate(row.model_dump()))
    return (discussion.group(1).strip() if discussion else ""), ablations


def reference_plan(
    request: ReferencePlanRequest,
    reply_text: str,
    *,
    model: str,
    usage: Usage | None = None,
    generation_s: float | None = None,
) -> Plan:
    """The plan from a reply, with nothing added, merged or cut."""
    reasoning, ablations = parse_reference_reply(reply_text)
    return Plan(
        planner=PLANNER_NAME,
        model=model,
        paper_id=request.paper_id,
        mode=request.mode,
        reasoning=reasoning,
        ablations=ablations,
        usage=usage,
        timings=Timings(load_s=request.load_s, generation_s=generation_s),
    )
