"""The fake OpenAI-compatible server itself: a client that goes away mid-reply is normal (every
test of cancellation does it) and must not print tracebacks into the test output."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
from urllib.parse import urlsplit

import pytest

from ablationkit.testing import FakeLLMServer, Reply


def _open_stream(server: FakeLLMServer) -> socket.socket:
    """A raw streaming chat request; returns once the first bytes of the reply arrived."""
    address = urlsplit(server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    body = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)
    assert sock.recv(64).startswith(b"HTTP/1.1 200")
    return sock


def _wait_idle(server: FakeLLMServer) -> None:
    deadline = time.monotonic() + 10  # a hang guard, not a timing assertion
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.in_flight == 0, "the server kept writing to a client that was gone"


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_client_gone_mid_stream_prints_no_traceback(
    reset: bool, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ablationkit.testing.fake_server")
    with FakeLLMServer([Reply(content="word " * 200, piece_delay=0.01)]) as server:
        sock = _open_stream(server)
        if reset:  # close with RST, as a killed process does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        _wait_idle(server)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.DEBUG


def test_replies_still_served_after_a_client_went_away() -> None:
    with FakeLLMServer([Reply(content="word " * 200, piece_delay=0.01)], default="fine") as server:
        _open_stream(server).close()
        _wait_idle(server)
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"fake-model" not in received and (data := sock.recv(4096)):
                received += data
            assert b"fake-model" in received
