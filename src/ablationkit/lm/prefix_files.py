"""The computed system prompt of the embedded model, kept on disk from one run to the next.

Every plan of a mode opens with the same system prompt (364 tokens of the default model in
author mode). llama.cpp reuses a computed prefix only within its process, and a CLI plan is
one process: each ``ablationkit plan`` read those tokens again, about 7 s on two cores, a
tenth of the 6,000-token paper's plan that issue 16 asks to fit in 120 s.

So before the first request that opens with a system prompt, the embedded server restores
that prompt's KV state from a file (3 ms for 10 MB on the default model), or computes it with
a one-token request on the system prompt alone (what the request that follows would have
computed anyway) and saves it for the next run. A file is keyed by everything its numbers
depend on: the weights file, the runtime's version, the KV settings and the prompt's text.
Any failure (an old or torn file, a full disk, a busy slot) only means the prompt is computed
as before; a plan never fails for this cache. ``ABLATIONKIT_LOCAL_PREFIX_FILES=0`` turns it
off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

KEEP = 8  # newest files kept (10 MB each on the default model; one per mode and model)
_SUFFIX = ".bin"


def runtime_key(weights: Path, settings: str) -> str:
    """What a saved state's numbers depend on besides the prompt: the weights file, the
    runtime's version and its KV settings."""
    stat = weights.stat()
    try:
        runtime = metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        runtime = "?"
    return "\n".join(
        [str(weights.resolve()), str(stat.st_size), str(stat.st_mtime_ns), runtime, settings]
    )


def prefix_name(key: str, system: str) -> str:
    """The file name of ``system``'s KV state under ``runtime_key``'s ``key``."""
    digest = hashlib.sha256(f"{key}\n\n{system}".encode()).hexdigest()[:24]
    return f"prefix-{digest}{_SUFFIX}"


class PrefixFiles:
    """One embedded server's system prompts on disk (``directory``, given to llama.cpp as its
    ``slot_save_path``). ``complete`` is the server's in-process chat call; ``root`` its
    loopback address, whose ``/slots`` endpoint saves and restores slot 0."""

    def __init__(
        self,
        directory: Path,
        root: str,
        weights: Path,
        settings: str,
        complete: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.directory = directory
        self._root = root.rstrip("/")
        self._key = runtime_key(weights, settings)  # once: it reads package metadata
        self._complete = complete
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.restored = 0  # prompts restored from a file in this process
        self.saved = 0  # prompts computed here and saved

    def reuse(self, messages: Sequence[dict[str, Any]]) -> None:
        """Make slot 0 hold the KV state of ``messages``' system prompt, once per prompt and
        process (later requests reuse it, or the slot's own cache does)."""
        if not messages or messages[0].get("role") != "system":
            return
        system = messages[0]
        text = str(system.get("content", ""))
        with self._lock:
            if text in self._seen:
                return
            self._seen.add(text)
            name = prefix_name(self._key, text)
            path = self.directory / name
            with contextlib.suppress(Exception):  # best effort, see the module docstring
                if path.is_file():
                    if self._slot("restore", name):
                        os.utime(path)  # the newest are kept
                        self.restored += 1
                        return
                    path.unlink(missing_ok=True)  # torn or from another build: redo it
                self._complete({"messages": [system], "max_tokens": 1, "temperature": 0})
                partial = f"{name}.part"
                if self._slot("save", partial):
                    os.replace(self.directory / partial, path)
                    self.saved += 1
                    self._prune()

    def _slot(self, action: str, filename: str) -> bool:
        request = urllib.request.Request(
            f"{self._root}/slots/0?action={action}",
            data=json.dumps({"filename": filename}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                reply = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return isinstance(reply, dict) and "error" not in reply

    def _prune(self) -> None:
        files = sorted(self.directory.glob(f"prefix-*{_SUFFIX}"), key=lambda p: p.stat().st_mtime)
        for old in files[:-KEEP]:
            old.unlink(missing_ok=True)
        for torn in self.directory.glob(f"prefix-*{_SUFFIX}.part"):  # a killed run's
            if time.time() - torn.stat().st_mtime > 600:  # not one being written now
                torn.unlink(missing_ok=True)
