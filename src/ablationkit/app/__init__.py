"""The local web app: upload or paste a paper, watch the plan's reasoning stream in, edit the
plan, download it as JSON or trajectory markdown. ``create_app`` builds it, ``serve`` runs it.
Needs the ``app`` extra (FastAPI, uvicorn)."""

from ablationkit.app.server import AppServer, create_app, serve
from ablationkit.app.settings import AppSettings
from ablationkit.app.uploads import UploadRejected, safe_filename, unpack

__all__ = [
    "AppServer",
    "AppSettings",
    "UploadRejected",
    "create_app",
    "safe_filename",
    "serve",
    "unpack",
]
