"""``Planning``: the app's planning service. It admits plan requests, receives their papers and
plans each as a task on the server's event loop, whose events stream back as NDJSON.

Planning is a task on the server's event loop: when the browser goes away the task is cancelled,
which closes the model request (llama.cpp then stops generating) and frees the planning slot.
Uploads go to disk as they arrive and archives unpack in a thread; one paper is planned at a
time and at most ``max_queue`` more wait, so memory and CPU stay bounded whatever clients do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ablationkit.app.settings import AppSettings
from ablationkit.app.uploads import RequestRefused, UploadRejected, open_upload, receive_to_file
from ablationkit.errors import AblationKitError
from ablationkit.schema import Mode

if TYPE_CHECKING:
    from ablationkit.planner import PlanConfig, PlanProgress
    from ablationkit.planner.stream import PlanTracker

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_AFTER_S = 5
# Seconds between two ``progress`` events of a plan: the page's live line (prompt tokens
# processed / generated, rates, ETA) moves even while the model reads a long prompt, which
# on a CPU gives no other sign of life for minutes.
PROGRESS_EVERY_S = 1.0


async def thread_to_the_end(func: Callable[[], T]) -> T:
    """``func()`` in a thread, awaited. A thread cannot be stopped: if the caller is cancelled
    meanwhile, this still waits for the thread to end before passing the cancellation on, so
    the planning slot and the upload's folder stay held until nothing uses them."""
    future = asyncio.get_running_loop().run_in_executor(None, func)
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return future.result()


def _event(kind: str, **data: Any) -> bytes:
    return (json.dumps({"type": kind, **data}, ensure_ascii=False) + "\n").encode("utf-8")


