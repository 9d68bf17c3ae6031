"""Resumable batch runs: plan, judge and score a dataset into a run directory.

Layout::

    RUN/run.json                      the configuration of every stage run so far
    RUN/plans/<id>.json               one plan per paper
    RUN/judgements/<judge>/<id>.json  one verdict per paper per judge
    RUN/scores.json                   P/R/F1 per judge
    RUN/failures.json                 the papers each stage could not do, last time it ran
    RUN/lm-cache.sqlite               every model reply of the run

``<id>`` and ``<judge>`` are file names made by ``runfiles.file_stem`` (distinct for distinct
ids). Every file is written atomically when its paper is done, so a run killed at any point
resumes by skipping what exists and validates; a file that does not validate is set aside
with a warning and its paper redone (``runfiles``). Model calls that completed before the
kill are answered from the run's cache, so they are not paid for twice. One failing paper
never stops the others: failures are collected and listed at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablationkit import __version__
from ablationkit.bench.datasets import Instance, load_dataset
from ablationkit.bench.runfiles import DamagedRunFile, RunFiles, check_distinct
from ablationkit.errors import AblationKitError, FormatError
from ablationkit.fsutil import DamagedFileWarning, atomic_write_text, set_aside
from ablationkit.judge.lm_judge import Judge, LMJudge, MajorityJudge
from ablationkit.judge.metrics import aggregate
from ablationkit.lm.client import LMClient
from ablationkit.lm.keys import redact
from ablationkit.lm.retry import DEFAULT_DEADLINE
from ablationkit.lm.routes import check_api_base, resolve

if TYPE_CHECKING:
    from ablationkit.planner import PlanRequest


@dataclass
class StageReport:
    """What one stage did: ``done`` new, ``skipped`` already there, ``failed`` by id."""

    stage: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    cost_usd: float = 0.0
    seconds: float = 0.0


# Papers prepared (loaded, prompt built) ahead of the model calls: a few MB of prompts.
PREPARE_AHEAD = 256

Progress = Callable[[str, int, int, float], None]  # (paper id, finished, total, cost so far)


def planned_instances(config: dict[str, Any]) -> list[Instance]:
    """The instances a run's plan stage was given, from the configuration in ``run.json``."""
    return load_dataset(
        config["dataset"],
        mode=config.get("mode"),
        ids=config.get("ids"),
        limit=config.get("limit"),
        papers_root=config.get("papers_root"),
    )


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
        self.files = RunFiles(self.dir)
        self.client = client or LMClient(concurrency=concurrency, cache=self.files.cache_path)
        self.concurrency = concurrency
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ manifest
    @property
    def manifest_path(self) -> Path:
        return self.files.manifest_path

    def manifest(self) -> dict[str, Any]:
        """``run.json`` (a new one if there is none); ``DamagedRunFile`` if it is damaged."""
        return self.files.read_manifest() or self._new_manifest()

    @staticmethod
    def _new_manifest() -> dict[str, Any]:
        return {"version": __version__, "created": time.time(), "stages": {}}

    def _record(self, stage: str, config: dict[str, Any], *, check_only: bool = False) -> None:
        """Check ``config`` against the run's (``check_only``), or record it in ``run.json``.

        A damaged ``run.json`` stops every stage but ``plan``: the plan command carries the
        whole configuration, so its run.json is set aside (the bytes are kept beside it) and
        rebuilt, losing nothing. What the old file guarded, that the plans already in the run
        come from this model, ``plan`` checks on the plans themselves (``_planned``). The
        other stages stop with one line: they cannot know how the run was planned.
        """
        # An api_base may carry credentials (https://user:key@host): never write them.
        config = json.loads(redact(json.dumps(config)))
        damaged: DamagedRunFile | None = None
        with self._lock:
            try:
                manifest = self.manifest()
            except DamagedRunFile as exc:
                if stage != "plan":
                    raise
                manifest, damaged = self._new_manifest(), exc
            previous = (manifest["stages"].get(stage) or {}).get("config")
            if stage == "plan" and previous:
                # Changing what a plan depends on would mix two experiments in one run;
                # changing --limit or --ids only extends or narrows it.
                keys = ("dataset", "model", "mode", "k", "api_base", "params")
                changed = [key for key in keys if previous.get(key) != config.get(key)]
                if changed:
                    raise AblationKitError(
                        f"this run was planned with other {', '.join(changed)} "
                        f"({', '.join(f'{c}={previous.get(c)!r}' for c in changed)}); "
                        "use a new run directory",
                        where=self.dir,
                    )
            if check_only:
                return
            if damaged is not None:
                set_aside(damaged.path, damaged.problem, "rebuilt from this command's options")
            manifest["stages"][stage] = {"config": config, "updated": time.time()}
            atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2) + "\n")

    def dataset(self) -> list[Instance]:
        config = self.manifest()["stages"].get("plan", {}).get("config")
        if not config:
            raise AblationKitError(
                "no plan stage in this run yet: run `bench plan` first", where=self.dir
            )
        return planned_instances(config)

    # ------------------------------------------------------------------ stages
    def plans_dir(self) -> Path:
        return self.files.plans_dir

    def plan_path(self, instance_id: str) -> Path:
        return self.files.plan_path(instance_id)

    def plan(
        self,
        dataset: str | Path,
        *,
        model: str = "local",
        mode: str | None = None,
        k: int = 5,
        api_base: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        papers_root: str | Path | None = None,
        progress: Progress | None = None,
        timeout: float | None = None,
        deadline: float | None = DEFAULT_DEADLINE,
        **params: Any,
    ) -> StageReport:
        """Plan every instance that has no plan yet. ``timeout`` bounds each attempt on a
        model server (None: the client's); a paper whose model calls take more than
        ``deadline`` seconds in all fails with "no reply within …" and the others go on."""
        from ablationkit.planner import acomplete_plan, prepare_plan

        resolve(model, api_base)  # a malformed model id or api_base fails the stage at once
        instances = load_dataset(
            dataset,
            mode=mode,  # type: ignore[arg-type]
            ids=ids,
            limit=limit,
            papers_root=papers_root,
        )
        check_distinct((i.id for i in instances), where=dataset)
        config = {
            "dataset": str(dataset),
            "model": model,
            "mode": mode,
            "k": k,
            "api_base": api_base,
            "ids": list(ids) if ids else None,
            "limit": limit,
            "papers_root": str(papers_root) if papers_root else None,
            "params": params,
        }
        # Check before writing anything: a refused command leaves run.json as it was.
        self._record("plan", config, check_only=True)
        self.files.adopt_legacy(i.id for i in instances)
        done = {i.id: self._planned(i, model) for i in instances}
        self._record("plan", config)

        def prepare(instance: Instance) -> PlanRequest:
            return prepare_plan(
                instance.load(),
                instance.mode,
                k,
                model,
                client=self.client,
                api_base=api_base,
                paper_id=instance.id,
                **params,
            )

        async def work(instance: Instance, request: PlanRequest) -> None:
            result = await acomplete_plan(
                request,
                client=self.client,
                raw_dir=self.dir / "raw",
                timeout=timeout,
                deadline=deadline,
            )
            text = result.to_json() + "\n"
            await asyncio.to_thread(atomic_write_text, self.plan_path(instance.id), text)

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
        """Judge every plan that this judge has not judged yet."""
        instances = self.dataset()
        check_distinct(i.id for i in instances)
        self._record(f"judge:{judge.name}", {"judge": judge.name, "k": k})
        self.files.adopt_legacy((i.id for i in instances), judge=judge.name)

        def work(instance: Instance) -> None:
            plan = self.files.finished_plan(instance.id)
            if plan is None:
                raise AblationKitError("no plan for this paper (its planning failed?)")
            verdict = judge.judge(
                plan, instance.ground_truth, reviews=instance.reviews, title=instance.title, k=k
            )
            if not verdict.targets and instance.target_count:
                verdict.target_count = instance.target_count
            path = self.files.judgement_path(judge.name, instance.id)
            atomic_write_text(path, verdict.model_dump_json(indent=2) + "\n")
            if verdict.error:
                raise AblationKitError(f"judge: {verdict.error}")

        def judged(instance: Instance) -> bool:
            verdict = self.files.finished_judgement(judge.name, instance.id)
            return verdict is not None and verdict.error is None

        return self._stage(f"judge:{judge.name}", instances, judged, work, progress)

    def score(self, *, resamples: int = 1000) -> dict[str, Any]:
        """Scores of every judge in the run, written to ``scores.json``."""
        scores: dict[str, Any] = {}
        config = self.manifest()["stages"].get("plan", {}).get("config", {})

        def warn(message: str) -> None:
            warnings.warn(DamagedFileWarning(message), stacklevel=2)

        plans = self.files.read_plans(warn)
        costs = [p.usage.cost_usd for p in plans if p.usage]
        for name, verdicts in self.files.read_judgements(warn).items():
            scores[name] = aggregate(verdicts, resamples=resamples)
        result = {
            "model": config.get("model"),
            "mode": config.get("mode"),
            "k": config.get("k"),
            "dataset": config.get("dataset"),
            "plans": len(plans),
            "plan_cost_usd": None if any(c is None for c in costs) else sum(costs),
            "judges": scores,
        }
        atomic_write_text(self.dir / "scores.json", json.dumps(result, indent=2) + "\n")
        return result

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

        ``awork`` gets the result of ``prepare``, which a ``_Preparer`` thread runs ahead. The
        plan stage uses that path: at 50 requests in flight, 50 threads handing each request
        to the event loop and back cost ~20% of the wall time in interpreter-lock handoffs.
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
        existing = self.files.read_failures(repair=True)
        existing[stage] = report.failed
        atomic_write_text(self.files.failures_path, json.dumps(existing, indent=2) + "\n")
        return report

    async def _drive(
        self,
        pending: list[Instance],
        prepare: Callable[[Instance], Any] | None,
        awork: Callable[[Instance, Any], Awaitable[None]],
        record: Callable[[Instance, BaseException | None], None],
    ) -> None:
        preparer = _Preparer(prepare, pending) if prepare is not None else None
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def one(instance: Instance) -> None:
            async with gate:
                error: BaseException | None = None
                try:
                    value = await preparer.take(instance) if preparer is not None else None
                    await awork(instance, value)
                except Exception as exc:  # one paper's failure is recorded, never spread
                    error = exc
                record(instance, error)

        try:
            await asyncio.gather(*(one(instance) for instance in pending))
        finally:
            if preparer is not None:
                preparer.stop()


