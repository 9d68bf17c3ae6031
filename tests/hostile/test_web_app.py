"""Attacks on ``ablationkit serve``, each with its outcome. Everything runs over real HTTP on
127.0.0.1 or ::1 against the app and the fake OpenAI-compatible server; waits are hang guards,
never timing assertions.

- a client that disconnects mid-plan: the model call is closed and the slot is freed
- a queue already full: 429 with Retry-After
- tar and zip bombs: 413, while /api/config keeps answering (unpacking is off the event loop)
- archive members with absolute paths, ``..``, links, devices, overlapping zip entries: 400
- Host ``[::1]:PORT`` on an app bound to ::1: served; ``evil.example:PORT``: 421
- model ids the server was not started with (``replay:/etc/passwd``, ``local:/x``, a paid
  provider): 403, and the model server never hears of them; k and mode out of range: 422
- uploads over the limit: 413 while they stream, and they go to disk, not memory
- model-written HTML in a plan: delivered as data, never as markup
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import io
import json
import socket
import struct
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ablationkit.app import AppServer, AppSettings
from ablationkit.app.uploads import UploadRejected, receive_to_file, unpack
from ablationkit.testing import FakeLLMServer, Reply
from fakes import PLAN, respond

GUARD = 15.0  # seconds: only ever a hang guard
PAPER = b"# Gated Things\n\n## Abstract\n\nWe gate.\n\n## 1 Method\n\nA gate and an encoder.\n"
SLOW_PAPER = PAPER.replace(b"We gate.", b"We gate. SLOWPAPER")
HTML_PAPER = PAPER.replace(b"We gate.", b"We gate. HTMLPAPER")
LATEX = (
    b"\\documentclass{article}\\title{Gated Things}\\begin{document}\\maketitle"
    b"\\begin{abstract}We gate.\\end{abstract}\\section{Method}A gate and an encoder."
    b"\\end{document}"
)
SCRIPT = '<script>alert("x")</script>'
IMG = "<img src=x onerror=alert(1)>"
# ~50 s to stream at 12 characters per 0.05 s: far longer than any guard below
SLOW = Reply(content=json.dumps({**PLAN, "reasoning": "think " * 2000}), piece_delay=0.05)
ABLATIONS: list[dict[str, Any]] = json.loads(json.dumps(PLAN["ablations"]))
HOSTILE = json.dumps(
    {
        "reasoning": f"{IMG} {SCRIPT}",
        "ablations": [{**ABLATIONS[0], "name": SCRIPT}, *ABLATIONS[1:]],
    }
)


def _responder(body: dict[str, Any]) -> Reply | str:
    text = json.dumps(body.get("messages"))
    if "SLOWPAPER" in text:
        return SLOW
    if "HTMLPAPER" in text:
        return HOSTILE
    return respond(body)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=_responder) as server:
        yield server


@pytest.fixture(scope="module")
def app(llm: FakeLLMServer) -> Iterator[AppServer]:
    settings = AppSettings(
        model="fake",
        models=["fake-2"],
        api_base=llm.url,
        port=0,
        max_upload_mb=1,
        max_queue=1,
        cache=False,
    )
    with AppServer(settings) as server:
        yield server


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"hang guard: {what}"
        time.sleep(0.02)


def post(
    url: str, data: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(
        url, data=data, headers={"X-AblationKit": "1", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=GUARD) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=GUARD) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def plan_url(app: AppServer, filename: str, **query: str) -> str:
    return f"{app.url}/api/plan?" + urllib.parse.urlencode({"filename": filename, **query})


def events(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def plan_until_accepted(app: AppServer, body: bytes = PAPER) -> list[dict[str, Any]]:
    """A plan request, repeated while the app still answers 429 (a cancelled job may take a
    moment to hand back its place); the events once it is accepted."""
    deadline = time.monotonic() + GUARD
    while True:
        status, data, _ = post(plan_url(app, "next.md", k="2"), body)
        if status != 429 or time.monotonic() > deadline:
            assert status == 200, data
            return events(data)
        time.sleep(0.05)


class Stream:
    """A plan request read event by event, which the test can abandon half way."""

    def __init__(self, app: AppServer, body: bytes) -> None:
        host, port = app.settings.host, app.settings.port
        self.connection = http.client.HTTPConnection(host, port, timeout=GUARD)
        self.connection.connect()
        self.sock = self.connection.sock
        path = "/api/plan?" + urllib.parse.urlencode({"filename": "slow.md", "k": "2"})
        self.connection.request("POST", path, body=body, headers={"X-AblationKit": "1"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200

    def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            line = self.response.readline()
            assert line, "the stream ended early"
            event = json.loads(line)
            if predicate(event):
                return event

    def abandon(self) -> None:
        """Go away the way a closed browser tab does: the socket closes mid-stream."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.response.close()
        self.connection.close()


