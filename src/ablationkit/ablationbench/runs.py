"""AblationBench's folders in and out of an AblationKit run, and a run scored its way.

``import_run`` turns a planner output folder (and, optionally, a judge output folder) into a run
that ``bench score``, ``site`` and ``serve`` read like any other; ``export_run`` writes a run's
plans and judgements back as the reference's folders, so its ``eval``/``eval-judge`` and tools
read our runs. Names are matched to plan items exactly (byte for byte), as the reference does.

``score_run`` scores a run under the reference's rules (``scoring``): every planned paper counts,
a paper whose plan or judgement failed counts as 0, and the aggregate is the plain mean.
Judgements made under our own protocol carry index matches, not the reference's name lines;
they are scored through the lines those matches imply (one per target, naming the plan items
matched to it; one per plan item in reviewer mode), which is how the reference would read a
judge that said exactly those matches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablationkit.ablationbench.files import (
    read_judge_output,
    read_planner_output,
    write_judge_output,
    write_planner_output,
)
from ablationkit.ablationbench.scoring import (
    AuthorLine,
    ReferenceScore,
    ReviewerLine,
    mean_scores,
    score_author,
    score_reviewer,
)
from ablationkit.bench.datasets import load_dataset
from ablationkit.bench.store import (
    JudgeStageConfig,
    PlanStageConfig,
    RunRecord,
    RunStore,
    read_run,
)
from ablationkit.errors import FormatError
from ablationkit.fsutil import safe_name
from ablationkit.judge.reference import (
    matches_from_author_lines,
    matches_from_reviewer_lines,
    plan_lines,
)
from ablationkit.schema import Ablation, Judgement, Mode, Plan, Usage

IMPORTED_PLANNER = "ablationbench"


@dataclass
class ImportReport:
    """What an import wrote: plans and judgements by id, and ids without a plan file."""

    plans: list[str] = field(default_factory=list)
    judgements: list[str] = field(default_factory=list)
    missing_plans: list[str] = field(default_factory=list)


def _ablation(row: dict[str, Any], where: str) -> Ablation:
    try:
        return Ablation.model_validate(row)
    except ValueError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise FormatError(f"not an ablation ({detail})", where=where) from None


def judgement_lines(judgement: Judgement, plan_names: Sequence[str]) -> list[dict[str, Any]]:
    """The judge's reference-format lines: kept ones, or those its index matches imply."""
    if judgement.lines is not None:
        return judgement.lines
    if judgement.mode == "author":
        out: list[dict[str, Any]] = []
        for t, target in enumerate(judgement.targets):
            names = [
                judgement.planned[m.planned]
                for m in judgement.matches
                if m.target == t and m.planned < len(judgement.planned)
            ]
            plan: str | list[str] | None = names[0] if len(names) == 1 else (names or None)
            out.append(AuthorLine(target, plan).to_json())
        return out
    matched = judgement.matched_planned()
    return [
        ReviewerLine(name, p in matched).to_json()
        for p, name in enumerate(plan_names[: judgement.k])
    ]


def score_judgement_reference(
    judgement: Judgement | None, plan: Plan | None, *, top_k: int | None = None
) -> ReferenceScore | None:
    """One paper under the reference's rules; None (scored 0) when plan or verdict failed."""
    if judgement is None or plan is None or judgement.error is not None:
        return None
    plan_names = [a.name for a in plan.ablations]
    lines = judgement_lines(judgement, plan_names)
    if judgement.mode == "author":
        return score_author(
            [AuthorLine(**line) for line in lines], judgement.targets, plan_names, top_k=top_k
        )
    count = judgement.target_count
    if count is None:
        count = len(judgement.targets)
    return score_reviewer([ReviewerLine(**line) for line in lines], count, top_k=top_k)


