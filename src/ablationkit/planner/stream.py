"""What a plan shows while it works.

- ``ReasoningStream``: the reasoning of a JSON reply while it streams: the text of the
  ``"reasoning"`` string, unescaped, as it arrives; nothing of the JSON around it. A retry
  arrives as an event (``retry``), never as text in the stream.
- ``PlanTracker`` / ``ProgressView``: where the model calls are (prompt tokens processed of
  the total, tokens generated, rates, an ETA), the same figures for the terminal, the logs
  (``LogTicker``) and the app: on a CPU a long prompt takes minutes before the first token.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ablationkit.lm.progress import PromptProgress, RateBook, Rates
from ablationkit.lm.retry import RetryEvent

if TYPE_CHECKING:
    from ablationkit.planner.core import PlanRequest


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
        self.reset()

    def reset(self) -> None:
        """The next piece begins a new reply (the planner says a stage between two calls: a
        repair, a follow-up): a reply stopped inside its reasoning must not leave the next
        one's JSON shown as reasoning."""
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


# --------------------------------------------------------------------------- progress


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a status line."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def typical_reply_tokens(k: int, max_tokens: int) -> int:
    """Tokens a plan's reply usually has: a reasoning of at most 800 characters and k items
    (stored plans of the embedded model: 212-562 tokens at k = 5), never over the limit."""
    return min(max_tokens, 100 + 80 * k)


@dataclass(frozen=True)
class ProgressView:
    """What every display shows of a plan's model calls at one moment. Figures the server
    reported are exact; the rest are estimates (``~`` in ``line``): prompt tokens between two
    of the server's reports, and every rate not measured in this call."""

    model: str
    # "starting": the embedded model has not reported yet (it may be loading); "waiting": a
    # server that does not report its prompt has it; "prompt"; "generating"
    phase: str
    call: int
    prompt_total: int
    prompt_done: int
    prompt_exact: bool
    prompt_rate: float | None
    prompt_rate_exact: bool
    prompt_rate_is_bound: bool  # slower than this: no report came when it said one would
    generated: int
    generation_rate: float | None
    generation_rate_exact: bool
    elapsed: float
    eta: float | None
    eta_is_bound: bool  # the reply is past its usual length: the ETA is to its token limit
    basis: str  # where estimated rates come from

    def line(self, *, elapsed: bool = True, calls: bool = True) -> str:
        """One line for a terminal or a log: ``local · prompt 2,048/6,257 tokens · 48 tok/s ·
        ETA ~1m35s · 42s elapsed`` (a batch's line leaves out the time and call number that
        its own line already has or that mean nothing across papers)."""
        parts = [self.model if self.call == 1 or not calls else f"{self.model} (call {self.call})"]
        if self.phase == "generating":
            parts.append(f"generated {self.generated:,} tokens")
            if self.generation_rate:
                parts.append(_rate(self.generation_rate, self.generation_rate_exact))
        elif self.phase == "waiting":
            if self.prompt_total:
                parts.append(f"prompt of {self.prompt_total:,} tokens sent")
            parts.append("waiting for the first token")
        elif not self.prompt_total:  # a batch's next call: its size comes with its first report
            parts.append("starting")
        else:
            done = f"{'' if self.prompt_exact else '~'}{self.prompt_done:,}"
            parts.append(f"prompt {done}/{self.prompt_total:,} tokens")
            if self.prompt_rate and self.prompt_rate_is_bound:
                parts.append(f"< {self.prompt_rate:.1f} tok/s")
            elif self.prompt_rate:
                parts.append(_rate(self.prompt_rate, self.prompt_rate_exact))
            if self.phase == "starting":
                parts.append("starting")
        if self.eta is not None:
            parts.append(f"ETA {'≤ ' if self.eta_is_bound else '~'}{duration(self.eta)}")
        if elapsed:
            parts.append(f"{duration(self.elapsed)} elapsed")
        return " · ".join(parts)

    def to_event(self) -> dict[str, Any]:
        """The app's ``progress`` event: the figures, and the line the page shows."""
        data = asdict(self)
        data["text"] = self.line()
        data["fraction"] = self.fraction
        return data

    @property
    def fraction(self) -> float | None:
        """Share of the prompt processed (the longest silent part on a CPU), for a bar."""
        if self.phase == "generating":
            return 1.0
        if self.phase == "waiting":
            return None
        return self.prompt_done / self.prompt_total if self.prompt_total else None


def _rate(value: float, exact: bool) -> str:
    return f"{'' if exact else '~'}{value:.1f} tok/s"


