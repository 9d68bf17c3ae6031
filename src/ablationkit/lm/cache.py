"""A persistent completion cache in SQLite: a rerun of the same requests costs nothing.

Keyed by ``request_key`` (model, endpoint, messages, parameters, schema). One database file
is shared by concurrent runs (WAL mode); writes are single transactions, so a killed run
never leaves a half-written entry.

``put_later`` hands a write to one writer thread that commits whatever has queued up in one
transaction: at 50 requests in flight, a commit per reply on the event loop's default executor
added about 100 ms to every request (thread hops under a busy interpreter lock).

The cache is best-effort: it can cost a rerun, never a failed one. A damaged file (not a
database, truncated, another schema) is set aside as ``<name>.corrupt-<UTC time>`` with one
warning and a new cache started; one that cannot be opened at all (a read-only folder, locked
for longer than the timeout) is replaced by a cache in memory for this process, with a warning.

``close`` writes what is queued, stops the writer thread and closes the connection; a closed
cache used again opens the file again (lazily), so closing never makes a later call fail.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
import warnings
import weakref
from pathlib import Path

from ablationkit.fsutil import DamagedFileWarning, load_json, set_aside
from ablationkit.lm.types import Completion

_COLUMNS = ["key", "model", "created", "data"]
# SQLite's result codes for a file that is not (or no longer) a database; "locked", "busy",
# "read-only" and the like are not damage: such a file is never set aside.
_DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class _NotACache(Exception):
    """A database whose ``completions`` table is not ours (another schema)."""


def _is_damage(exc: BaseException) -> bool:
    if isinstance(exc, _NotACache):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.DatabaseError) or code is None:
        return False
    return (code & 0xFF) in _DAMAGE_CODES  # the primary code, without the extended bits


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
        self._lock = threading.Lock()
        self._in_memory = False  # the file was unusable: this process keeps replies in memory
        self._conn: sqlite3.Connection | None = None  # None: closed (reopened on use)
        with self._lock:
            self._conn = self._open()
        self._pending: dict[str, tuple[str, str, float, str]] = {}  # queued, not yet written
        # Each writer thread has its own queue, ended by a None from ``close``.
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._flushed_at_exit = False
        self._idle = threading.Condition(self._lock)

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called and nothing has used the cache since."""
        return self._conn is None

    def _db(self) -> sqlite3.Connection:
        """The connection (lock held), opened again if the cache was closed."""
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    # ------------------------------------------------------------------ opening, recovering
    def _connect(self, target: str | Path) -> sqlite3.Connection:
        """A connection to a usable cache at ``target``; raises if the file is not one."""
        conn = sqlite3.connect(target, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL sync cannot corrupt the file; a power cut may lose the last
            # replies, which are then asked again: the right trade for a cache.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, "
                "created REAL, data TEXT)"
            )
            conn.commit()
            columns = [row[1] for row in conn.execute("PRAGMA table_info(completions)")]
            if columns != _COLUMNS:
                raise _NotACache(f"another schema: completions({', '.join(columns)})")
            conn.execute("SELECT key, data FROM completions LIMIT 1").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        """The cache file, or (damaged) a new one in its place, or (unusable) one in memory."""
        self._in_memory = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(self.path)
        except (sqlite3.Error, _NotACache, OSError) as exc:
            return self._replace(exc)

    def _replace(self, exc: BaseException) -> sqlite3.Connection:
        problem = " ".join(str(exc).split()) or type(exc).__name__
        if _is_damage(exc):
            try:
                aside = set_aside(self.path, f"damaged cache ({problem})", "a new one is started")
                for suffix in ("-wal", "-shm"):  # its journal must not be replayed into a new one
                    sidecar = self.path.with_name(self.path.name + suffix)
                    if sidecar.exists():
                        os.replace(sidecar, aside.with_name(aside.name + suffix))
                return self._connect(self.path)
            except (sqlite3.Error, _NotACache, OSError) as again:
                exc, problem = again, " ".join(str(again).split())
        warnings.warn(
            DamagedFileWarning(
                f"{self.path}: cannot use this cache ({problem}); replies are kept in memory only"
            ),
            stacklevel=3,
        )
        self._in_memory = True
        return self._connect(":memory:")

    def _recover(self, exc: sqlite3.Error) -> bool:
        """After ``exc`` from a query (lock held): if the file turned out damaged, set it aside
        and start a new one. Whether the query is worth repeating."""
        if not _is_damage(exc) or self._in_memory:
            return False
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = self._replace(exc)
        return True

    # ------------------------------------------------------------------ reading, writing
    def get(self, key: str) -> Completion | None:
        with self._lock:
            queued = self._pending.get(key)
            if queued:
                row: tuple[str] | None = (queued[3],)
            else:
                try:
                    row = (
                        self._db()
                        .execute("SELECT data FROM completions WHERE key = ?", (key,))
                        .fetchone()
                    )
                except sqlite3.Error as exc:  # a miss: the request is sent again
                    self._recover(exc)
                    row = None
        if row is None:
            return None
        try:
            return Completion.from_dict(load_json(row[0]))
        except (ValueError, TypeError, AttributeError):
            return None  # an entry from an incompatible version (or garbage): ask again

    def put_later(self, key: str, completion: Completion) -> None:
        """Queue a write for the writer thread; ``get`` sees it at once, ``flush`` waits."""
        row = self._row(key, completion)
        with self._lock:
            self._pending[key] = row
            if self._writer is None:
                self._queue = queue.SimpleQueue()
                self._writer = threading.Thread(
                    target=self._write_loop,
                    args=(self._queue,),
                    name="ablationkit-cache",
                    daemon=True,
                )
                self._writer.start()
                if not self._flushed_at_exit:
                    atexit.register(_flush_at_exit, weakref.ref(self))
                    self._flushed_at_exit = True
            self._queue.put(key)

    def flush(self) -> None:
        """Wait until every queued write is in the database."""
        with self._idle:
            self._idle.wait_for(lambda: not self._pending)

    def _write_loop(self, keys_queue: queue.SimpleQueue[str | None]) -> None:
        """Commit whatever has queued up, in one transaction each time, until a None."""
        running = True
        while running:
            received = [keys_queue.get()]
            while not keys_queue.empty():
                received.append(keys_queue.get())
            running = None not in received
            keys = [k for k in received if k is not None]
            with self._lock:
                rows = [self._pending[k] for k in dict.fromkeys(keys) if k in self._pending]
                for _attempt in range(2 if rows else 0):
                    try:
                        conn = self._db()
                        conn.executemany(
                            "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?)", rows
                        )
                        conn.commit()
                        break
                    except sqlite3.Error as exc:
                        # a cache that cannot be written costs reruns, never a failed run
                        if not self._recover(exc):
                            break
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
            try:
                return int(self._db().execute("SELECT COUNT(*) FROM completions").fetchone()[0])
            except sqlite3.Error as exc:
                self._recover(exc)
                return 0

    def close(self) -> None:
        """Write what is queued, stop the writer thread, close the connection. Using the cache
        afterwards opens it again."""
        self.flush()
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            writer.join()
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