def planning(event: dict[str, Any]) -> bool:
    return event["type"] == "stage" and event["message"].startswith("planning with")


# ----------------------------------------------------------------------------- abandoned work


def test_client_that_disconnects_mid_plan_has_its_model_call_closed_and_slot_freed(
    app: AppServer, llm: FakeLLMServer
) -> None:
    stream = Stream(app, SLOW_PAPER)
    stream.until(lambda e: e["type"] == "reasoning")  # the model is streaming its reply
    assert llm.in_flight == 1
    stream.abandon()
    # the app closes its request to the model long before the 50 s reply would end
    wait_until(lambda: llm.in_flight == 0, "the model request outlived its client")
    # and the one planning slot is free: the next paper is planned, not left waiting
    following = plan_until_accepted(app)
    assert following[-1]["type"] == "plan"
    assert not any("waiting" in e.get("message", "") for e in following)


def test_queue_full_is_refused_with_429_and_retry_after(app: AppServer, llm: FakeLLMServer) -> None:
    running = Stream(app, SLOW_PAPER)  # max_queue=1: one planning ...
    running.until(planning)
    waiting = Stream(app, SLOW_PAPER)  # ... and one waiting
    waiting.until(lambda e: "waiting for the paper before this one" in e.get("message", ""))
    try:
        status, body, headers = post(plan_url(app, "third.md"), PAPER)
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert b"busy" in body and b"\n" not in json.loads(body)["detail"].encode()
    finally:
        waiting.abandon()
        running.abandon()
    wait_until(lambda: llm.in_flight == 0, "abandoned plans still calling the model")
    assert plan_until_accepted(app)[-1]["type"] == "plan"


def test_unfinished_uploads_hold_their_place_and_give_it_back_when_dropped(
    app: AppServer,
) -> None:
    hanging = []
    for _ in range(2):  # max_queue=1: two places, both taken by uploads that never end
        sock = socket.create_connection((app.settings.host, app.settings.port), GUARD)
        sock.sendall(
            b"POST /api/plan?filename=slow.md HTTP/1.1\r\nHost: "
            + f"127.0.0.1:{app.settings.port}".encode()
            + b"\r\nX-AblationKit: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n# Hi\n\r\n"
        )
        hanging.append(sock)
    try:
        wait_until(
            lambda: post(plan_url(app, "a.md", k="1"), PAPER)[0] == 429,
            "the unfinished uploads did not count toward the queue",
        )
    finally:
        for sock in hanging:
            sock.close()
    assert plan_until_accepted(app)[-1]["type"] == "plan"


# ----------------------------------------------------------------------------- archives


def _gzip_bomb_tar(size: int) -> bytes:
    """A .tar.gz whose one member claims and holds ``size`` zero bytes, at ~1000:1: a gzip
    member compressing 1 MiB of zeros, repeated (a multi-member gzip stream is valid)."""
    header = tarfile.TarInfo("main.tex")
    header.size = size
    block = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)) + block * (size >> 20)


def _zip_bomb(size: int) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        bundle.writestr("main.tex", b"\0" * size)
    return data.getvalue()


