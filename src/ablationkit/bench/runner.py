"""Resumable batch runs: plan, judge and score a dataset into a run directory.

Layout::

    RUN/run.json                      the configuration of every stage run so far
    RUN/plans/<id>.json               one plan per paper
    RUN/judgements/<judge>/<id>.json  one verdict per paper per judge
    RUN/scores.json                   P/R/F1 per judge
    RUN/lm-cache.sqlite               every model reply of the run

Every file is written atomically when its paper is done, so a run killed at any point
resumes by skipping what exists; model calls that completed before the kill are answered
from the run's cache, so they are not paid for twice. One failing paper never stops the
others: failures are collected and listed at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablationkit import __version__
from ablationkit.bench.datasets import Instance, load_dataset
from ablationkit.errors import AblationKitError
from ablationkit.fsutil import atomic_write_text, safe_name
from ablationkit.judge.lm_judge import Judge, LMJudge, MajorityJudge
from ablationkit.judge.metrics import aggregate
from ablationkit.lm.client import LMClient
from ablationkit.lm.keys import redact
from ablationkit.schema import Judgement, Plan

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


def slug(text: str) -> str:
    return safe_name(text, "x")


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
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client = client or LMClient(
            concurrency=concurrency, cache=self.dir / "lm-cache.sqlite"
        )
        self.concurrency = concurrency
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ manifest
    @property
    def manifest_path(self) -> Path:
        return self.dir / "run.json"

    def manifest(self) -> dict[str, Any]:
        if self.manifest_path.is_file():
            data: dict[str, Any] = json.loads(self.manifest_path.read_text("utf-8"))
            return data
        return {"version": __version__, "created": time.time(), "stages": {}}

    def _record(self, stage: str, config: dict[str, Any]) -> None:
        # An api_base may carry credentials (https://user:key@host): never write them.
        config = json.loads(redact(json.dumps(config)))
        with self._lock:
            manifest = self.manifest()
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
        return self.dir / "plans"

    def plan_path(self, instance_id: str) -> Path:
        return self.plans_dir() / f"{slug(instance_id)}.json"

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
        **params: Any,
    ) -> StageReport:
        """Plan every instance that has no plan yet."""
        from ablationkit.planner import acomplete_plan, prepare_plan

        instances = load_dataset(
            dataset,
            mode=mode,  # type: ignore[arg-type]
            ids=ids,
            limit=limit,
            papers_root=papers_root,
        )
        self._record(
            "plan",
            {
                "dataset": str(dataset),
                "model": model,
                "mode": mode,
                "k": k,
                "api_base": api_base,
                "ids": list(ids) if ids else None,
                "limit": limit,
                "papers_root": str(papers_root) if papers_root else None,
                "params": params,
            },
        )

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
            result = await acomplete_plan(request, client=self.client, raw_dir=self.dir / "raw")
            text = result.to_json() + "\n"
            await asyncio.to_thread(atomic_write_text, self.plan_path(instance.id), text)

        return self._stage(
            "plan", instances, self.plan_path, progress=progress, prepare=prepare, awork=work
        )

    def judge(
        self, judge: Judge, *, k: int | None = None, progress: Progress | None = None
    ) -> StageReport:
        """Judge every plan that this judge has not judged yet."""
        instances = self.dataset()
        directory = self.dir / "judgements" / slug(judge.name)
        self._record(f"judge:{judge.name}", {"judge": judge.name, "k": k})

        def path(instance_id: str) -> Path:
            return directory / f"{slug(instance_id)}.json"

        def work(instance: Instance) -> None:
            plan_file = self.plan_path(instance.id)
            if not plan_file.is_file():
                raise AblationKitError("no plan for this paper (its planning failed?)")
            plan = Plan.model_validate_json(plan_file.read_text("utf-8"))
            verdict = judge.judge(
                plan, instance.ground_truth, reviews=instance.reviews, title=instance.title, k=k
            )
            if not verdict.targets and instance.target_count:
                verdict.target_count = instance.target_count
            atomic_write_text(path(instance.id), verdict.model_dump_json(indent=2) + "\n")
            if verdict.error:
                raise AblationKitError(f"judge: {verdict.error}")

        return self._stage(
            f"judge:{judge.name}",
            instances,
            path,
            work,
            progress,
            done_when=lambda p: (
                p.is_file() and json.loads(p.read_text("utf-8")).get("error") is None
            ),
        )

    def score(self, *, resamples: int = 1000) -> dict[str, Any]:
        """Scores of every judge in the run, written to ``scores.json``."""
        scores: dict[str, Any] = {}
        judgements_root = self.dir / "judgements"
        plan_files = sorted(self.plans_dir().glob("*.json")) if self.plans_dir().is_dir() else []
        plans = [Plan.model_validate_json(p.read_text("utf-8")) for p in plan_files]
        costs = [p.usage.cost_usd for p in plans if p.usage]
        for directory in sorted(judgements_root.iterdir()) if judgements_root.is_dir() else []:
            verdicts = [
                Judgement.model_validate_json(p.read_text("utf-8"))
                for p in sorted(directory.glob("*.json"))
            ]
            if verdicts:
                scores[verdicts[0].judge] = aggregate(verdicts, resamples=resamples)
        config = self.manifest()["stages"].get("plan", {}).get("config", {})
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
        path: Callable[[str], Path],
        work: Callable[[Instance], None] | None = None,
        progress: Progress | None = None,
        done_when: Callable[[Path], bool] | None = None,
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
        done_when = done_when or (lambda p: p.is_file())
        pending = []
        for instance in instances:
            if done_when(path(instance.id)):
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
            elif isinstance(error, AblationKitError):
                report.failed[instance.id] = error.one_line()
            else:
                report.failed[instance.id] = f"{type(error).__name__}: {error}"
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
        failures = self.dir / "failures.json"
        existing = json.loads(failures.read_text("utf-8")) if failures.is_file() else {}
        existing[stage] = report.failed
        atomic_write_text(failures, json.dumps(existing, indent=2) + "\n")
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