class _Preparer:
    """Runs the CPU half of each paper (load, view, hints, prompt) in one thread, in order,
    as far ahead of the workers as ``PREPARE_AHEAD`` papers.

    Why far ahead: with replies landing in waves, work that is prepared just in time competes
    for the interpreter with the handling of the wave; prepared early, it runs while every
    request is waiting on the model.
    """

    def __init__(self, prepare: Callable[[Instance], Any], pending: list[Instance]) -> None:
        self.prepare, self.pending = prepare, pending
        self.slots = threading.Semaphore(PREPARE_AHEAD)
        self.prepared: dict[str, Future[Any]] = {i.id: Future() for i in pending}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ablationkit-prepare", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for instance in self.pending:
            self.slots.acquire()
            if self.stopped.is_set():
                return
            future = self.prepared[instance.id]
            try:
                future.set_result(self.prepare(instance))
            except BaseException as exc:  # handed to that paper's worker as its failure
                future.set_exception(exc)
            # the event loop (sending, reading replies) goes first: without this it waits for
            # the interpreter lock up to 5 ms at every step while a paper is prepared
            time.sleep(0)

    async def take(self, instance: Instance) -> Any:
        """The prepared value of ``instance`` (its preparation's error is raised here)."""
        try:
            return await asyncio.wrap_future(self.prepared[instance.id])
        finally:
            self.slots.release()

    def stop(self) -> None:
        self.stopped.set()
        self.slots.release()


