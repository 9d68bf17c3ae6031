"""Recorded replies for demos and tests: ``model="replay:path/to/recording.jsonl"``.

A recording is JSONL, one ``{"key", "model", "completion"}`` per request, written by
``LMClient(record_to=...)`` from any real backend. Replaying a request that was never
recorded is an error that names the request, not a silent empty reply.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ablationkit.lm.types import Completion, ModelUnavailableError


class ReplayStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, Completion] = {}
        if self.path.exists():
            for lineno, line in enumerate(self.path.read_text("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self._entries[entry["key"]] = Completion.from_dict(entry["completion"])
                except (ValueError, KeyError, TypeError):
                    raise ModelUnavailableError(
                        f"line {lineno}: not a recorded reply", where=self.path
                    ) from None

    def get(self, key: str) -> Completion | None:
        return self._entries.get(key)

    def record(self, key: str, completion: Completion) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = completion
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps(
                {"key": key, "model": completion.model, "completion": completion.to_dict()},
                ensure_ascii=False,
            )
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def __len__(self) -> int:
        return len(self._entries)
