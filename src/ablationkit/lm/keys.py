"""API keys: from the environment or a ``.env`` file, and never into any output.

Every message that leaves the model layer goes through ``redact`` so that a provider echoing
a key in an error body, or a key pasted into a URL, cannot reach a log or a terminal.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "ABLATIONKIT_API_KEY",
    "VLLM_API_KEY",
)
_loaded: set[Path] = set()
_KEYLIKE = re.compile(
    r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,})"
)


def load_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """Read ``KEY=VALUE`` lines into ``os.environ`` without overriding what is already set."""
    path = Path(path).resolve()
    found: dict[str, str] = {}
    if path in _loaded or not path.is_file():
        return found
    _loaded.add(path)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.removeprefix("export ").split("=", 1)
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            found[name] = value
            os.environ.setdefault(name, value)
    return found


def api_key(variable: str | None) -> str | None:
    if not variable:
        return None
    load_dotenv()
    value = os.environ.get(variable, "").strip()
    return value or None


def redact(text: str) -> str:
    """Replace every configured key, and anything shaped like a key, with ``***``."""
    for variable in KEY_VARIABLES:
        value = os.environ.get(variable, "")
        if len(value) >= 6:
            text = text.replace(value, "***")
    text = re.sub(r"(://[^/\s:@]+:)[^@\s/]+@", r"\1***@", text)  # user:secret@host
    return _KEYLIKE.sub("***", text)
