"""The app's front door: the ``Host`` check, the ``X-AblationKit`` header on POSTs and the
security headers on every response.

Requests that spend model calls need the ``X-AblationKit`` header, which a page from another
site cannot send without a CORS preflight this app never grants, and the ``Host`` header must
name this app (``localhost``, the host it was started with, or an IP address), which stops
DNS-rebinding pages from reaching it.
"""

from __future__ import annotations

import ipaddress

from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ablationkit.app.settings import AppSettings

HEADER = "x-ablationkit"
CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


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


class Guard:
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

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    def _refusal(self, scope: Scope) -> Response | None:
        """The answer for a request that may not pass, or None."""
        headers = Headers(scope=scope)
        settings = self.settings
        if settings.port and not host_allowed(headers.get("host"), settings.host, settings.port):
            return JSONResponse({"detail": "unexpected Host header"}, status_code=421)
        if scope["method"] == "POST" and headers.get(HEADER) != "1":
            return JSONResponse({"detail": f"missing {HEADER} header"}, status_code=403)
        return None