def make_judge(specs: Sequence[str], client: LMClient, api_base: str | None = None) -> Judge:
    """``["lm:openai/gpt-4o"]`` -> an LM judge; several -> their majority;
    ``["embedding"]`` -> the offline embedding judge."""
    if not specs:
        raise AblationKitError("give at least one judge (--judge MODEL, or --judge embedding)")
    if api_base:
        check_api_base(api_base)  # malformed: one error now, not one per paper
    judges: list[Judge] = []
    for spec in specs:
        if spec == "embedding" or spec.startswith("embedding@"):
            from ablationkit.judge.embedding import EmbeddingJudge

            threshold = float(spec.partition("@")[2]) if "@" in spec else None
            judges.append(EmbeddingJudge(threshold=threshold))
        else:
            judges.append(LMJudge(spec.removeprefix("lm:"), client=client, api_base=api_base))
    return judges[0] if len(judges) == 1 else MajorityJudge(judges)


def dry_run(
    dataset: str | Path,
    *,
    model: str,
    mode: str | None = None,
    k: int = 5,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    papers_root: str | Path | None = None,
) -> dict[str, Any]:
    """What a plan stage would send: requests, estimated prompt tokens and cost."""
    from ablationkit.lm.pricing import cost
    from ablationkit.lm.types import TokenUsage
    from ablationkit.papers import view
    from ablationkit.planner.budget import estimate_tokens
    from ablationkit.planner.core import REPLY_TOKENS, render_messages
    from ablationkit.planner.hints import extract_hints

    instances = load_dataset(
        dataset,
        mode=mode,
        ids=ids,
        limit=limit,
        papers_root=papers_root,  # type: ignore[arg-type]
    )
    prompt_tokens = 0
    failed: dict[str, str] = {}
    for instance in instances:
        try:
            paper_view = view(instance.load(), instance.mode)
        except AblationKitError as exc:
            failed[instance.id] = exc.one_line()
            continue
        text = paper_view.to_markdown()
        messages = render_messages(
            paper_view, instance.mode, k, paper_text=text, hints=extract_hints(text).render()
        )
        prompt_tokens += sum(estimate_tokens(m["content"]) for m in messages)
    requests = len(instances) - len(failed)
    typical_reply = min(REPLY_TOKENS, 150 * k + 300)
    estimate = cost(
        model, TokenUsage(prompt_tokens, typical_reply * requests), local=model.startswith("local")
    )
    return {
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens_estimate": typical_reply * requests,
        "cost_usd_estimate": estimate,
        "failed": failed,
    }
