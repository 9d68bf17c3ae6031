"""``AppSettings``: what the web app was started with (models offered, k, limits, address).

Its own module so that the guard, the routes and the planning service can all read it without
importing the server that assembles them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    results: list[str] = field(default_factory=list)  # `ablationkit results` folders (issue 14)

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