class PlanJob:
    """One accepted plan request: its events (pushed from any thread) and its task."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def push(self, kind: str, **data: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, _event(kind, **data))

    def finish(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    async def events(self) -> AsyncIterator[bytes]:
        while (item := await self.queue.get()) is not None:
            yield item

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class PlanResponse(StreamingResponse):
    """The job's events as NDJSON; however the response ends (done, client gone, send
    failed), the job is cancelled, so abandoned work stops."""

    def __init__(self, job: PlanJob) -> None:
        super().__init__(
            job.events(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"}
        )
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


class Places:
    """Admission: the paper being planned plus ``waiting`` more; the rest get 429. Used only
    from the event loop, so a plain counter is enough."""

    def __init__(self, waiting: int) -> None:
        self.size = 1 + max(0, waiting)
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.size:
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        self.taken = max(0, self.taken - 1)


class Planning:
    """What the app plans with (one client, one planning slot, the places in the queue) and
    the three steps of a plan request: choose its settings, receive its paper, plan it."""

    def __init__(self, settings: AppSettings) -> None:
        from ablationkit.lm import LMClient

        self.settings = settings
        self.client = LMClient(cache=settings.cache)
        self.slot = asyncio.Semaphore(1)  # the embedded model plans one paper at a time
        self.places = Places(settings.max_queue)
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def config(self, mode: Mode, model: str | None, k: int | None) -> PlanConfig:
        """The plan settings a request may choose (mode, an offered model, k); the rest are
        the app's own."""
        from ablationkit.planner import PlanConfig

        settings = self.settings
        chosen = model or settings.model
        if chosen not in settings.offered_models:
            raise RequestRefused(
                f"model {chosen!r} is not offered by this app "
                "(its owner can add it with --offer-model)",
                status=403,
            )
        try:
            return PlanConfig(
                mode=mode, k=k or settings.k, model=chosen, api_base=settings.api_base
            )
        except (ValueError, AblationKitError) as exc:  # pydantic's is a ValueError
            raise RequestRefused(f"cannot plan with these settings ({exc})", status=422) from None

    def check_declared_size(self, content_length: str | None) -> None:
        """Refuse an upload whose declared size is over the limit before reading its body."""
        limit = self.settings.max_upload_bytes
        if content_length and content_length.isdigit() and int(content_length) > limit:
            raise UploadRejected(
                f"upload larger than the {self.settings.max_upload_mb} MB limit", status=413
            )

    async def accept(self, request: Request, name: str, config: PlanConfig) -> Response:
        """Take a place, receive the paper, start planning it: the response streams the
        plan's events. 429 when the queue is full; the place is given back if the paper
        never arrives."""
        if not self.places.take():
            return JSONResponse(
                {"detail": "busy: the app is already planning and its queue is full; try again"},
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        try:
            paper_path, workdir = await self._receive(request, name)
        except BaseException as exc:
            self.places.give_back()
            if isinstance(exc, ClientDisconnect):  # gone mid-upload: nobody reads an answer
                return Response(status_code=400)
            raise
        return self._start(paper_path, workdir, config)

    async def _receive(
        self, request: Request, name: str
    ) -> tuple[Path, tempfile.TemporaryDirectory[str]]:
        """The upload, written to a new temporary folder as it arrives and unpacked there (in
        a thread); the folder is removed again if anything fails."""
        limit = self.settings.max_upload_bytes
        workdir = tempfile.TemporaryDirectory(prefix="ablationkit-app-")
        try:
            upload = Path(workdir.name) / name
            await receive_to_file(request.stream(), upload, limit)
            paper_path = await thread_to_the_end(
                partial(open_upload, upload, Path(workdir.name), max_bytes=limit)
            )
        except BaseException:
            workdir.cleanup()
            raise
        return paper_path, workdir

    def _start(
        self, paper_path: Path, workdir: tempfile.TemporaryDirectory[str], config: PlanConfig
    ) -> PlanResponse:
        job = PlanJob()
        job.task = asyncio.create_task(self._plan(job, paper_path, workdir, config))
        self._tasks.add(job.task)
        job.task.add_done_callback(self._tasks.discard)
        return PlanResponse(job)

    async def _plan(
        self,
        job: PlanJob,
        paper_path: Path,
        workdir: tempfile.TemporaryDirectory[str],
        config: PlanConfig,
    ) -> None:
        """Plan on this event loop (``aplan``'s two halves: the paper is prepared in a thread,
        the model call awaited here), holding the slot, the place and the folder until done
        or cancelled."""
        from ablationkit.lm.progress import listening
        from ablationkit.planner import acomplete_plan, prepare_plan
        from ablationkit.planner.ids import paper_id_for
        from ablationkit.planner.stream import PlanTracker

        hide = f"{workdir.name}/"  # the server's temporary folder is not shown
        progress = _progress(job, hide)
        titles: list[str] = []
        progress.on_paper = lambda paper: titles.append(paper.title)
        try:
            if self.slot.locked():
                job.push("stage", message="waiting for the paper before this one")
            async with self.slot:
                job.push("stage", message=f"planning with {config.model}")
                prepared = await thread_to_the_end(
                    partial(prepare_plan, paper_path, config, client=self.client, progress=progress)
                )
                # named by the upload or its title, never by our temporary folder
                prepared.paper_id = paper_id_for(
                    paper_path, titles[-1] if titles else None, within=Path(workdir.name)
                )
                tracker = await asyncio.to_thread(PlanTracker.for_request, prepared)
                with listening(tracker):
                    ticker = asyncio.create_task(_tick(job, tracker))
                    try:
                        result = await acomplete_plan(
                            prepared,
                            client=self.client,
                            raw_dir=Path(workdir.name) / "raw",
                            progress=progress,
                        )
                    finally:
                        ticker.cancel()
                        tracker.finish(wait=False)  # rates recorded in the background
            job.push("plan", plan=json.loads(result.to_json()))
        except AblationKitError as exc:
            from ablationkit.lm.keys import redact  # no API key in what the page shows

            job.push("error", message=redact(exc.one_line()).replace(hide, ""))
        except Exception:  # the page must hear about it; the log has the traceback
            log.exception("planning failed")
            job.push("error", message="internal error while planning (see the server log)")
        finally:
            job.finish()
            self.places.give_back()
            workdir.cleanup()


async def _tick(job: PlanJob, tracker: PlanTracker) -> None:
    """The plan's ``progress`` events: one at once (before the model is even called), then
    every ``PROGRESS_EVERY_S`` seconds until cancelled."""
    while True:
        job.push("progress", **tracker.view().to_event())
        await asyncio.sleep(PROGRESS_EVERY_S)


def _progress(job: PlanJob, hide: str) -> PlanProgress:
    """The planner's stages, reasoning and retries as the job's events, without ``hide``."""
    from ablationkit.planner import PlanProgress
    from ablationkit.planner.stream import ReasoningStream

    stream = ReasoningStream(lambda text: job.push("reasoning", text=text))

    def stage(message: str) -> None:
        stream.reset()  # stages come between calls: the next text is a new reply
        job.push("stage", message=message.replace(hide, ""))

    return PlanProgress(
        on_stage=stage,
        on_token=stream,
        on_retry=stream.retry,
    )
