"""``create_app``: the local planning web app (FastAPI), and ``serve`` to run it.

Why FastAPI and not Gradio: Gradio brings a large dependency tree, loads web fonts from a CDN
and sends analytics unless told not to; this app must work offline and stay small. One page of
plain HTML and JavaScript talks to three endpoints; the plan streams back as NDJSON events.

Requests that spend model calls need the ``X-AblationKit`` header, which a page from another
site cannot send without a CORS preflight this app never grants, and the ``Host`` header must
name this app (``localhost``, the host it was started with, or an IP address), which stops
DNS-rebinding pages from reaching it. Only the models it was started with can be used.

Planning is a task on the server's event loop: when the browser goes away the task is cancelled,
which closes the model request (llama.cpp then stops generating) and frees the planning slot.
Uploads go to disk as they arrive and archives unpack in a thread; one paper is planned at a
time and at most ``max_queue`` more wait, so memory and CPU stay bounded whatever clients do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ablationkit.app.uploads import (
    PAPER_SUFFIXES,
    RequestRefused,
    UploadRejected,
    open_upload,
    read_limited,
    receive_to_file,
    safe_filename,
)
from ablationkit.errors import AblationKitError
from ablationkit.schema import Mode

if TYPE_CHECKING:
    from ablationkit.planner import PlanConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER = "x-ablationkit"
RETRY_AFTER_S = 5
MAX_EXPORT_BYTES = 1024 * 1024  # an edited plan is a few kB
CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


@dataclass
class AppSettings:
    model: str = "local"
    api_base: str | None = None
    k: int = 5
    max_upload_mb: int = 50
    host: str = "127.0.0.1"
    port: int = 8765
    models: list[str] = field(default_factory=list)
    cache: bool | str = True
    max_queue: int = 2  # plan requests waiting behind the one being planned; beyond: 429

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def offered_models(self) -> list[str]:
        """The only model ids a page may ask for: ``--model`` and every ``--offer-model``."""
        return list(dict.fromkeys([self.model, *self.models]))

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"


def url_host(host: str) -> str:
    """``host`` as it is written in a URL or Host header: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _is_ip(name: str, version: int) -> bool:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.version == version


def host_allowed(header: str | None, bound: str, port: int) -> bool:
    """Whether a request's ``Host`` header names this app: ``localhost``, the host it is bound
    to, or any IP address (IPv6 in brackets), with its port.

    A DNS-rebinding page reaches us under its own domain name, which is refused; a literal
    address is never the name of someone else's page.
    """
    if not header:
        return False
    value = header.strip().lower()
    port_text: str | None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or not _is_ip(name, 6) or (rest and not rest.startswith(":")):
            return False
        port_text, literal = (rest[1:] if rest else None), True
    else:
        name, colon, after = value.partition(":")
        if ":" in after:  # an IPv6 address without brackets is not a valid Host
            return False
        port_text, literal = (after if colon else None), _is_ip(name, 4)
    port_ok = (port_text if port_text is not None else "80") == str(port)  # no port: 80
    return port_ok and (literal or name in {"localhost", bound.lower().strip("[]")})