def score_run(
    plans: dict[str, Plan],
    judgements: dict[str, dict[str, Judgement]],
    paper_ids: Sequence[str],
    *,
    top_k: int | None = None,
) -> dict[str, Any]:
    """Per judge: every paper's reference scores (unrounded) and their plain mean; papers
    without a plan or a usable verdict are listed and count as 0. With papers of both modes, the
    overall figure is the unweighted mean of the author and reviewer F1, as the reference's."""
    out: dict[str, Any] = {}
    for judge, verdicts in sorted(judgements.items()):
        per_paper: dict[str, dict[str, Any]] = {}
        by_mode: dict[str, list[ReferenceScore | None]] = {}
        failed = []
        for paper_id in paper_ids:
            verdict = verdicts.get(paper_id)
            plan = plans.get(paper_id)
            score = score_judgement_reference(verdict, plan, top_k=top_k)
            mode = (verdict.mode if verdict else None) or (plan.mode if plan else "author")
            by_mode.setdefault(mode, []).append(score)
            if score is None:
                failed.append(paper_id)
                per_paper[paper_id] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "failed": True}
            else:
                per_paper[paper_id] = score.as_dict()
        modes = {mode: mean_scores(scores) for mode, scores in sorted(by_mode.items())}
        entry: dict[str, Any] = {
            "protocol": "ablationbench",
            "papers": len(paper_ids),
            "failed": len(failed),
            "failed_ids": failed,
            "all_failed": bool(paper_ids) and len(failed) == len(paper_ids),
            "macro": mean_scores([s for scores in by_mode.values() for s in scores]),
            "by_mode": modes,
            "per_paper": per_paper,
        }
        if {"author", "reviewer"} <= modes.keys():
            entry["overall_f1"] = (modes["author"]["f1"] + modes["reviewer"]["f1"]) / 2
        out[judge] = entry
    return out


def import_run(
    plans_dir: str | Path,
    dataset: str | Path,
    run_dir: str | Path,
    *,
    evaluations_dir: str | Path | None = None,
    judge: str | None = None,
    model: str | None = None,
    mode: str | None = None,
    papers_root: str | Path | None = None,
) -> ImportReport:
    """Write an AblationBench planner folder (and judge folder) into the run ``run_dir``.

    ``dataset`` gives the instances (the reference's rows need no paper files here); every one
    of them without a plan file gets an empty plan, as the reference's planner writes an empty
    ``<id>.jsonl`` for a paper it failed on, so it stays in the mean at 0.
    """
    checked_mode: Mode | None = (
        "author" if mode == "author" else "reviewer" if mode == "reviewer" else None
    )
    instances = load_dataset(dataset, mode=checked_mode, papers_root=papers_root)
    ids = [i.id for i in instances]
    plans_dir = Path(plans_dir)
    files = {p.name[: -len(".jsonl")] for p in plans_dir.glob("*.jsonl")}
    present = [i for i in ids if i in files]
    output = read_planner_output(plans_dir, present)
    model_name = model or plans_dir.resolve().name
    store = RunStore(run_dir)
    store.record_stage(
        "plan",
        PlanStageConfig.model_validate(
            {
                "dataset": str(Path(dataset).resolve()) if Path(dataset).exists() else str(dataset),
                "model": model_name,
                "mode": checked_mode,
                "papers_root": str(papers_root) if papers_root else None,
                "imported_from": str(plans_dir.resolve()),
                "protocol": "ablationbench",
            }
        ),
    )
    report = ImportReport(missing_plans=[i for i in ids if i not in files])
    plans: dict[str, Plan] = {}
    for instance in instances:
        rows = output.plans.get(instance.id, [])
        where = str(plans_dir / f"{instance.id}.jsonl")
        plan = Plan(
            planner=IMPORTED_PLANNER,
            model=model_name,
            paper_id=instance.id,
            mode=instance.mode,
            ablations=[_ablation(row, f"{where}: line {n}") for n, row in enumerate(rows, 1)],
            usage=Usage(cost_usd=output.costs.get(instance.id)),
        )
        store.write_plan(plan)
        plans[instance.id] = plan
        report.plans.append(instance.id)
    if evaluations_dir is None:
        return report
    judge_name = judge or Path(evaluations_dir).resolve().name
    by_mode: dict[Mode, list[str]] = {}
    for instance in instances:
        by_mode.setdefault(instance.mode, []).append(instance.id)
    store.record_stage(
        f"judge:{judge_name}",
        JudgeStageConfig.model_validate(
            {"judge": judge_name, "imported_from": str(Path(evaluations_dir).resolve())}
        ),
    )
    by_id = {i.id: i for i in instances}
    for instance_mode, mode_ids in by_mode.items():
        judged = read_judge_output(Path(evaluations_dir), instance_mode, mode_ids)
        for paper_id, lines in judged.lines.items():
            instance, plan = by_id[paper_id], plans[paper_id]
            planned = [a.name for a in plan.ablations]
            targets = [a.name for a in instance.ground_truth]
            verdict = Judgement(
                judge=judge_name,
                paper_id=paper_id,
                mode=instance.mode,
                k=len(planned),
                planned=planned,
                targets=targets,
                lines=[line.to_json() for line in lines],
                target_count=instance.target_count,
                usage=Usage(cost_usd=judged.costs.get(paper_id)),
            )
            if instance.mode == "author":
                verdict.matches = matches_from_author_lines(
                    [line for line in lines if isinstance(line, AuthorLine)], planned, targets
                )
            else:
                verdict.matches = matches_from_reviewer_lines(
                    [line for line in lines if isinstance(line, ReviewerLine)], planned
                )
            store.write_judgement(verdict)
            report.judgements.append(paper_id)
    return report


