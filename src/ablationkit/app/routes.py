"""The app's HTTP routes, one router per group: the page and its configuration, planning
(``/api/plan``, handed to ``Planning``), and export of an edited plan. One plain HTML page of
JavaScript talks to these three endpoints; the plan streams back as NDJSON events.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ablationkit.app.planning import Planning
from ablationkit.app.settings import AppSettings
from ablationkit.app.uploads import PAPER_SUFFIXES, RequestRefused, read_limited, safe_filename
from ablationkit.schema import Mode

MAX_EXPORT_BYTES = 1024 * 1024  # an edited plan is a few kB


def add_error_handlers(app: FastAPI) -> None:
    """A refused request is one JSON ``detail`` line with its own status."""

    @app.exception_handler(RequestRefused)
    async def refused(request: Request, exc: RequestRefused) -> Any:
        return JSONResponse({"detail": exc.one_line()}, status_code=exc.status)


def page_routes(settings: AppSettings) -> APIRouter:
    """The page (read once) and what it needs to know of the app's settings."""
    router = APIRouter()
    page = (resources.files("ablationkit.app") / "page.html").read_text("utf-8")

    @router.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @router.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)  # no icon, and no 404 in the browser console

    @router.get("/api/config")
    async def config() -> dict[str, Any]:
        return {
            "model": settings.model,
            "models": settings.offered_models,
            "k": settings.k,
            "max_upload_mb": settings.max_upload_mb,
            "suffixes": [*PAPER_SUFFIXES, ".zip", ".tar.gz"],
            # whether to ask /api/results at all: its 404 for a paper without results is a
            # console error in every browser, on every plan of an app started without them
            "results": bool(settings.results),
        }

    return router


def plan_routes(planning: Planning) -> APIRouter:
    """``POST /api/plan``: the paper is the body, the settings are query parameters; checks
    that need no body come first, then ``planning`` takes over."""
    router = APIRouter()

    @router.post("/api/plan")
    async def plan_paper(
        request: Request,
        filename: Annotated[str, Query(description="The uploaded file's name")],
        mode: Annotated[Mode, Query(description="author or reviewer (schema.Mode)")] = "author",
        model: Annotated[str | None, Query(max_length=200)] = None,
        k: Annotated[int | None, Query(ge=1, le=20)] = None,
    ) -> Any:
        name = safe_filename(filename)
        config = planning.config(mode, model, k)
        planning.check_declared_size(request.headers.get("content-length"))
        return await planning.accept(request, name, config)

    return router


def results_routes(settings: AppSettings) -> APIRouter:
    """``GET /api/results/{paper_id}``: the ablation table of a paper whose results folder the
    app was started with (``serve --results DIR``), so the page shows it beside the plan; and
    its chart. Only those folders are read, each once, at start."""
    from ablationkit.runs.results import load_results, table_view

    tables: dict[str, dict[str, Any]] = {}
    charts: dict[str, bytes] = {}
    for folder in settings.results:
        table, chart = load_results(folder)
        view = table_view(table)
        tables[table.paper_id] = {
            "paper_id": table.paper_id,
            "header": view.header,
            "rows": view.rows,
            "legend": view.legend,
            "problems": view.problems,
            "unmapped": view.unmapped,
            "chart": chart is not None,
        }
        if chart is not None:
            charts[table.paper_id] = chart.read_bytes()
    router = APIRouter()

    @router.get("/api/results/{paper_id}")
    async def results(paper_id: str) -> Any:
        if paper_id not in tables:
            return JSONResponse({"detail": f"no results for {paper_id}"}, status_code=404)
        return tables[paper_id]

    @router.get("/api/results/{paper_id}/chart.png")
    async def results_chart(paper_id: str) -> Response:
        if paper_id not in charts:
            return JSONResponse({"detail": f"no chart for {paper_id}"}, status_code=404)
        return Response(charts[paper_id], media_type="image/png")

    return router


def export_routes() -> APIRouter:
    """``POST /api/export``: an edited plan back as a JSON or trajectory-markdown download."""
    router = APIRouter()

    @router.post("/api/export")
    async def export(
        request: Request, format: Annotated[str, Query(pattern="^(json|md)$")] = "json"
    ) -> Any:
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

    return router
