"""What the site shows of a run: its papers (plan, ground truth, every judge's verdict and
score) and per-mode leaderboard rows. Built from ``bench.store.read_run``, the one reader of a
run directory: a damaged run file stops the site with one line naming it (``bench`` repairs
runs, the site never moves anything); a file named for another paper is skipped with a warning.

Scores are the run's own (``RunRecord.judge_scores``): a paper whose plan or judgement failed
counts as 0, and a judge that gave no verdict at all is shown as failed, not ranked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ablationkit.bench.store import RunRecord, file_stem, read_run
from ablationkit.judge.metrics import Metrics, PaperScore, score_judgement
from ablationkit.schema import Ablation, Judgement, Mode, Plan


@dataclass
class PaperEntry:
    """One paper of one run: its plan (None when planning failed) and every judge's verdict,
    with the paper's score under each judge (at the run's k)."""

    paper_id: str
    mode: Mode
    title: str = ""
    plan: Plan | None = None
    truth: list[Ablation] = field(default_factory=list)
    truth_names: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    judgements: dict[str, Judgement] = field(default_factory=dict)
    scores: dict[str, PaperScore] = field(default_factory=dict)
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
    """A leaderboard row: one run, one judge, one mode. ``papers`` counts failed papers too
    (as 0; ``failures`` of them); ``failed``: the judge gave no verdict at all."""

    run: str
    run_slug: str
    model: str
    judge: str
    mode: Mode
    k: int | None
    papers: int
    errors: int
    macro: Metrics
    micro: Metrics
    ci95: dict[str, tuple[float, float]]
    plan_cost_usd: float | None
    judge_cost_usd: float | None
    failures: int = 0
    failed_ids: list[str] = field(default_factory=list)
    failed: bool = False


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
    record: RunRecord | None = None

    def modes(self) -> list[Mode]:
        return sorted({p.mode for p in self.papers})


def _entry(record: RunRecord, paper_id: str, failures: dict[str, str]) -> PaperEntry:
    instance = (record.instances or {}).get(paper_id)
    entry = PaperEntry(
        paper_id=paper_id,
        mode=record.mode_of(paper_id),
        title=instance.title if instance else "",
        plan=record.plans.get(paper_id),
        truth=list(instance.ground_truth) if instance else [],
        reviews=list(instance.reviews) if instance else [],
        failure=failures.get(paper_id),
    )
    for judge in record.judges:
        verdict = record.judgements.get(judge, {}).get(paper_id)
        if verdict is None or entry.plan is None:
            continue
        entry.judgements[judge] = verdict
        entry.scores[judge] = score_judgement(verdict, k=record.score_k(judge))
        if not entry.truth_names:
            entry.truth_names = list(verdict.targets)
    return entry


def load_run(path: str | Path, *, slug: str | None = None) -> RunData:
    """A run directory as the site shows it."""
    root = Path(path)
    record = read_run(root)
    config = record.plan_config
    failures = record.plan_failures()
    papers = [_entry(record, paper_id, failures) for paper_id in record.paper_ids()]
    model = (config.model if config else None) or next(
        (p.plan.model for p in papers if p.plan), "unknown"
    )
    return RunData(
        name=root.resolve().name,
        slug=slug or file_stem(root.resolve().name),
        path=root,
        model=model,
        dataset=config.dataset if config else None,
        k=config.k if config else None,
        papers=papers,
        judges=record.judges,
        warnings=list(record.warnings),
        record=record,
    )


def _cost(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def scores(run: RunData, *, resamples: int = 1000) -> list[Score]:
    """Leaderboard rows of a run: one per judge and mode, with 95% bootstrap intervals."""
    record = run.record if run.record is not None else read_run(run.path)
    rows: list[Score] = []
    for judge in run.judges:
        for mode in run.modes():
            summary = record.judge_scores(judge, mode=mode, resamples=resamples)
            if summary.papers == summary.plan_failures:
                continue  # the judge has done nothing in this mode (yet)
            papers = [p for p in run.papers if p.mode == mode]
            judged = [p for p in papers if judge in p.judgements]
            rows.append(
                Score(
                    run=run.name,
                    run_slug=run.slug,
                    model=run.model,
                    judge=judge,
                    mode=mode,
                    k=run.k,
                    papers=summary.papers,
                    errors=summary.errors,
                    macro=summary.macro,
                    micro=summary.micro,
                    ci95=summary.macro_ci95,
                    plan_cost_usd=_cost(
                        [p.plan.usage.cost_usd if p.plan.usage else None for p in papers if p.plan]
                    ),
                    judge_cost_usd=_cost(
                        [
                            j.usage.cost_usd if (j := p.judgements[judge]).usage else None
                            for p in judged
                        ]
                    ),
                    failures=summary.failures,
                    failed_ids=summary.failed_ids,
                    failed=summary.failed,
                )
            )
    return rows
