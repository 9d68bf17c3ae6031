"""The web app over real HTTP: planning streams back, uploads are limited and checked for path
tricks, archives unpack only inside their folder, edited plans export, and pages from other
sites cannot spend model calls."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablationkit.app import AppServer, AppSettings, safe_filename
from ablationkit.app.uploads import UploadRejected
from ablationkit.testing import FakeLLMServer
from fakes import respond

PAPER = b"# Gated Things\n\n## Abstract\n\nWe gate.\n\n## 1 Method\n\nA gate and an encoder.\n"
LATEX = (
    b"\\documentclass{article}\\title{Gated Things}\\begin{document}\\maketitle"
    b"\\begin{abstract}We gate.\\end{abstract}\\section{Method}A gate and an encoder."
    b"\\end{document}"
)


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    with FakeLLMServer(responder=respond) as llm:
        settings = AppSettings(
            model="fake", api_base=llm.url, port=0, max_upload_mb=1, cache=False, k=1
        )
        with AppServer(settings) as server:
            yield server


def post(
    url: str, data: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(
        url, data=data, headers={"X-AblationKit": "1", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def plan_url(app: AppServer, filename: str, **query: str) -> str:
    return f"{app.url}/api/plan?" + urllib.parse.urlencode({"filename": filename, **query})


def events(body: bytes) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def test_plan_streams_stages_reasoning_and_the_plan(app: AppServer) -> None:
    status, body, headers = post(plan_url(app, "gated.md", k="2", mode="reviewer"), PAPER)
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    kinds = [e["type"] for e in events(body)]
    assert kinds[0] == "stage" and "reasoning" in kinds and kinds[-1] == "plan"
    plan = events(body)[-1]["plan"]
    assert (
        plan["mode"] == "reviewer" and plan["paper_id"] == "gated" and len(plan["ablations"]) == 2
    )
    stages = " ".join(e["message"] for e in events(body) if e["type"] == "stage")
    assert "/tmp" not in stages  # the server's temporary folder is not shown


def test_k_left_out_is_the_servers_k(app: AppServer) -> None:
    status, body, _ = post(plan_url(app, "gated.md"), PAPER)
    assert status == 200 and len(events(body)[-1]["plan"]["ablations"]) == 1
    config = json.loads(urllib.request.urlopen(f"{app.url}/api/config", timeout=30).read())
    assert config["k"] == 1 and config["models"] == ["fake"]


def test_latex_archives_plan_and_path_tricks_are_refused(app: AppServer) -> None:
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w:gz") as bundle:
        info = tarfile.TarInfo("paper/main.tex")
        info.size = len(LATEX)
        bundle.addfile(info, io.BytesIO(LATEX))
    status, body, _ = post(plan_url(app, "source.tar.gz", k="1"), good.getvalue())
    assert status == 200 and events(body)[-1]["type"] == "plan", body

    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as bundle:
        bundle.writestr("main.tex", LATEX)
        bundle.writestr("../../outside.tex", "x")
    status, body, _ = post(plan_url(app, "source.zip"), slip.getvalue())
    assert status == 400 and b"points outside the archive" in body

    linked = io.BytesIO()
    with tarfile.open(fileobj=linked, mode="w:gz") as bundle:
        info = tarfile.TarInfo("main.tex")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(info)
    status, body, _ = post(plan_url(app, "source.tgz"), linked.getvalue())
    assert status == 400 and b"is a link or device" in body

    for name, code in (("../x.md", 400), ("a\\b.md", 400), (".env.md", 400), ("x.exe", 415)):
        status, body, _ = post(plan_url(app, name), PAPER)
        assert status == code, (name, body)
    status, body, _ = post(plan_url(app, "broken.zip"), b"PK\x03\x04 not really")
    assert status == 400 and b"not a readable archive" in body


def test_upload_limits_and_bad_papers(app: AppServer) -> None:
    import http.client

    host, port = app.url.removeprefix("http://").split(":")
    path = "/api/plan?filename=big.md"
    # declared too large: refused from the headers, before any of the body is read
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", path)
    for name, value in (("X-AblationKit", "1"), ("Content-Length", str(5 * 1024 * 1024))):
        connection.putheader(name, value)
    connection.endheaders(b"# Big\n")
    response = connection.getresponse()
    assert response.status == 413 and b"1 MB limit" in response.read()
    connection.close()
    # sent chunked with no length: refused once one byte past the limit has arrived
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "POST",
        path,
        body=iter([b"# Big\n\n", b"x" * (1024 * 1024)]),
        headers={"X-AblationKit": "1"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413 and b"1 MB limit" in response.read()
    connection.close()
    status, body, _ = post(plan_url(app, "empty.md"), b"   \n")
    assert status == 400 and b"empty" in body
    status, body, _ = post(plan_url(app, "fake.pdf"), b"%PDF-1.4 truncated")
    assert status == 200 and events(body)[-1]["type"] == "error"
    assert "fake.pdf" in events(body)[-1]["message"]


def test_requests_from_other_sites_are_refused(app: AppServer) -> None:
    request = urllib.request.Request(plan_url(app, "a.md"), data=PAPER)  # no X-AblationKit
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    rebound = urllib.request.Request(f"{app.url}/api/config", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as wrong_host:
        urllib.request.urlopen(rebound, timeout=10)
    assert wrong_host.value.code == 421
    with urllib.request.urlopen(f"{app.url}/", timeout=10) as page:
        assert b"AblationKit" in page.read()
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_export_renders_edited_plans(app: AppServer) -> None:
    _, body, _ = post(plan_url(app, "gated.md", k="2"), PAPER)
    plan = events(body)[-1]["plan"]
    plan["ablations"][0]["name"] = "Drop the gate entirely"
    plan["ablations"].reverse()
    status, markdown, headers = post(
        f"{app.url}/api/export?format=md",
        json.dumps(plan).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200 and 'filename="gated.md"' in headers["content-disposition"]
    text = markdown.decode("utf-8")
    assert text.index("Other encoder") < text.index("Drop the gate entirely")
    from ablationkit.trajectory import parse_trajectory

    assert parse_trajectory(text).ablations[1].name == "Drop the gate entirely"
    status, data, _ = post(f"{app.url}/api/export?format=json", json.dumps(plan).encode())
    assert status == 200 and json.loads(data)["ablations"][0]["name"] == "Other encoder"
    plan["ablations"][0]["action"] = "SHRINK"
    status, data, _ = post(f"{app.url}/api/export?format=json", json.dumps(plan).encode())
    assert status == 422 and b"action" in data


def test_safe_filename_rules() -> None:
    assert safe_filename("paper v2.pdf") == "paper v2.pdf"
    for bad in ("", "a/b.pdf", "C:evil.pdf", "..", "x\x00.pdf", "a" * 300 + ".pdf"):
        with pytest.raises(UploadRejected):
            safe_filename(bad)


def test_app_settings_file_uploads_stay_inside(tmp_path: Path) -> None:
    from ablationkit.app.uploads import materialise

    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w") as tar:
        info = tarfile.TarInfo("/abs/main.tex")
        info.size = len(LATEX)
        tar.addfile(info, io.BytesIO(LATEX))
    (tmp_path / "work").mkdir()
    with pytest.raises(UploadRejected, match="points outside"):
        materialise("src.tar", bundle.getvalue(), tmp_path / "work", max_bytes=10_000)
    assert not (tmp_path / "abs").exists() and not Path("/abs").exists()


def test_plan_shows_progress_from_the_start_and_while_the_model_is_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No silent minutes (issue 15): a ``progress`` event (the prompt's size, what the model
    is doing, rates and an ETA when known) comes before the model says anything, and keeps
    coming while it says nothing."""
    import json as json_module

    from ablationkit.app import planning
    from ablationkit.testing.fake_server import Reply
    from fakes import PLAN

    monkeypatch.setattr(planning, "PROGRESS_EVERY_S", 0.05)
    slow = Reply(json_module.dumps({**PLAN, "ablations": PLAN["ablations"][:1]}), delay=1.0)
    with FakeLLMServer(default=slow) as llm:
        settings = AppSettings(model="fake", api_base=llm.url, port=0, cache=False, k=1)
        with AppServer(settings) as server:
            status, body, _ = post(plan_url(server, "gated.md"), PAPER)
    assert status == 200
    got = events(body)
    kinds = [e["type"] for e in got]
    first_reasoning = kinds.index("reasoning")
    before = [e for e in got[:first_reasoning] if e["type"] == "progress"]
    assert len(before) >= 2, kinds  # at once, then again while the model is silent
    assert before[0]["prompt_total"] > 0 and before[0]["phase"] == "waiting"
    assert "waiting for the first token" in before[0]["text"] and "elapsed" in before[0]["text"]
    assert kinds[-1] == "plan" and "progress" not in kinds[kinds.index("plan") :]


def test_page_asks_for_results_only_when_the_app_has_some(app: AppServer) -> None:
    """An app started without ``--results`` says so in /api/config, and the page then never
    asks /api/results: its 404 was a console error on every plan (tests/test_browser.py)."""
    config = json.loads(urllib.request.urlopen(f"{app.url}/api/config", timeout=30).read())
    assert config["results"] is False
    page = urllib.request.urlopen(f"{app.url}/", timeout=30).read().decode("utf-8")
    assert "if (config && config.results) showResults(" in page