class PlanTracker:
    """Follows the model calls of one plan (or of a batch, one call after another) and says
    where they are: a ``StreamListener`` (``lm.progress.listening``) fed by the HTTP backend
    with llama.cpp's prompt reports and the streamed text, read by displays with ``view``.

    Before the server's first report (model loading, queueing) the prompt size is ours
    (``begin``) and the ETA comes from the ``RateBook``: rates measured on this machine, else
    calibrated ones, shown with ``~``. Calls of the embedded model feed the book with what
    they measured, so the next run's first ETA is this machine's. ``clock`` is injectable so
    that tests drive time."""

    MIN_PROMPT_SAMPLE = 64  # tokens processed (not cached) before a prompt rate is recorded
    MIN_GENERATION_SAMPLE = 16

    def __init__(
        self,
        model: str,
        *,
        embedded: bool = True,
        expected_reply: int = 500,
        max_reply: int | None = None,
        book: RateBook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.embedded = embedded  # reports its prompt; calls one at a time; rates kept
        self.expected_reply = expected_reply
        self.max_reply = max_reply
        self.clock = clock
        self.book = (book or RateBook()) if embedded else None
        self.rates: Rates | None = self.book.rates(model) if self.book is not None else None
        self._lock = threading.Lock()
        self._savers: list[threading.Thread] = []
        self.started = clock()
        self.call = 0
        self.session_prompt: float | None = None  # measured by earlier calls of this tracker
        self.session_generation: float | None = None
        self.batch: int | None = None  # tokens between two prompt reports, once seen
        self._new_call(0)

    @classmethod
    def for_request(cls, request: PlanRequest, **kwargs: Any) -> PlanTracker:
        """A tracker for one prepared plan, begun with its prompt size."""
        from ablationkit.planner.core import on_this_machine

        local = on_this_machine(request.model)
        limit = request.config.reply_tokens_for(local)
        tracker = cls(
            request.model.id,
            embedded=request.model.local,
            expected_reply=typical_reply_tokens(request.k, limit),
            max_reply=limit,
            **kwargs,
        )
        tracker.begin(request.prompt_tokens)
        return tracker

    def _new_call(self, prompt_tokens: int) -> None:
        self.call += 1
        self.prompt_total = prompt_tokens
        self.reported: PromptProgress | None = None
        self.reported_at = 0.0
        self.generated = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.prompt_recorded = False
        self.closed = False  # its generation rate is taken (once)

    def begin(self, prompt_tokens: int) -> None:
        """A call of about ``prompt_tokens`` (our count) is about to be sent."""
        with self._lock:
            if self.reported is not None or self.generated:
                self._close_call()
                self._new_call(prompt_tokens)
            else:
                self.prompt_total = prompt_tokens

    # -- StreamListener
    def prompt(self, event: PromptProgress) -> None:
        with self._lock:
            last = self.reported
            if self.generated or (last is not None and event.processed < last.processed):
                self._close_call()  # a new call (a repair, a follow-up, a retry, the next paper)
                self._new_call(event.total)
                last = None
            if last is not None and not event.done and event.processed > last.processed:
                self.batch = event.processed - last.processed  # the runtime's batch size
            self.reported, self.reported_at = event, self.clock()
            self.prompt_total = event.total
            fresh = event.processed - event.cached
            if fresh > 0 and event.ms > 0:
                self.session_prompt = fresh / (event.ms / 1000)  # the next calls' estimate
                if event.done and fresh >= self.MIN_PROMPT_SAMPLE and not self.prompt_recorded:
                    self.prompt_recorded = True
                    self._save(prompt=self.session_prompt)

    def token(self, piece: str) -> None:
        with self._lock:
            now = self.clock()
            if self.first_token_at is None:
                self.first_token_at = now
            self.last_token_at = now
            # llama.cpp streams a token per chunk; a whole reply (cached) comes in one piece
            self.generated += 1 if len(piece) <= 32 else max(1, len(piece) // 4)

    # -- reading
    def _generation_rate(self) -> tuple[float | None, bool]:
        """This call's tokens/s (exact), else an earlier call's, else the book's."""
        first, last = self.first_token_at, self.last_token_at
        if first is not None and last is not None and self.generated >= 3 and last > first:
            return (self.generated - 1) / (last - first), True
        if self.session_generation is not None:
            return self.session_generation, False
        return (self.rates.generation if self.rates else None), False

    def _prompt_rate(self) -> tuple[float | None, bool]:
        """The server's prompt tokens/s in this call (exact), else in an earlier call, else
        the book's."""
        event = self.reported
        if event is not None and event.ms > 0 and event.processed > event.cached:
            return (event.processed - event.cached) / (event.ms / 1000), True
        if self.session_prompt is not None:
            return self.session_prompt, False
        return (self.rates.prompt if self.rates else None), False

    def view(self) -> ProgressView:
        with self._lock:
            now = self.clock()
            prate, prate_exact = self._prompt_rate()
            grate, grate_exact = self._generation_rate()
            prompt_seconds: float | None = None  # left of the prompt
            rate_bound = False
            event = self.reported
            total = self.prompt_total
            if self.generated:
                phase, done, exact = "generating", total, True
            elif event is None:
                phase, done, exact = ("starting" if self.embedded else "waiting"), 0, True
            else:
                phase, done, exact = "prompt", event.processed, True
                since = now - self.reported_at
                # the server's next report: after its next batch, or at the end
                upto = min(total, event.processed + (self.batch or total))
                left = upto - event.processed
                if not event.done and prate and since > 0 and left > 0:  # between reports
                    share = prate * since / left  # of the batch, at the rate we know
                    if share <= 0.9:
                        guess = event.processed + prate * since
                    else:
                        # no report yet, so slower than that: the estimate slows down and
                        # never reaches the report's figure first; the rate shown is what we
                        # know of it (an upper bound); the ETA has this batch take as long
                        # again as the wait so far, and the rest go at the rate that implies
                        guess = event.processed + left * (1 - 0.09 / share)
                        prompt_seconds = since + (total - upto) * 2 * since / left
                        prate, prate_exact, rate_bound = left / since, False, True
                    if int(guess) > done:
                        done, exact = int(guess), False
            if prompt_seconds is None and prate and total:
                prompt_seconds = max(total - done, 0) / prate
            eta, bound = self._eta(phase, prompt_seconds, grate)
            return ProgressView(
                model=self.model,
                phase=phase,
                call=self.call,
                prompt_total=total,
                prompt_done=done,
                prompt_exact=exact,
                prompt_rate=prate,
                prompt_rate_exact=prate_exact,
                prompt_rate_is_bound=rate_bound,
                generated=self.generated,
                generation_rate=grate,
                generation_rate_exact=grate_exact,
                elapsed=now - self.started,
                eta=eta,
                eta_is_bound=bound,
                basis=self.rates.basis if self.rates else "",
            )

    def _eta(
        self, phase: str, prompt_seconds: float | None, grate: float | None
    ) -> tuple[float | None, bool]:
        if not grate:
            return None, False
        if phase == "generating":
            if self.generated < self.expected_reply:
                return (self.expected_reply - self.generated) / grate, False
            if self.max_reply is not None and self.generated < self.max_reply:
                return (self.max_reply - self.generated) / grate, True
            return None, False
        if prompt_seconds is None:  # no prompt size or rate yet: no honest ETA
            return None, False
        return prompt_seconds + self.expected_reply / grate, False

    # -- measurements
    def _close_call(self) -> None:
        """The current call is over: keep its generation rate if it ran here (prompt reports
        come only from the embedded model, which computes one call at a time)."""
        if self.closed:
            return
        self.closed = True
        rate, exact = self._generation_rate()
        enough = self.generated >= self.MIN_GENERATION_SAMPLE
        if exact and rate and enough:
            self.session_generation = rate
            if self.reported is not None:
                self._save(generation=rate)

    def _save(self, **rates: float) -> None:
        """Record in the background: the caller may be an event loop."""
        if self.book is None:
            return
        thread = threading.Thread(target=self.book.record, args=(self.model,), kwargs=rates)
        thread.daemon = True
        thread.start()
        self._savers.append(thread)

    def finish(self, *, wait: bool = True) -> None:
        """The plan (or batch) is done: record the last call's rates and (``wait``) wait for
        the writes; an event loop does not wait, the writes end on their own."""
        with self._lock:
            self._close_call()
            savers, self._savers = self._savers, []
        for thread in savers if wait else ():
            thread.join(timeout=5)


class LogTicker:
    """A progress line every ``every`` seconds (and one at once) for a log: when stderr is not
    a terminal, nothing else would say for minutes that the work goes on. A daemon thread;
    ``stop`` ends it."""

    def __init__(
        self, describe: Callable[[], str | None], emit: Callable[[str], None], every: float
    ) -> None:
        self.describe, self.emit, self.every = describe, emit, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ablationkit-progress", daemon=True)

    def start(self) -> LogTicker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                line = self.describe()  # None: nothing to say yet
                if line is not None:
                    self.emit(line)
            except Exception:  # a broken display must not take the run down
                return
            if self._stop.wait(self.every):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> LogTicker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def progress_every(default: float = 10.0) -> float:
    """Seconds between log lines: ``ABLATIONKIT_PROGRESS_EVERY`` (at least 0.05), else 10."""
    raw = os.environ.get("ABLATIONKIT_PROGRESS_EVERY", "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return max(value, 0.05)


class PlanDisplay:
    """The plan command's stderr while it works: stage lines, the reasoning as it streams
    (dimmed), and the progress of the model calls (``tracking``). On a terminal the progress
    is a live line under the reasoning (rich ``Live``: only whole lines of reasoning are
    printed above it, the unfinished one stays in the live region); otherwise it is a log
    line at once and every ``every`` seconds, each on a line of its own."""

    def __init__(self, console: Any, every: float | None = None) -> None:
        self.console = console
        self.every = progress_every() if every is None else every
        self.streamed = False  # some reasoning was shown
        self._lock = threading.RLock()
        self._line_open = False  # the last output ended inside a line
        self._pending = ""  # reasoning not yet printed above the live line
        self._live: Any = None
        self._tracker: PlanTracker | None = None

    # -- output
    def show(self, text: str) -> None:
        """Streamed reasoning."""
        with self._lock:
            self.streamed = True
            if self._live is None:
                self.console.out(text, style="dim", end="")
                self._line_open = not text.endswith("\n")
                return
            self._pending += text
            width = max(20, self.console.width - 1)
            while "\n" in self._pending or len(self._pending) > width:
                cut = self._pending.find("\n")
                if cut < 0 or cut > width:
                    space = self._pending.rfind(" ", 0, width)
                    cut = space if space > 0 else width
                line, self._pending = self._pending[:cut], self._pending[cut:].lstrip("\n ")
                self.console.print(line, style="dim", markup=False, highlight=False)

    def note(self, markup: str) -> None:
        """A stage line (rich markup), on a line of its own, after the reasoning so far; in a
        log, one line whatever its length (read with grep, not on a screen)."""
        with self._lock:
            if self._live is not None and self._pending:
                self.console.print(self._pending, style="dim", markup=False, highlight=False)
                self._pending = ""
            self._end_line()
            self.console.print(markup, soft_wrap=not self.console.is_terminal)

    def _end_line(self) -> None:
        if self._line_open:
            self.console.out("")
            self._line_open = False

    def _log(self, line: str) -> None:
        with self._lock:
            self._end_line()
            # one line whatever the width: a log is read with grep, not on a screen
            self.console.print(
                f"[cyan]progress:[/] {_escape(line)}", highlight=False, soft_wrap=True
            )

    # -- the live part
    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        view = self._tracker.view().line() if self._tracker is not None else ""
        parts = [Text(self._pending, style="dim")] if self._pending else []
        return Group(*parts, Text(view, style="cyan"))

    def tracking(self, tracker: PlanTracker) -> _Tracking:
        """While the model calls run: listen to them and show their progress."""
        return _Tracking(self, tracker)

    def _start(self, tracker: PlanTracker) -> LogTicker | None:
        self._tracker = tracker
        rates = tracker.rates
        if rates is not None:  # where the "~" figures come from until the server reports
            self.note(
                f"[dim]• ETA from {_escape(rates.basis)}: prompt {rates.prompt:.1f} tokens/s, "
                f"generation {rates.generation:.1f} tokens/s[/]"
            )
        if self.console.is_terminal:
            from rich.live import Live

            with self._lock:
                self._end_line()
                # stdout may be a pipe of plan JSON (--json): nothing is drawn into it
                self._live = Live(
                    self,
                    console=self.console,
                    refresh_per_second=4,
                    transient=True,
                    redirect_stdout=False,
                )
                self._live.start()
            return None
        return LogTicker(lambda: tracker.view().line(), self._log, self.every).start()

    def _stop(self, ticker: LogTicker | None) -> None:
        if ticker is not None:
            ticker.stop()
        with self._lock:
            live, self._live = self._live, None
            if live is not None:
                live.stop()
                if self._pending:
                    self.console.out(self._pending, style="dim", end="")
                    self._line_open, self._pending = True, ""
        self._tracker = None


class _Tracking:
    """``PlanDisplay.tracking``'s context: listening, the display, then the rates recorded."""

    def __init__(self, display: PlanDisplay, tracker: PlanTracker) -> None:
        from ablationkit.lm.progress import listening

        self.display, self.tracker = display, tracker
        self._listening = listening(tracker)
        self._ticker: LogTicker | None = None

    def __enter__(self) -> PlanTracker:
        self._listening.__enter__()
        self._ticker = self.display._start(self.tracker)
        return self.tracker

    def __exit__(self, *exc: Any) -> None:
        try:
            self.display._stop(self._ticker)
            if exc[0] is not None:  # the error line that follows starts a line of its own
                with self.display._lock:
                    self.display._end_line()
            self.tracker.finish()
        finally:
            self._listening.__exit__(*exc)


def _one_line(text: str) -> str:
    """``text`` with its control characters (line breaks too) as spaces, runs collapsed."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class BatchProgress:
    """A batch stage's progress on stderr (``bench plan`` / ``bench judge``): on a terminal a
    rich bar (with the current model call's line when a ``PlanTracker`` follows the calls);
    otherwise a log line per finished paper (done of total, the run's ETA from the papers done
    so far) and, every ``every`` seconds, the current call's progress: a run into a log file
    must not be silent for the minutes a paper takes on a CPU."""

    def __init__(
        self,
        console: Any,
        label: str,
        tracker: PlanTracker | None = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console, self.label, self.tracker = console, label, tracker
        self.every = progress_every() if every is None else every
        self.clock = clock
        self.started = clock()
        self.finished = 0
        self.total = 0
        self.cost = 0.0
        self._first: int | None = None  # papers finished (or skipped) when the stage began
        self._last_done = self.started  # when the last paper finished
        self._bar: Any = None
        self._task: Any = None
        self._ticker: LogTicker | None = None
        self._listening: Any = None
        self._lock = threading.Lock()

    def eta(self) -> float | None:
        """Seconds left at the pace of the papers finished in this session, less the time
        the current paper has already had (but never below the papers after it)."""
        done = self.finished - (self._first or 0)
        left = self.total - self.finished
        if done <= 0 or left <= 0:
            return None
        pace = (self._last_done - self.started) / done
        return max(pace * left - (self.clock() - self._last_done), pace * (left - 1))

    def describe(self) -> str:
        parts = [f"{self.label}: {self.finished}/{self.total or '?'} papers"]
        if self.cost:
            parts.append(f"${self.cost:.4f}")
        parts.append(f"{duration(self.clock() - self.started)} elapsed")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA ~{duration(eta)}")
        if self.tracker is not None and self.finished < self.total:
            parts.append("now: " + self.tracker.view().line(elapsed=False, calls=False))
        return " · ".join(parts)

    def update(self, paper_id: str, finished: int, total: int, cost: float) -> None:
        """The runner's ``Progress`` callback: a paper finished (``paper_id`` empty: the
        stage begins, with ``finished`` papers already done)."""
        paper_id = _one_line(paper_id)  # a dataset's id: no line breaks into the log
        began = False
        with self._lock:
            if self._first is None:
                self._first, self.started = finished, self.clock()
                self._last_done = self.started
                began = True
            elif finished > self.finished:
                self._last_done = self.clock()
            self.finished, self.total, self.cost = finished, total, cost
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=finished,
                total=total,
                cost=f"${cost:.4f}",
                paper=_escape(paper_id[:40]),
            )
        elif paper_id:
            self._log(f"{self.describe()} (done: {paper_id})")
        elif began and self._ticker is not None:
            self._log(self.describe())  # at once: the stage has begun

    def __enter__(self) -> BatchProgress:
        from ablationkit.lm.progress import listening

        if self.tracker is not None:
            self._listening = listening(self.tracker)
            self._listening.__enter__()
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            columns: list[Any] = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[cost]}"),
                TextColumn("[dim]{task.fields[paper]}"),
            ]
            if self.tracker is not None:
                columns.append(_tracker_column(self.tracker))
            self._bar = Progress(*columns, console=self.console, transient=False)
            self._task = self._bar.add_task(self.label, total=None, cost="", paper="")
            self._bar.start()
        else:
            self._ticker = LogTicker(self._began, self._log, self.every).start()
        return self

    def _began(self) -> str | None:
        """The log line, once the runner said the stage began: a run that fails before
        (a damaged run folder) prints its one-line error alone."""
        return self.describe() if self._first is not None else None

    def _log(self, line: str) -> None:
        self.console.print(_escape(line), highlight=False, soft_wrap=True)

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._ticker is not None:
                self._ticker.stop()
            if self._bar is not None:
                self._bar.stop()
            if self.tracker is not None:
                self.tracker.finish()
        finally:
            if self._listening is not None:
                self._listening.__exit__(*exc)


def _tracker_column(tracker: PlanTracker) -> Any:
    """A rich progress column with the current model call's line (made here, so that rich's
    progress module is imported only when a bar is drawn)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class CallColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            line = tracker.view().line(elapsed=False, calls=False)
            return Text("" if task.finished else line, style="cyan")

    return CallColumn()
