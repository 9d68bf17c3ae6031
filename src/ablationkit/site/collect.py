"""Read run directories (``bench plan|judge``) into what the site shows: plans, ground truth,
judgements and per-mode scores. Reads only, through ``bench.runfiles`` (the one owner of a
run's file names): a damaged run file stops the site with one line naming it (``bench``
repairs runs, the site never moves anything); a file named for another paper is skipped with a
warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablationkit.bench.runfiles import RunFiles, file_stem
from ablationkit.errors import AblationKitError, FormatError
from ablationkit.judge.metrics import aggregate
from ablationkit.schema import Ablation, Judgement, Mode, Plan


@dataclass
class PaperEntry:
    """One paper of one run: its plan (None when planning failed) and every judge's verdict."""

    paper_id: str
    mode: Mode
    title: str = ""
    plan: Plan | None = None
    truth: list[Ablation] = field(default_factory=list)
    truth_names: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    judgements: dict[str, Judgement] = field(default_factory=dict)
    failure: str | None = None

    @property
    def slug(self) -> str:
        """The page's file name: distinct for distinct ids, as the run's own files are."""
        return file_stem(self.paper_id)

    def targets(self) -> list[str]:
        """Ground-truth names: from the dataset, else as the judges saw them."""
        if self.truth:
            return [a.name for a in self.truth]
        return self.truth_names


@dataclass
class Score:
    """A leaderboard row: one run, one judge, one mode."""

    run: str
    run_slug: str
    model: str
    judge: str
    mode: Mode
    k: int | None
    papers: int
    errors: int
    macro: dict[str, float]
    micro: dict[str, float]
    ci95: dict[str, list[float]]
    plan_cost_usd: float | None
    judge_cost_usd: float | None


@dataclass
class RunData:
    name: str
    slug: str
    path: Path
    model: str
    dataset: str | None
    k: int | None
    papers: list[PaperEntry]
    judges: list[str]
    warnings: list[str] = field(default_factory=list)

    def modes(self) -> list[Mode]:
        return sorted({p.mode for p in self.papers})  # type: ignore[return-value]


def _dataset_instances(config: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The run's instances by id, or nothing when the dataset cannot be loaded here."""
    from ablationkit.bench.runner import planned_instances

    if not config.get("dataset"):
        return {}
    try:
        instances = planned_instances(config)
    except AblationKitError as exc:
        warnings.append(
            f"dataset not readable here ({exc.one_line()}): ground truth shown by name only"
        )
        return {}
    return {i.id: i for i in instances}


def load_run(path: str | Path, *, slug: str | None = None) -> RunData:
    """A run directory as the site shows it."""
    root = Path(path)
    files = RunFiles(root)
    manifest = files.read_manifest()
    if manifest is None:
        raise FormatError("not a run directory (no run.json)", where=root)
    config: dict[str, Any] = (manifest["stages"].get("plan") or {}).get("config") or {}
    warnings: list[str] = []
    instances = _dataset_instances(config, warnings)
    failures = files.read_failures(repair=False).get("plan", {})

    papers: dict[str, PaperEntry] = {}
    for plan in files.read_plans(warnings.append):
        instance = instances.get(plan.paper_id)
        papers[plan.paper_id] = PaperEntry(
            paper_id=plan.paper_id,
            mode=plan.mode,
            title=instance.title if instance else "",
            plan=plan,
            truth=list(instance.ground_truth) if instance else [],
            reviews=list(instance.reviews) if instance else [],
        )
    for paper_id, error in failures.items():
        if paper_id not in papers:
            instance = instances.get(paper_id)
            papers[paper_id] = PaperEntry(
                paper_id=paper_id,
                mode=instance.mode if instance else (config.get("mode") or "author"),
                title=instance.title if instance else "",
                truth=list(instance.ground_truth) if instance else [],
                failure=error,
            )
    judges: list[str] = []
    for verdicts in files.read_judgements(warnings.append).values():
        for verdict in verdicts:
            entry = papers.get(verdict.paper_id)
            if entry is None:
                continue
            entry.judgements[verdict.judge] = verdict
            if not entry.truth_names:
                entry.truth_names = list(verdict.targets)
            if verdict.judge not in judges:
                judges.append(verdict.judge)
    model = config.get("model") or next(
        (p.plan.model for p in papers.values() if p.plan), "unknown"
    )
    return RunData(
        name=root.resolve().name,
        slug=slug or file_stem(root.resolve().name),
        path=root,
        model=model,
        dataset=config.get("dataset"),
        k=config.get("k"),
        papers=sorted(papers.values(), key=lambda p: p.paper_id),
        judges=judges,
        warnings=warnings,
    )


def _cost(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def scores(run: RunData, *, resamples: int = 1000) -> list[Score]:
    """Leaderboard rows of a run: one per judge and mode, with 95% bootstrap intervals."""
    rows: list[Score] = []
    for judge in run.judges:
        for mode in run.modes():
            papers = [p for p in run.papers if p.mode == mode and judge in p.judgements]
            if not papers:
                continue
            summary = aggregate([p.judgements[judge] for p in papers], resamples=resamples)
            rows.append(
                Score(
                    run=run.name,
                    run_slug=run.slug,
                    model=run.model,
                    judge=judge,
                    mode=mode,
                    k=run.k,
                    papers=summary["papers"],
                    errors=summary["errors"],
                    macro=summary["macro"],
                    micro=summary["micro"],
                    ci95=summary["macro_ci95"],
                    plan_cost_usd=_cost(
                        [p.plan.usage.cost_usd if p.plan and p.plan.usage else None for p in papers]
                    ),
                    judge_cost_usd=_cost(
                        [
                            j.usage.cost_usd if (j := p.judgements[judge]).usage else None
                            for p in papers
                        ]
                    ),
                )
            )
    return rows