class _Guard:
    """The Host check, the ``X-AblationKit`` header on POSTs and the security headers.

    Plain ASGI rather than ``@app.middleware`` (``BaseHTTPMiddleware``): nothing is relayed
    through an extra task and memory stream, so the streaming plan response talks to the server
    directly, disconnects included.
    """

    def __init__(self, app: ASGIApp, settings: AppSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Content-Security-Policy"] = CSP
            await send(message)

        headers = Headers(scope=scope)
        settings = self.settings
        refusal: Response | None = None
        if settings.port and not host_allowed(headers.get("host"), settings.host, settings.port):
            refusal = JSONResponse({"detail": "unexpected Host header"}, status_code=421)
        elif scope["method"] == "POST" and headers.get(HEADER) != "1":
            refusal = JSONResponse({"detail": f"missing {HEADER} header"}, status_code=403)
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        await self.app(scope, receive, secured)


async def _thread_to_the_end(func: Callable[[], T]) -> T:
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


class _PlanJob:
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


class _PlanResponse(StreamingResponse):
    """The job's events as NDJSON; however the response ends (done, client gone, send
    failed), the job is cancelled, so abandoned work stops."""

    def __init__(self, job: _PlanJob) -> None:
        super().__init__(
            job.events(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"}
        )
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


class _Places:
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


def create_app(settings: AppSettings | None = None) -> FastAPI:
    """The FastAPI application; ``uvicorn`` or any ASGI server can run it."""
    from ablationkit.lm import LMClient

    settings = settings or AppSettings()
    app = FastAPI(title="AblationKit", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Guard, settings=settings)
    client = LMClient(cache=settings.cache)
    one_at_a_time = asyncio.Semaphore(1)  # the embedded model plans one paper at a time
    places = _Places(settings.max_queue)
    jobs: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks
    page = (resources.files("ablationkit.app") / "page.html").read_text("utf-8")

    @app.exception_handler(RequestRefused)
    async def refused(request: Request, exc: RequestRefused) -> Any:
        return JSONResponse({"detail": exc.one_line()}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)  # no icon, and no 404 in the browser console

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return {
            "model": settings.model,
            "models": settings.offered_models,
            "k": settings.k,
            "max_upload_mb": settings.max_upload_mb,
            "suffixes": [*PAPER_SUFFIXES, ".zip", ".tar.gz"],
        }

    @app.post("/api/plan")
    async def plan_paper(
        request: Request,
        filename: str = Query(..., description="The uploaded file's name"),
        mode: Annotated[Mode, Query(description="author or reviewer (schema.Mode)")] = "author",
        model: str | None = Query(None, max_length=200),
        k: int | None = Query(None, ge=1, le=20),
    ) -> Any:
        name = safe_filename(filename)
        chosen = model or settings.model
        if chosen not in settings.offered_models:
            raise RequestRefused(
                f"model {chosen!r} is not offered by this app "
                "(its owner can add it with --offer-model)",
                status=403,
            )
        config = _plan_config(mode, chosen, k or settings.k)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes:
            raise UploadRejected(
                f"upload larger than the {settings.max_upload_mb} MB limit", status=413
            )
        if not places.take():
            return JSONResponse(
                {"detail": "busy: the app is already planning and its queue is full; try again"},
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        workdir = tempfile.TemporaryDirectory(prefix="ablationkit-app-")
        try:
            upload = Path(workdir.name) / name
            await receive_to_file(request.stream(), upload, settings.max_upload_bytes)
            paper_path = await _thread_to_the_end(
                partial(
                    open_upload, upload, Path(workdir.name), max_bytes=settings.max_upload_bytes
                )
            )
        except BaseException as exc:
            places.give_back()
            workdir.cleanup()
            if isinstance(exc, ClientDisconnect):  # gone mid-upload: nobody reads an answer
                return Response(status_code=400)
            raise
        job = _PlanJob()
        job.task = asyncio.create_task(_plan(job, paper_path, workdir, config))
        jobs.add(job.task)
        job.task.add_done_callback(jobs.discard)
        return _PlanResponse(job)

    def _plan_config(mode: Mode, model: str, k: int) -> PlanConfig:
        """The plan settings a request may choose (mode, an offered model, k); the rest are
        the app's own."""
        from ablationkit.planner import PlanConfig

        try:
            return PlanConfig(mode=mode, k=k, model=model, api_base=settings.api_base)
        except (ValueError, AblationKitError) as exc:  # pydantic's is a ValueError
            raise RequestRefused(f"cannot plan with these settings ({exc})", status=422) from None

    async def _plan(
        job: _PlanJob,
        paper_path: Path,
        workdir: tempfile.TemporaryDirectory[str],
        config: PlanConfig,
    ) -> None:
        """Plan on this event loop (``aplan``'s two halves: the paper is prepared in a thread,
        the model call awaited here), holding the slot, the place and the folder until done
        or cancelled."""
        from ablationkit.planner import PlanProgress, acomplete_plan, prepare_plan
        from ablationkit.planner.stream import ReasoningStream

        hide = f"{workdir.name}/"  # the server's temporary folder is not shown
        stream = ReasoningStream(lambda text: job.push("reasoning", text=text))
        progress = PlanProgress(
            on_stage=lambda message: job.push("stage", message=message.replace(hide, "")),
            on_token=stream,
            on_retry=stream.retry,
        )
        try:
            if one_at_a_time.locked():
                job.push("stage", message="waiting for the paper before this one")
            async with one_at_a_time:
                job.push("stage", message=f"planning with {config.model}")
                prepared = await _thread_to_the_end(
                    partial(prepare_plan, paper_path, config, client=client, progress=progress)
                )
                result = await acomplete_plan(
                    prepared, client=client, raw_dir=Path(workdir.name) / "raw", progress=progress
                )
            job.push("plan", plan=json.loads(result.to_json()))
        except AblationKitError as exc:
            from ablationkit.lm.keys import redact  # no API key in what the page shows

            job.push("error", message=redact(exc.one_line()).replace(hide, ""))
        except Exception:  # the page must hear about it; the log has the traceback
            log.exception("planning failed")
            job.push("error", message="internal error while planning (see the server log)")
        finally:
            job.finish()
            places.give_back()
            workdir.cleanup()

    @app.post("/api/export")
    async def export(request: Request, format: str = Query("json", pattern="^(json|md)$")) -> Any:
        from pydantic import ValidationError

        from ablationkit.errors import describe_validation
        from ablationkit.fsutil import safe_name
        from ablationkit.schema import Plan
        from ablationkit.trajectory import render_trajectory

        body = await read_limited(request.stream(), MAX_EXPORT_BYTES)
        try:
            edited = Plan.model_validate_json(body)
        except ValidationError as exc:
            return JSONResponse({"detail": describe_validation(exc)}, status_code=422)
        stem = safe_name(edited.paper_id, "plan")
        if format == "md":
            text, media, name = render_trajectory(edited), "text/markdown", f"{stem}.md"
        else:
            text, media, name = edited.to_json() + "\n", "application/json", f"{stem}.json"
        return Response(
            text.encode("utf-8"),
            media_type=f"{media}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    app.state.settings = settings
    app.state.client = client
    app.state.places = places
    return app


def serve(settings: AppSettings) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


class AppServer:
    """The app on a real port in a background thread (tests, notebooks): a context manager
    whose ``url`` is ready when ``with`` enters. Port 0 picks a free one."""

    def __init__(self, settings: AppSettings | None = None) -> None:
        import socket

        self.settings = settings or AppSettings()
        if not self.settings.port:
            family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
            with socket.socket(family) as probe:
                probe.bind((self.settings.host, 0))
                self.settings.port = probe.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.settings.url

    def __enter__(self) -> AppServer:
        import time

        import uvicorn

        config = uvicorn.Config(
            create_app(self.settings),
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="ablationkit-app", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AblationKitError("the app did not start", where=self.url)
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
