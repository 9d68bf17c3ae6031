"""``python -m ablationkit.testing``: run the fake OpenAI-compatible server for benchmarks.

python -m ablationkit.testing --port 8765 --latency 0.5 --reply '{"ok": true}'
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from ablationkit.testing.fake_server import FakeLLMServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server on loopback.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--reply", default="OK", help="the assistant text of every reply")
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (0: run until interrupted)",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeLLMServer(default=args.reply, latency=args.latency, port=args.port) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait(args.duration or None)


if __name__ == "__main__":
    main()
