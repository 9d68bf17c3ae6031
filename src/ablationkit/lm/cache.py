"""A persistent completion cache in SQLite: a rerun of the same requests costs nothing.

Keyed by ``request_key`` (model, endpoint, messages, parameters, schema). One database file
is shared by concurrent runs (WAL mode); writes are single transactions, so a killed run
never leaves a half-written entry.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from ablationkit.lm.types import Completion


def default_cache_dir() -> Path:
    base = os.environ.get("ABLATIONKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ablationkit"
    )
    return Path(base)


class CompletionCache:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_cache_dir() / "completions.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL sync cannot corrupt the file; a power cut may lose the last
            # replies, which are then asked again: the right trade for a cache.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, "
                "created REAL, data TEXT)"
            )
            self._conn.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM completions WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        try:
            return Completion.from_dict(json.loads(row[0]))
        except (ValueError, TypeError):
            return None  # an entry from an incompatible version: ask again

    def put(self, key: str, completion: Completion) -> None:
        data = json.dumps(completion.to_dict(), ensure_ascii=False)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)",
                (key, completion.model, time.time(), data),
            )
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