@pytest.mark.parametrize(
    ("filename", "bomb"),
    [
        ("bomb.tar.gz", _gzip_bomb_tar(768 << 20)),  # 768 MiB of zeros in ~0.8 MB
        ("bomb.zip", _zip_bomb(64 << 20)),  # 64 MiB in ~64 kB
    ],
)
def test_archive_bomb_is_refused_while_config_keeps_answering(
    app: AppServer, filename: str, bomb: bytes
) -> None:
    outcome: list[tuple[int, bytes, dict[str, str]]] = []
    sender = threading.Thread(
        target=lambda: outcome.append(post(plan_url(app, filename), bomb)), daemon=True
    )
    sender.start()
    assert get(f"{app.url}/api/config")[0] == 200
    sender.join(GUARD)
    assert outcome and outcome[0][0] == 413, outcome
    assert b"upload limit" in outcome[0][1]
    assert get(f"{app.url}/api/config")[0] == 200


def test_unpacking_never_blocks_other_requests(
    app: AppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unpacker is held until /api/config has been answered: on the event loop that
    would be a deadlock (the config request would hit the hang guard)."""
    import ablationkit.app.uploads as uploads

    entered, answered = threading.Event(), threading.Event()
    real_unpack = uploads.unpack

    def held_unpack(*args: Any, **kwargs: Any) -> Path:
        entered.set()
        answered.wait(GUARD)
        return real_unpack(*args, **kwargs)

    monkeypatch.setattr(uploads, "unpack", held_unpack)
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w:gz") as bundle:
        info = tarfile.TarInfo("paper/main.tex")
        info.size = len(LATEX)
        bundle.addfile(info, io.BytesIO(LATEX))
    outcome: list[tuple[int, bytes, dict[str, str]]] = []
    sender = threading.Thread(
        target=lambda: outcome.append(post(plan_url(app, "src.tar.gz", k="1"), good.getvalue())),
        daemon=True,
    )
    sender.start()
    assert entered.wait(GUARD)
    try:
        assert get(f"{app.url}/api/config")[0] == 200
    finally:
        answered.set()
    sender.join(GUARD)
    assert outcome and outcome[0][0] == 200 and events(outcome[0][1])[-1]["type"] == "plan"


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_that_expands_over_100_fold_is_refused_counting_real_bytes(
    tmp_path: Path, kind: str
) -> None:
    archive = tmp_path / f"zeros.{kind}"
    archive.write_bytes((_gzip_bomb_tar if kind == "tar.gz" else _zip_bomb)(8 << 20))
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected, match="100-fold") as refused:
        unpack(archive, tmp_path / "out", max_bytes=1 << 30)  # the size limit is not the cap
    assert refused.value.status == 413
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) <= 2 << 20


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_with_too_many_members_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import ablationkit.app.uploads as uploads

    monkeypatch.setattr(uploads, "MAX_ARCHIVE_FILES", 20)  # 2000 in use; 20 keeps this quick
    many = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(many, "w") as bundle:
            for n in range(21):
                bundle.writestr(f"f{n}.tex", "")
    else:
        with tarfile.open(fileobj=many, mode="w:gz") as bundle:
            for n in range(21):
                bundle.addfile(tarfile.TarInfo(f"f{n}.tex"), io.BytesIO(b""))
    archive = tmp_path / f"many.{kind}"
    archive.write_bytes(many.getvalue())
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected, match="over 20 files"):
        unpack(archive, tmp_path / "out", max_bytes=1 << 20)
    assert len(list((tmp_path / "out").iterdir())) <= 20


def _zip_with_duplicated_entry() -> bytes:
    """A zip whose central directory lists its one entry twice: two members, one set of
    bytes (the overlap that quadratic zip bombs are made of)."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("main.tex", LATEX)
    raw = data.getvalue()
    end = raw.rindex(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack("<HII", raw[end + 10 : end + 20])
    central = raw[cd_offset : cd_offset + cd_size]
    eocd = bytearray(raw[end:])
    struct.pack_into("<HHII", eocd, 8, 2 * count, 2 * count, 2 * cd_size, cd_offset)
    return raw[:cd_offset] + central + central + bytes(eocd)


def _tar(*members: tarfile.TarInfo) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as bundle:
        ok = tarfile.TarInfo("main.tex")
        ok.size = len(LATEX)
        bundle.addfile(ok, io.BytesIO(LATEX))
        for member in members:
            bundle.addfile(member, io.BytesIO(b"x" * member.size) if member.size else None)
    return data.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def _zip(name: str, mode: int | None = None) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as bundle:
        bundle.writestr("main.tex", LATEX)
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        bundle.writestr(info, "/etc/passwd")
    return data.getvalue()


@pytest.mark.parametrize(
    ("filename", "archive", "refusal"),
    [
        ("abs.tgz", _tar(_member("/etc/cron.d/x")), b"points outside the archive"),
        ("up.tgz", _tar(_member("a/../../x.tex")), b"points outside the archive"),
        ("drive.zip", _zip("C:/evil.tex"), b"points outside the archive"),
        ("back.zip", _zip("..\\..\\evil.tex"), b"points outside the archive"),
        ("sym.tgz", _tar(_member("s.tex", tarfile.SYMTYPE, "/etc/passwd")), b"link or device"),
        ("hard.tgz", _tar(_member("h.tex", tarfile.LNKTYPE, "main.tex")), b"link or device"),
        ("dev.tgz", _tar(_member("d", tarfile.CHRTYPE)), b"link or device"),
        ("fifo.tgz", _tar(_member("f", tarfile.FIFOTYPE)), b"link or device"),
        ("sym.zip", _zip("s.tex", 0o120777), b"link or device"),
        ("overlap.zip", _zip_with_duplicated_entry(), b"overlapping"),
    ],
)
def test_archive_member_tricks_are_refused(
    app: AppServer, filename: str, archive: bytes, refusal: bytes
) -> None:
    status, body, _ = post(plan_url(app, filename), archive)
    assert status == 400 and refusal in body, body
    assert b"\\n" not in body  # one line


def test_archive_path_gate_writes_nothing_outside(tmp_path: Path) -> None:
    archive = tmp_path / "slip.tar"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as bundle:
        ok = tarfile.TarInfo("main.tex")
        ok.size = len(LATEX)
        bundle.addfile(ok, io.BytesIO(LATEX))
        evil = tarfile.TarInfo("../escaped.tex")
        evil.size = 1
        bundle.addfile(evil, io.BytesIO(b"x"))
    archive.write_bytes(data.getvalue())
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadRejected, match="points outside"):
        unpack(archive, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "escaped.tex").exists()


# ----------------------------------------------------------------------------- Host header


def test_ipv6_loopback_app_serves_its_own_host_and_refuses_rebinding(llm: FakeLLMServer) -> None:
    settings = AppSettings(model="fake", api_base=llm.url, host="::1", port=0, cache=False)
    with AppServer(settings) as server:
        port = server.settings.port
        assert server.url == f"http://[::1]:{port}"
        assert get(f"{server.url}/api/config")[0] == 200  # Host: [::1]:PORT
        assert get(f"{server.url}/api/config", host=f"localhost:{port}")[0] == 200
        assert get(f"{server.url}/api/config", host=f"evil.example:{port}")[0] == 421
        assert get(f"{server.url}/api/config", host=f"[::1]:{port + 1}")[0] == 421
        assert get(f"{server.url}/api/config", host=f"::1:{port}")[0] == 421  # unbracketed


def test_rebinding_host_is_refused_on_ipv4(app: AppServer) -> None:
    port = app.settings.port
    assert get(f"{app.url}/api/config", host=f"evil.example:{port}")[0] == 421
    assert get(f"{app.url}/api/config", host=f"127.0.0.1.evil.example:{port}")[0] == 421
    assert get(f"{app.url}/api/config", host=f"localhost:{port}")[0] == 200


# ----------------------------------------------------------------------------- client knobs


@pytest.mark.parametrize("model", ["replay:/etc/passwd", "local:/x", "openai/gpt-4o", "local"])
def test_model_the_server_was_not_started_with_is_refused(
    app: AppServer, llm: FakeLLMServer, model: str
) -> None:
    before = len(llm.requests)
    status, body, _ = post(plan_url(app, "a.md", model=model), PAPER)
    assert status == 403, body
    detail = json.loads(body)["detail"]
    assert "not offered" in detail and "\n" not in detail
    assert len(llm.requests) == before


def test_only_the_offered_models_are_listed_and_accepted(app: AppServer) -> None:
    config = json.loads(get(f"{app.url}/api/config")[1])
    assert config["models"] == ["fake", "fake-2"]
    status, body, _ = post(plan_url(app, "a.md", model="fake-2", k="1"), PAPER)
    assert status == 200 and events(body)[-1]["plan"]["model"] == "fake-2"


@pytest.mark.parametrize("query", [{"k": "0"}, {"k": "21"}, {"mode": "../../x"}])
def test_knobs_out_of_range_are_refused(app: AppServer, query: dict[str, str]) -> None:
    status, _, _ = post(plan_url(app, "a.md", **query), PAPER)
    assert status == 422


# ----------------------------------------------------------------------------- upload size


def test_oversize_upload_is_refused_while_it_streams(app: AppServer) -> None:
    limit = 1 << 20
    with socket.create_connection((app.settings.host, app.settings.port), GUARD) as sock:
        sock.sendall(
            b"POST /api/plan?filename=big.md HTTP/1.1\r\nHost: "
            + f"127.0.0.1:{app.settings.port}".encode()
            + b"\r\nX-AblationKit: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"x" * (64 << 10)
        for _ in range(limit // len(piece) + 1):  # one piece past the limit; never the end
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        reply = sock.makefile("rb").readline()
    assert reply.startswith(b"HTTP/1.1 413")


def test_declared_oversize_upload_is_refused_before_its_body(app: AppServer) -> None:
    with socket.create_connection((app.settings.host, app.settings.port), GUARD) as sock:
        sock.sendall(
            b"POST /api/plan?filename=big.md HTTP/1.1\r\nHost: "
            + f"127.0.0.1:{app.settings.port}".encode()
            + b"\r\nX-AblationKit: 1\r\nContent-Length: 999999999\r\n\r\n# Big\n"
        )
        reply = sock.makefile("rb").readline()
    assert reply.startswith(b"HTTP/1.1 413")


def test_upload_goes_to_disk_as_it_arrives(tmp_path: Path) -> None:
    target = tmp_path / "upload.bin"
    sizes_on_disk: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 1000
            sizes_on_disk.append(target.stat().st_size)  # written before the next piece

    assert asyncio.run(receive_to_file(body(), target, 10_000)) == 4000
    assert sizes_on_disk[:3] == [1000, 2000, 3000]

    async def too_much() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"z" * 1000

    with pytest.raises(UploadRejected, match="limit") as refused:
        asyncio.run(receive_to_file(too_much(), tmp_path / "big.bin", 10_000))
    assert refused.value.status == 413


# ----------------------------------------------------------------------------- model HTML


def test_model_written_html_reaches_the_page_as_data_never_as_markup(app: AppServer) -> None:
    status, body, headers = post(plan_url(app, "html.md", k="2"), HTML_PAPER)
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    assert headers["x-content-type-options"] == "nosniff"  # never sniffed as HTML
    plan = events(body)[-1]["plan"]
    assert plan["reasoning"] == f"{IMG} {SCRIPT}" and plan["ablations"][0]["name"] == SCRIPT
    page = get(f"{app.url}/")[1].decode("utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in page  # the page builds text nodes and form values only
    status, markdown, headers = post(
        f"{app.url}/api/export?format=md", json.dumps(plan).encode("utf-8")
    )
    assert status == 200 and headers["content-disposition"].startswith("attachment")
    assert SCRIPT in markdown.decode("utf-8")  # verbatim by design: a download, not a page
