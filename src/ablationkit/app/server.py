"""``create_app``: the local planning web app (FastAPI), and ``serve`` to run it.

Why FastAPI and not Gradio: Gradio brings a large dependency tree, loads web fonts from a CDN
and sends analytics unless told not to; this app must work offline and stay small. One page of
plain HTML and JavaScript talks to three endpoints; the plan streams back as NDJSON events.

Requests that spend model calls need the ``X-AblationKit`` header, which a page from another
site cannot send without a CORS preflight this app never grants, and the ``Host`` header must be
the one the app is bound to, which stops DNS-rebinding pages from reaching it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from ablationkit.app.uploads import PAPER_SUFFIXES, UploadRejected, materialise, read_limited
from ablationkit.errors import AblationKitError

log = logging.getLogger(__name__)

HEADER = "x-ablationkit"


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

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _event(kind: str, **data: Any) -> bytes:
    return (json.dumps({"type": kind, **data}, ensure_ascii=False) + "\n").encode("utf-8")


def create_app(settings: AppSettings | None = None) -> FastAPI:
    """The FastAPI application; ``uvicorn`` or any ASGI server can run it."""
    from ablationkit.lm import LMClient

    settings = settings or AppSettings()
    app = FastAPI(title="AblationKit", docs_url=None, redoc_url=None, openapi_url=None)
    client = LMClient(cache=settings.cache)
    one_at_a_time = asyncio.Semaphore(1)  # the embedded model plans one paper at a time
    page = (resources.files("ablationkit.app") / "page.html").read_text("utf-8")
    allowed_hosts = {f"{settings.host}:{settings.port}"}
    if settings.host in {"127.0.0.1", "localhost", "::1"}:
        allowed_hosts |= {f"127.0.0.1:{settings.port}", f"localhost:{settings.port}"}

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if settings.port and request.headers.get("host") not in allowed_hosts:
            return JSONResponse({"detail": "unexpected Host header"}, status_code=421)
        if request.method == "POST" and request.headers.get(HEADER) != "1":
            return JSONResponse({"detail": f"missing {HEADER} header"}, status_code=403)
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
        )
        return response

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, exc: UploadRejected) -> Any:
        return JSONResponse({"detail": exc.one_line()}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)  # no icon, and no 404 in the browser console

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        from ablationkit.lm.inventory import inventory

        ready = [e.model for e in inventory() if e.ready and "<" not in e.model]
        models = list(dict.fromkeys([settings.model, *settings.models, *ready]))
        return {
            "model": settings.model,
            "models": models,
            "k": settings.k,
            "max_upload_mb": settings.max_upload_mb,
            "suffixes": [*PAPER_SUFFIXES, ".zip", ".tar.gz"],
        }

    @app.post("/api/plan")
    async def plan_paper(
        request: Request,
        filename: str = Query(..., description="The uploaded file's name"),
        mode: str = Query("author", pattern="^(author|reviewer)$"),
        model: str | None = Query(None, max_length=200),
        k: int = Query(5, ge=1, le=20),
    ) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes:
            raise UploadRejected(
                f"upload larger than the {settings.max_upload_mb} MB limit", status=413
            )
        data = await read_limited(request.stream(), settings.max_upload_bytes)
        workdir = tempfile.TemporaryDirectory(prefix="ablationkit-app-")
        try:
            paper_path = materialise(
                filename, data, Path(workdir.name), max_bytes=settings.max_upload_bytes
            )
        except BaseException:
            workdir.cleanup()
            raise
        return StreamingResponse(
            _plan_events(paper_path, workdir, mode, model or settings.model, k),
            media_type="application/x-ndjson",
            headers={"Cache-Control": "no-store"},
        )

    async def _plan_events(paper_path: Path, workdir: Any, mode: str, model: str, k: int) -> Any:
        from ablationkit.planner import PlanProgress, plan
        from ablationkit.planner.stream import ReasoningStream

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def push(kind: str, **data: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, _event(kind, **data))

        progress = PlanProgress(
            on_stage=lambda message: push("stage", message=message.replace(f"{workdir.name}/", "")),
            on_token=ReasoningStream(lambda text: push("reasoning", text=text)),
        )

        def work() -> None:
            try:
                result = plan(
                    paper_path,
                    mode,  # type: ignore[arg-type]
                    k,
                    model,
                    client=client,
                    api_base=settings.api_base,
                    raw_dir=Path(workdir.name) / "raw",
                    progress=progress,
                )
                push("plan", plan=json.loads(result.to_json()))
            except AblationKitError as exc:
                push("error", message=exc.one_line())
            except Exception:  # the page must hear about it; the log has the traceback
                log.exception("planning failed")
                push("error", message="internal error while planning (see the server log)")
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        try:
            if one_at_a_time.locked():
                yield _event("stage", message="waiting for the paper before this one")
            async with one_at_a_time:
                yield _event("stage", message=f"planning with {model}")
                threading.Thread(target=work, name="ablationkit-app-plan", daemon=True).start()
                while (item := await queue.get()) is not None:
                    yield item
        finally:
            workdir.cleanup()

    @app.post("/api/export")
    async def export(request: Request, format: str = Query("json", pattern="^(json|md)$")) -> Any:
        from pydantic import ValidationError

        from ablationkit.errors import describe_validation
        from ablationkit.fsutil import safe_name
        from ablationkit.schema import Plan
        from ablationkit.trajectory import render_trajectory

        body = await read_limited(request.stream(), 5 * 1024 * 1024)
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
            with socket.socket() as probe:
                probe.bind((self.settings.host, 0))
                self.settings.port = probe.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

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
