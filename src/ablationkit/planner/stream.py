"""Show the reasoning of a JSON reply while it streams: the text of the ``"reasoning"``
string, unescaped, as it arrives; nothing of the JSON around it. A retry arrives as an event
(``retry``), never as text in the stream."""

from __future__ import annotations

import json
from collections.abc import Callable

from ablationkit.lm.retry import RetryEvent


class ReasoningStream:
    """Feed it streamed pieces; it calls ``emit`` with readable reasoning text only."""

    _KEY = '"reasoning"'

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.buffer = ""
        self.state = "before"  # before -> inside -> after
        self.escape = ""

    def retry(self, event: RetryEvent) -> None:
        """The call is tried again (``PlanProgress.on_retry``): say so, and read the new
        reply from its start; what was shown of the old one stays, marked void."""
        self.emit(f"\n[retrying: {event.reason}]\n")
        self.buffer, self.state, self.escape = "", "before", ""

    def __call__(self, piece: str) -> None:
        if self.state == "after":
            return
        self.buffer += piece
        if self.state == "before":
            at = self.buffer.find(self._KEY)
            if at < 0:
                return
            rest = self.buffer[at + len(self._KEY) :]
            colon = rest.find(":")
            quote = rest.find('"', colon + 1) if colon >= 0 else -1
            if quote < 0:
                return
            self.buffer = rest[quote + 1 :]
            self.state = "inside"
        self._drain()

    def _drain(self) -> None:
        out = []
        text, self.buffer = self.escape + self.buffer, ""
        self.escape = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                end = i + 6 if text[i + 1 : i + 2] == "u" else i + 2
                if end > len(text):
                    self.escape = text[i:]
                    break
                try:
                    out.append(json.loads(f'"{text[i:end]}"'))
                except json.JSONDecodeError:
                    out.append(text[i:end])
                i = end
                continue
            if ch == '"':
                self.state = "after"
                break
            out.append(ch)
            i += 1
        if out:
            self.emit("".join(out))
