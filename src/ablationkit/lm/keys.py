"""API keys: from the environment or a ``.env`` file, and never into any output.

``redact`` is the one redactor. Every path by which text leaves the program goes through it:
model errors (where a provider may echo the key it was sent), the CLI's one-line errors and
``--debug`` tracebacks, log records (``RedactingFilter`` on the handler the CLI installs), and
the files a run writes. It hides every key value this process knows (the key variables, key
values read from ``.env``, keys handed to a client, passwords in a server URL) and anything
shaped like a credential (``Authorization`` headers, ``sk-…`` tokens, ``user:pass@`` in URLs,
``?key=`` and ``api_key=`` parameters), so a server that echoes what it received cannot put
the key on a terminal, in a log or in a shared run directory.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "ABLATIONKIT_API_KEY",
    "VLLM_API_KEY",
)
MASK = "***"
# A shorter value would hide ordinary words; real keys are far longer than this.
MIN_SECRET_LENGTH = 6

_loaded: set[Path] = set()
_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# Names of variables that hold a credential, besides KEY_VARIABLES (HF_TOKEN, GROQ_API_KEY, …).
_SECRET_NAME = re.compile(r"(API_?KEY|_TOKEN|_SECRET(_KEY)?|_PASSWORD|_PASSWD)$", re.IGNORECASE)
# Tokens with a provider's prefix: OpenAI / Anthropic / DeepSeek, Google, Hugging Face, Groq,
# xAI, GitHub.
_KEYLIKE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{8,}"
    r"|github_pat_[A-Za-z0-9_]{20,})"
)
# Authorization / Proxy-Authorization as a header line, a JSON or dict entry: the credential,
# with or without its scheme.
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(bearer|basic|token|digest)\s+)?([^\s\"',;}\]]+)"
)
# "Bearer <token>" wherever it appears (a token has a digit; "bearer of news" is left alone).
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?=[A-Za-z._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{6,}")
# api_key=…, "api_key": "…", x-api-key: …, password=… (not null/true/false: JSON stays valid).
_NAMED = re.compile(
    r"(?i)\b((?:x-)?api[-_]?key|apikey|access[-_]?token|refresh[-_]?token|client[-_]?secret"
    r"|password|passwd)([\"']?\s*[:=]\s*[\"']?)"
    r"(?!(?:null|none|true|false)\b)([^\s\"'&,;}\])]+)"
)
# ?key=…, &token=… in a URL's query.
_QUERY = re.compile(
    r"(?i)([?&](?:key|api[-_]?key|apikey|access[-_]?token|token|auth|secret|password|sig)=)"
    r"[^&#\s\"'<>]+"
)
# scheme://user:password@host and scheme://token@host.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/?#\s@:\"'<>]*)(?::([^/?#\s@\"'<>]*))?@")


def register_secret(value: str | None) -> None:
    """Hide ``value`` (and its URL-encoded form) in all output from now on.

    For keys that are not in a variable ``redact`` reads: a key handed to a client, a
    password in a server URL, a key variable's value from ``.env``.
    """
    if not value:
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets.update({value, quote(value, safe=""), unquote(value)})


def register_url_secrets(url: str | None) -> None:
    """Register the password (or the lone user name, often a token) of ``user:pass@`` in a
    URL, so a server that quotes it decoded or in another form still cannot show it."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:
        return
    register_secret(password if password else user)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    return name in KEY_VARIABLES or bool(_SECRET_NAME.search(name))


def load_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """Read ``KEY=VALUE`` lines into ``os.environ`` without overriding what is already set.

    Credential values read here are registered for redaction even when the environment's own
    value wins, since either may be what a server was sent.
    """
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
            if is_secret_name(name):
                register_secret(value)
    return found


def api_key(variable: str | None) -> str | None:
    if not variable:
        return None
    load_dotenv()
    value = os.environ.get(variable, "").strip()
    return value or None


def known_secrets() -> list[str]:
    """Every key value to hide, longest first (so a key containing another is hidden whole)."""
    values = {
        value.strip()
        for name, value in os.environ.items()
        if is_secret_name(name) and len(value.strip()) >= MIN_SECRET_LENGTH
    }
    with _secrets_lock:
        values |= _secrets
    return sorted(values, key=len, reverse=True)


def _userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match.group(1), match.group(2), match.group(3)
    if password is None:
        return f"{scheme}{MASK}@"  # a lone user name here is usually a token
    return f"{scheme}{user}:{MASK}@"


def _auth_header(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{MASK}"


def redact(text: str) -> str:
    """``text`` with every known key value and every credential-shaped string as ``***``."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(_userinfo, text)
    text = _AUTH_HEADER.sub(_auth_header, text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    text = _NAMED.sub(rf"\1\2{MASK}", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    return _KEYLIKE.sub(MASK, text)


def format_exception(exc: BaseException) -> str:
    """A traceback (with its chained causes) as ``--debug`` shows it, redacted: the causes
    are where a provider's raw error body, and so an echoed key, would be."""
    return redact("".join(traceback.format_exception(exc)))


class RedactingFilter(logging.Filter):
    """Redacts a record's message, traceback and stack before any handler formats it.

    Put it on a handler (a filter on a logger does not see records of child loggers): the CLI
    installs one on its root handler, so records of httpx, openai and ours all pass here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it as it is, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_handler: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, so a test runner's capture works."""

    @property
    def stream(self) -> object:
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def install_log_redaction(debug: bool = False) -> logging.Handler:
    """The CLI's root log handler, on stderr and redacting: warnings normally; with ``debug``,
    our debug records and other libraries' info (httpx's request lines) too. Calling it again
    only changes the levels."""
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = _StderrHandler()
        _handler.addFilter(RedactingFilter())
        root.addHandler(_handler)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if debug else "%(message)s"
    _handler.setFormatter(logging.Formatter(fmt))
    root.setLevel(logging.INFO if debug else logging.WARNING)
    logging.getLogger("ablationkit").setLevel(logging.DEBUG if debug else logging.NOTSET)
    return _handler
