"""Resumable batch runs: plan, judge and score a dataset into a run directory.

The run directory's files, their names and formats belong to ``bench.store`` (``RunStore``,
``read_run``); the runner reads and writes them only through it. Every file is written
atomically when its paper is done, so a run killed at any point resumes by skipping what
exists and validates; a file that does not validate is set aside with a warning and its paper
redone. Model calls that completed before the
kill are answered from the run's cache, so they are not paid for twice. One failing paper
never stops the others: failures are collected and listed at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ablationkit.bench.datasets import Instance, load_dataset
from ablationkit.bench.store import (
    Manifest,
    RunStore,
    Scores,
    StageConfig,
    check_distinct,
    planned_instances,
)
from ablationkit.errors import AblationKitError, FormatError
from ablationkit.judge.base import Judge
from ablationkit.judge.factory import make_judge as make_judge  # moved to judge/
from ablationkit.lm.client import LMClient
from ablationkit.lm.keys import redact

if TYPE_CHECKING:
    from ablationkit.lm.models import Model
    from ablationkit.planner import PlanConfig, PlanRequest
    from ablationkit.schema import Mode


@dataclass
class StageReport:
    """What one stage did: ``done`` new, ``skipped`` already there, ``failed`` by id."""

    stage: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    cost_usd: float = 0.0
    seconds: float = 0.0


Progress = Callable[[str, int, int, float], None]  # (paper id, finished, total, cost so far)


class Run:
    """A run directory. ``client`` defaults to one whose cache lives in the run."""

    def __init__(
        self, directory: str | Path, *, concurrency: int = 8, client: LMClient | None = None
    ) -> None:
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise FormatError("not a run directory: it is a file", where=self.dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FormatError(
                f"cannot create the run directory ({exc.strerror})", where=self.dir
            ) from None
        self.store = RunStore(self.dir)
        self.files = self.store  # the name of 0.1
        self.client = client or LMClient(concurrency=concurrency, cache=self.store.cache_path)
        self.concurrency = concurrency

    # ------------------------------------------------------------------ manifest
    @property
    def manifest_path(self) -> Path:
        return self.store.manifest_path

    def manifest(self) -> Manifest:
        """``run.json`` (a new one if there is none); ``DamagedRunFile`` if it is damaged."""
        return self.store.manifest()

    def _record(self, stage: str, config: StageConfig | Any, *, check_only: bool = False) -> None:
        """Check ``config`` against the run's (``check_only``), or record it in ``run.json``
        (``RunStore.check_stage`` / ``record_stage``)."""
        if check_only:
            self.store.check_stage(stage, config)
        else:
            self.store.record_stage(stage, config)

    def dataset(self) -> list[Instance]:
        """The instances the plan stage was given (``run.json``)."""
        config = self.store.plan_config()
        if config is None:
            raise AblationKitError(
                "no plan stage in this run yet: run `bench plan` first", where=self.dir
            )
        return planned_instances(config)

    # ------------------------------------------------------------------ stages
    def plans_dir(self) -> Path:
        return self.store.plans_dir

    def plan_path(self, instance_id: str) -> Path:
        return self.store.plan_path(instance_id)

    def plan(
        self,
        dataset: str | Path,
        config: PlanConfig | None = None,
        *,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        papers_root: str | Path | None = None,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> StageReport:
        """Plan every instance that has no plan yet, as ``config`` says (keyword
        ``overrides`` change it by name, as for ``planner.plan``).

        Each instance is planned in its own mode unless the config sets one
        (``PlanConfig(mode="reviewer")`` or ``mode="reviewer"``): then every instance is.
        ``config.timeout`` bounds each attempt on a model server (None: the client's); a paper
        whose model calls take more than ``config.deadline`` seconds in all fails with "no
        reply within …" and the others go on.
        """
        from ablationkit.lm.models import resolve_model
        from ablationkit.planner import acomplete_plan

        config, chosen_mode = _batch_config(config, overrides)
        model = resolve_model(config.model, config.api_base)  # a bad id: at once, and once
        self.client.prefetch(model)  # the SDK, if needed, imports while the dataset loads
        instances = load_dataset(
            dataset, mode=chosen_mode, ids=ids, limit=limit, papers_root=papers_root
        )
        check_distinct((i.id for i in instances), where=dataset)
        # What run.json records: the dataset and its extent, and every plan setting (the
        # mode only if chosen: else each instance's own). No "params": a run of 0.1 recorded
        # its extra request parameters there, always none; "generation" holds them now.
        record = {
            **config.model_dump(mode="json", exclude={"mode"}),
            "dataset": str(dataset),
            "mode": chosen_mode,
            "ids": list(ids) if ids else None,
            "limit": limit,
            "papers_root": str(papers_root) if papers_root else None,
        }
        # Check before writing anything: a refused command leaves run.json as it was.
        self._record("plan", record, check_only=True)
        self.files.adopt_legacy(i.id for i in instances)
        planner_model = model.id
        if config.plans > 1:  # an ensemble's plans carry the ensemble's name
            from ablationkit.planner.ensemble import ensemble_name

            planner_model = ensemble_name(config)
        # A run with no plans folder yet has no plan to check: 10,000 papers' file checks
        # (0.5 s) are not worth making before the first request of a new run.
        fresh = not os.path.lexists(self.store.plans_dir)
        done = {i.id: not fresh and self._planned(i, planner_model) for i in instances}
        self._record("plan", record)

        def prepare(instance: Instance) -> PlanRequest:
            return prepare_instance(instance, config, model, client=self.client)

        async def work(instance: Instance, request: PlanRequest) -> None:
            result = await acomplete_plan(request, client=self.client, raw_dir=self.store.raw_dir)
            await asyncio.to_thread(self.store.write_plan, result)

        return self._stage(
            "plan",
            instances,
            lambda instance: done[instance.id],
            progress=progress,
            prepare=prepare,
            awork=work,
        )

    def _planned(self, instance: Instance, model: str) -> bool:
        """Whether ``instance`` has a valid plan; one from another model stops the stage (a
        run is one experiment; this is what guards a run whose run.json was rebuilt)."""
        plan = self.files.finished_plan(instance.id)
        if plan is not None and plan.model != model:
            raise AblationKitError(
                f"planned with model {plan.model!r}, not {model!r}: use a new run directory",
                where=self.plan_path(instance.id),
            )
        return plan is not None

    def judge(
        self, judge: Judge, *, k: int | None = None, progress: Progress | None = None
    ) -> StageReport:
        """Judge every plan that this judge has not judged yet.

        The judge's coroutines run on the client's event loop, ``concurrency`` plans at a time
        (a majority's judges together within each); reading a plan, the paper's source (only for
        a judge whose prompt shows it) and writing the verdict happen in worker threads.
        """
        from ablationkit.ablationbench.source import raw_source
        from ablationkit.sandbox import UnsafePathError, is_inside

        instances = self.dataset()
        check_distinct(i.id for i in instances)
        stage, settings = f"judge:{judge.name}", judge.settings()
        previous = self.manifest().stages.get(stage)
        if previous is not None:  # one name, one judge: never mix two draws or prompts
            old = previous.config.model_dump(mode="json")
            changed = [key for key in settings if key in old and old[key] != settings[key]]
            if changed:
                raise AblationKitError(
                    f"this run's {judge.name} verdicts were made with other "
                    + ", ".join(f"{key} ({old[key]!r}, now {settings[key]!r})" for key in changed)
                    + ": use a new run directory",
                    where=self.dir,
                )
        self._record(stage, {**settings, "judge": judge.name, "k": k})
        self.store.adopt_legacy((i.id for i in instances), judge=judge.name)

        def paper_source(instance: Instance) -> str:
            """The reference's view of the paper's folder ("" for a paper that has none)."""
            if not instance.path:
                return ""
            folder = Path(instance.path)
            root = instance._root
            if root is not None and not is_inside(root, folder):
                raise UnsafePathError(
                    f"paper path {instance.path!r} leads outside the dataset's folder "
                    f"{str(root)!r}; refused",
                    where=f"instance {instance.id!r}",
                )
            if not folder.exists():
                raise FormatError(
                    "paper folder not found: the judge shows the paper's source (for "
                    "AblationBench rows, pass --papers-root: a checkout of its repository)",
                    where=instance.path,
                )
            return raw_source(folder).text if folder.is_dir() else ""

        async def work(instance: Instance, _: None) -> None:
            plan = await asyncio.to_thread(self.store.finished_plan, instance.id)
            if plan is None:
                raise AblationKitError("no plan for this paper (its planning failed?)")
            source = ""
            if judge.needs_paper_source(plan.mode):
                source = await asyncio.to_thread(paper_source, instance)
            verdict = await judge.ajudge(
                plan,
                instance.ground_truth,
                reviews=instance.reviews,
                title=instance.title,
                abstract=instance.abstract,
                paper_source=source,
                k=k,
            )
            if not verdict.targets and instance.target_count:
                verdict.target_count = instance.target_count
            await asyncio.to_thread(self.store.write_judgement, verdict)
            if verdict.error:
                raise AblationKitError(f"judge: {verdict.error}")

        def judged(instance: Instance) -> bool:
            verdict = self.store.finished_judgement(judge.name, instance.id)
            return verdict is not None and verdict.error is None

        return self._stage(stage, instances, judged, progress=progress, awork=work)

    def score(self, *, resamples: int = 1000) -> Scores:
        """Scores of every judge in the run (``RunRecord.score``: a paper whose plan or
        judgement failed counts as 0), written to ``scores.json``. What could not be read is
        in ``Scores.warnings``, one line each."""
        return self.store.score(resamples=resamples)

    # ------------------------------------------------------------------ machinery
    def _stage(
        self,
        stage: str,
        instances: list[Instance],
        is_done: Callable[[Instance], bool],
        work: Callable[[Instance], None] | None = None,
        progress: Progress | None = None,
        prepare: Callable[[Instance], Any] | None = None,
        awork: Callable[[Instance, Any], Awaitable[None]] | None = None,
    ) -> StageReport:
        """Run ``work`` (threads) or ``awork`` (coroutines on the client's event loop) on every
        instance not done yet, ``concurrency`` at a time.

        ``awork`` gets the result of ``prepare``, run just before it (see ``_drive``). The plan
        stage uses that path: at 50 requests in flight, 50 threads handing each request to
        the event loop and back cost ~20% of the wall time in interpreter-lock handoffs.
        """
        report = StageReport(stage)
        start = time.perf_counter()
        pending = []
        for instance in instances:
            if is_done(instance):
                report.skipped.append(instance.id)
            else:
                pending.append(instance)
        cost_before = self.client.usage.cost_usd
        finished = len(report.skipped)
        if progress:
            progress("", finished, len(instances), 0.0)

        def record(instance: Instance, error: BaseException | None) -> None:
            nonlocal finished
            if error is None:
                report.done.append(instance.id)
            elif isinstance(error, AblationKitError):  # failures.json and the report: redacted
                report.failed[instance.id] = redact(error.one_line())
            else:
                report.failed[instance.id] = redact(f"{type(error).__name__}: {error}")
            finished += 1
            if progress:
                progress(
                    instance.id, finished, len(instances), self.client.usage.cost_usd - cost_before
                )

        if awork is not None:
            self.client.run_sync(self._drive(pending, prepare, awork, record))
        elif work is not None:
            with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
                futures = {pool.submit(work, instance): instance for instance in pending}
                for future in as_completed(futures):
                    record(futures[future], future.exception())
        self.client.flush()  # a finished stage's replies are on disk before it reports
        report.cost_usd = self.client.usage.cost_usd - cost_before
        report.seconds = time.perf_counter() - start
        self.store.record_failures(stage, report.failed)
        return report

    async def _drive(
        self,
        pending: list[Instance],
        prepare: Callable[[Instance], Any] | None,
        awork: Callable[[Instance, Any], Awaitable[None]],
        record: Callable[[Instance, BaseException | None], None],
    ) -> None:
        """``concurrency`` workers on the event loop, each taking the next pending instance,
        preparing it just before its model call and awaiting its work.

        Why just in time, on the loop: a paper given as text is prepared in a few ms of CPU,
        which the loop does between requests at no other cost; prepared ahead in a thread,
        all papers compete with the run's start (imports, the first requests) for the
        interpreter lock, and each step of the loop waits for it. A paper read from a file
        (a PDF, a LaTeX folder) is prepared in a worker thread: parsing it can take seconds
        that would stall every request in flight. One worker per slot, not one task per
        paper: 10,000 papers cost 10,000 small tasks' memory otherwise.
        """
        queue = iter(pending)

        async def worker() -> None:
            for instance in queue:
                error: BaseException | None = None
                try:
                    value = await _prepared(prepare, instance) if prepare is not None else None
                    await awork(instance, value)
                except Exception as exc:  # one paper's failure is recorded, never spread
                    error = exc
                record(instance, error)

        workers = min(max(1, self.concurrency), len(pending))
        await asyncio.gather(*(worker() for _ in range(workers)))


async def _prepared(prepare: Callable[[Instance], Any], instance: Instance) -> Any:
    """``prepare(instance)``: on the loop for a paper given as text, in a worker thread for
    one read from a file (see ``Run._drive``)."""
    if instance.path:
        return await asyncio.to_thread(prepare, instance)
    return prepare(instance)


def _batch_config(
    config: PlanConfig | None, overrides: dict[str, Any]
) -> tuple[PlanConfig, Mode | None]:
    """The batch's ``PlanConfig`` and the mode it imposes on every instance: the config's
    mode if it was set (``mode=None`` is "each instance's own", as it always was), else
    None."""
    from ablationkit.planner import PlanConfig

    if "mode" in overrides and overrides["mode"] is None:
        overrides = {k: v for k, v in overrides.items() if k != "mode"}
    config = PlanConfig.build(config, **overrides)
    return config, config.mode if "mode" in config.model_fields_set else None


class PlanEstimate(BaseModel):
    """What a plan stage would send (``dry_run``): requests, prompt tokens as the model counts
    them (``tokenizer`` says how: see ``lm.models``), a typical reply's tokens and the cost.
    ``cost_usd_estimate`` is None when the model's price is unknown."""

    model: str
    tokenizer: str
    context_window: int
    requests: int
    prompt_tokens: int
    completion_tokens_estimate: int
    cost_usd_estimate: float | None
    trimmed: dict[str, list[str]]  # paper id -> what context fitting dropped
    failed: dict[str, str]


def prepare_instance(
    instance: Instance, config: PlanConfig, model: Model, *, client: LMClient | None = None
) -> PlanRequest:
    """One instance's request, as a run and a dry run prepare it: in the instance's own mode
    (``PlanConfig.for_mode``). The ablationbench protocol reads the paper's own files (its
    folder, confined to the dataset's root) with the title and abstract of the dataset row;
    ours reads the loaded paper."""
    from ablationkit.planner import prepare_plan

    reference = config.protocol == "ablationbench" and instance.path
    return prepare_plan(
        instance.checked_path() if reference else instance.load(),
        config.for_mode(instance.mode),
        client=client,
        paper_id=instance.id,
        resolved_model=model,
        title=instance.title or None,
        abstract=instance.abstract or None,
    )


def dry_run(
    dataset: str | Path,
    config: PlanConfig | None = None,
    *,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    papers_root: str | Path | None = None,
    **overrides: Any,
) -> PlanEstimate:
    """What ``Run.plan`` with these arguments would send, calling and starting no model.

    Every prompt is prepared by ``prepare_plan``, exactly as the run prepares it (context
    fitting included), so the counts are the run's; tokens are counted by the ``Model``
    (the embedded model's own tokenizer, read from its weights file without loading it).
    """
    from ablationkit.lm.models import resolve_model
    from ablationkit.lm.types import TokenUsage

    config, chosen_mode = _batch_config(config, overrides)
    model = resolve_model(config.model, config.api_base)
    instances = load_dataset(
        dataset, mode=chosen_mode, ids=ids, limit=limit, papers_root=papers_root
    )
    prompt_tokens = 0
    failed: dict[str, str] = {}
    trimmed: dict[str, list[str]] = {}
    for instance in instances:
        try:
            request = prepare_instance(instance, config, model)
        except AblationKitError as exc:
            failed[instance.id] = redact(exc.one_line())
            continue
        prompt_tokens += request.prompt_tokens
        if request.dropped:
            trimmed[instance.id] = request.dropped
    requests = len(instances) - len(failed)
    typical_reply = min(config.reply_tokens, 150 * config.k + 300)
    completion_tokens = typical_reply * requests
    return PlanEstimate(
        model=model.id,
        tokenizer=model.tokenizer,
        context_window=config.budget.max_context or model.context_window,
        requests=requests,
        prompt_tokens=prompt_tokens,
        completion_tokens_estimate=completion_tokens,
        cost_usd_estimate=model.cost(TokenUsage(prompt_tokens, completion_tokens)),
        trimmed=trimmed,
        failed=failed,
    )