def export_run(run_dir: str | Path, out_dir: str | Path) -> dict[str, list[str]]:
    """Write a run as the reference's folders: ``OUT/plans/`` and ``OUT/<judge>/`` per judge
    (``<id>.jsonl`` each, with ``plans.json`` / ``evaluations.json``). Returns the ids per
    folder."""
    record = read_run(run_dir, dataset=False)
    out = Path(out_dir)
    plan_rows: dict[str, list[dict[str, Any]]] = {}
    costs: dict[str, float] = {}
    for paper_id, plan in sorted(record.plans.items()):
        plan_rows[paper_id] = [json.loads(line) for line in plan_lines(plan)]
        if plan.usage and plan.usage.cost_usd is not None:
            costs[paper_id] = plan.usage.cost_usd
    write_planner_output(out / "plans", plan_rows, costs)
    written = {"plans": sorted(plan_rows)}
    scored = score_run(record.plans, record.judgements, sorted(record.plans))
    for judge, verdicts in sorted(record.judgements.items()):
        lines: dict[str, list[Any]] = {}
        evaluations = []
        for paper_id, verdict in sorted(verdicts.items()):
            if verdict.error is not None or paper_id not in record.plans:
                continue
            plan_names = [a.name for a in record.plans[paper_id].ablations]
            raw = judgement_lines(verdict, plan_names)
            lines[paper_id] = [
                AuthorLine(**row) if verdict.mode == "author" else ReviewerLine(**row)
                for row in raw
            ]
            per = scored[judge]["per_paper"].get(paper_id, {})
            evaluations.append(
                {
                    "id": paper_id,
                    "precision": per.get("precision", 0.0),
                    "recall": per.get("recall", 0.0),
                    "f1_score": per.get("f1", 0.0),
                    "cost": (verdict.usage.cost_usd if verdict.usage else None) or 0.0,
                }
            )
        folder = safe_name(judge, "judge")
        write_judge_output(out / folder, lines, evaluations)
        written[folder] = sorted(lines)
    return written


def score_record(record: RunRecord, *, top_k: int | None = None) -> dict[str, Any]:
    """:func:`score_run` over a run read with ``read_run``: every paper of the run counts."""
    return score_run(record.plans, record.judgements, record.paper_ids(), top_k=top_k)
