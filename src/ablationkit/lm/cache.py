"""A persistent completion cache in SQLite: a rerun of the same requests costs nothing.

Keyed by ``request_key`` (model, endpoint, messages, parameters, schema). One database file
is shared by concurrent runs (WAL mode); writes are single transactions, so a killed run
never leaves a half-written entry.

``put_later`` hands a write to one writer thread that commits whatever has queued up in one
transaction: at 50 requests in flight, a commit per reply on the event loop's default executor
added about 100 ms to every request (thread hops under a busy interpreter lock).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from ablationkit.lm.types import Completion


def _flush_at_exit(cache: weakref.ref[CompletionCache]) -> None:
    """Queued writes reach the database before the interpreter exits (a weak reference, so
    registering does not keep every cache alive)."""
    alive = cache()
    if alive is not None:
        alive.flush()


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
        self._pending: dict[str, tuple[str, str, float, str]] = {}  # queued, not yet written
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            queued = self._pending.get(key)
            row = (
                (queued[3],)
                if queued
                else self._conn.execute(
                    "SELECT data FROM completions WHERE key = ?", (key,)
                ).fetchone()
            )
        if row is None:
            return None
        try:
            return Completion.from_dict(json.loads(row[0]))
        except (ValueError, TypeError):
            return None  # an entry from an incompatible version: ask again

    def put_later(self, key: str, completion: Completion) -> None:
        """Queue a write for the writer thread; ``get`` sees it at once, ``flush`` waits."""
        row = self._row(key, completion)
        with self._lock:
            self._pending[key] = row
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="ablationkit-cache", daemon=True
                )
                self._writer.start()
                atexit.register(_flush_at_exit, weakref.ref(self))
        self._queue.put(key)

    def flush(self) -> None:
        """Wait until every queued write is in the database."""
        with self._idle:
            self._idle.wait_for(lambda: not self._pending)

    def _write_loop(self) -> None:
        while True:
            keys = [self._queue.get()]
            while not self._queue.empty():
                keys.append(self._queue.get())
            with self._lock:
                rows = [self._pending[k] for k in dict.fromkeys(keys) if k in self._pending]
                try:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)", rows
                    )
                    self._conn.commit()
                except sqlite3.Error:
                    pass  # a cache that cannot be written costs reruns, never a failed run
                for row in rows:
                    if self._pending.get(row[0]) is row:
                        del self._pending[row[0]]
                self._idle.notify_all()

    @staticmethod
    def _row(key: str, completion: Completion) -> tuple[str, str, float, str]:
        data = json.dumps(completion.to_dict(), ensure_ascii=False)
        return (key, completion.model, time.time(), data)

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._conn.close()
