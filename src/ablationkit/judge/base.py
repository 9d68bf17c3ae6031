"""What every judge is: a coroutine ``ajudge`` that runs on its client's event loop, and the
synchronous ``judge`` made from it once, here, for every judge.

Why async: a benchmark judges hundreds of plans, each plan possibly by several models, and the
model calls are almost all waiting. Coroutines on the client's one loop (as the planner runs)
wait together; the thread pools they replace cost a thread per call in flight and interpreter
lock handoffs at every reply. A majority judge gathers its judges' coroutines; the bench judge
stage and ``evaluate_judge`` gather plans.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ablationkit.schema import Ablation, Judgement, Plan

if TYPE_CHECKING:
    from ablationkit.lm.client import LMClient

T = TypeVar("T")


class Judge(Protocol):
    """A judge: ``ajudge`` on an event loop, ``judge`` from synchronous code.

    ``abstract`` and ``paper_source`` are for judges that show the model the paper (the
    reference protocol's); others ignore them. ``needs_paper_source(mode)`` says whether the
    caller should read the paper's source files for a plan of that mode at all.
    """

    name: str

    def needs_paper_source(self, mode: str) -> bool: ...

    def settings(self) -> dict[str, Any]: ...

    async def ajudge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement: ...

    def judge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement: ...


def blank_judgement(judge: str, plan: Plan, targets: Sequence[Ablation], k: int) -> Judgement:
    """A verdict with no matches yet: what a judge fills in (or leaves, with an error)."""
    return Judgement(
        judge=judge,
        paper_id=plan.paper_id,
        mode=plan.mode,
        k=k,
        planned=[a.name for a in plan.ablations[:k]],
        targets=[a.name for a in targets],
    )


def run_coroutine(coro: Coroutine[Any, Any, T], client: LMClient | None) -> T:
    """Run ``coro`` to the end from synchronous code.

    With a client: on the client's long-lived loop (its HTTP connections and concurrency limit
    are kept between calls), then wait until its replies are in the cache. Without one (a judge
    that calls no model): here, on a new loop; or, when this thread already runs a loop (as in
    Jupyter), on a new loop in a short-lived thread, since a running loop cannot be re-entered.
    """
    if client is not None:
        result = client.run_sync(coro)
        client.flush()  # waits here, in the caller's thread, never on the event loop
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, asyncio.run(coro)))
        except BaseException as exc:  # handed back to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="ablationkit-judge")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class JudgeBase:
    """The shared half of every judge: ``judge`` runs ``ajudge`` on the judge's client.

    A subclass writes ``ajudge`` only; ``loop_client`` names the client whose loop the
    synchronous call uses (None: the judge calls no model) and ``needs_paper_source`` whether
    its prompts show the paper's source.
    """

    name: str

    def loop_client(self) -> LMClient | None:
        return getattr(self, "client", None)

    def needs_paper_source(self, mode: str) -> bool:
        return False

    def settings(self) -> dict[str, Any]:
        """What the verdicts depend on beyond the judge's name (recorded with the run; a run
        refuses to mix verdicts made with other settings under one name)."""
        return {"protocol": "ablationkit"}

    async def ajudge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement:
        raise NotImplementedError

    def judge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement:
        """``ajudge`` for synchronous code; the judge's replies are cached when it returns."""
        return run_coroutine(
            self.ajudge(
                plan,
                targets,
                reviews=reviews,
                title=title,
                abstract=abstract,
                paper_source=paper_source,
                k=k,
            ),
            self.loop_client(),
        )
