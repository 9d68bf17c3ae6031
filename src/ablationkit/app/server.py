"""``create_app``: the local planning web app (FastAPI), ``serve`` to run it and ``AppServer``
to run it in a background thread.

Why FastAPI and not Gradio: Gradio brings a large dependency tree, loads web fonts from a CDN
and sends analytics unless told not to; this app must work offline and stay small.

The app is assembled here from pieces with one job each: ``settings`` (what it was started
with), ``guard`` (Host check, the ``X-AblationKit`` header, security headers), ``routes`` (the
page, planning and export endpoints), ``planning`` (admission, uploads, the plan task and its
event stream) and ``uploads`` (receiving and unpacking papers safely). Only the models it was
started with can be used.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI

from ablationkit.app.guard import Guard
from ablationkit.app.planning import Planning
from ablationkit.app.routes import (
    add_error_handlers,
    export_routes,
    page_routes,
    plan_routes,
    results_routes,
)
from ablationkit.app.settings import AppSettings
from ablationkit.errors import AblationKitError

__all__ = ["AppServer", "AppSettings", "create_app", "serve"]


def create_app(settings: AppSettings | None = None) -> FastAPI:
    """The FastAPI application; ``uvicorn`` or any ASGI server can run it."""
    settings = settings or AppSettings()
    app = FastAPI(title="AblationKit", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, settings=settings)
    add_error_handlers(app)
    planning = Planning(settings)
    app.include_router(page_routes(settings))
    app.include_router(plan_routes(planning))
    app.include_router(export_routes())
    app.include_router(results_routes(settings))
    app.state.settings = settings
    app.state.planning = planning
    app.state.client = planning.client
    app.state.places = planning.places
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
