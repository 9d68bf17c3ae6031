"""Hostile model servers and model settings: what each attack does, and what the user sees.

Attacks: a server that echoes the API key (from the Authorization header) in its error body or
its reply, a key in the ``api_base`` URL, a server that accepts connections and never answers,
a loopback server that is not running, a malformed ``--api-base``. Outcomes: one line on
stderr (a redacted traceback with ``--debug``), no key in any output or file of a run, no
hour-long stall. Every server is real and on 127.0.0.1; the CLI runs as a user runs it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablationkit.lm import LMClient, ModelCallError, RetryPolicy
from ablationkit.lm.keys import RedactingFilter, redact, register_secret
from ablationkit.testing import FakeLLMServer, Reply

SECRET = "hunter2-not-key-shaped-4711"  # only its value tells it is a key
USERINFO_SECRET = "pa55-in-the-url-0815"
HANG_GUARD = 120  # seconds: a hang guard only, never a measurement


class RecordedSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run_cli(cli: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "ABLATIONKIT_CACHE_DIR": str(cwd / "cache"),
        "COLUMNS": "200",
        **env,
    }
    environment.pop("ABLATIONKIT_API_KEY", None)
    environment.update(env)
    return subprocess.run(
        [cli, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def every_file_text(root: Path) -> str:
    return "\n".join(
        p.read_text("utf-8", errors="replace") for p in sorted(root.rglob("*")) if p.is_file()
    )


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets or (SECRET,):
        assert secret not in text
    assert "Bearer hunter2" not in text


@pytest.fixture
def never_answers() -> Iterator[str]:
    """A server that accepts TCP connections (the kernel does, from the backlog) and never
    says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


@pytest.fixture
def refused() -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# ------------------------------------------------------------------ keys in server replies
@pytest.mark.parametrize("debug", [False, True], ids=["one-line", "debug-traceback"])
def test_key_echoed_in_a_401_body_is_redacted_in_every_output(
    cli: str, tmp_path: Path, debug: bool
) -> None:
    with FakeLLMServer(default=Reply(status=401, content="rejected", echo=True)) as server:
        args = ["--debug"] if debug else []
        args += ["plan", "--sample", "--model", "m", "--api-base", server.url, "-o", "out"]
        result = run_cli(cli, args, tmp_path, ABLATIONKIT_API_KEY=SECRET)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "HTTP 401" in output and "authorization" in output.lower()  # the echo reached us
    assert_no_secret(output)
    if debug:
        assert "Traceback (most recent call last)" in output
    else:
        assert "Traceback" not in output
        assert result.stderr.strip().splitlines()[-1].startswith("error: m: HTTP 401")


def test_key_from_dotenv_echoed_in_a_401_body_is_redacted_with_debug(
    cli: str, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"ABLATIONKIT_API_KEY='{SECRET}'\n", "utf-8")
    with FakeLLMServer(default=Reply(status=401, content="rejected", echo=True)) as server:
        args = ["--debug", "plan", "--sample", "--model", "m", "--api-base", server.url]
        result = run_cli(cli, args, tmp_path)
    assert result.returncode == 3
    assert "authorization" in result.stderr.lower()
    assert_no_secret(result.stdout + result.stderr)


def test_key_echoed_in_a_500_body_of_a_batch_is_in_no_output_and_no_run_file(
    cli: str, tmp_path: Path
) -> None:
    with FakeLLMServer(default=Reply(status=500, content="upstream said", echo=True)) as server:
        args = ["--debug", "bench", "plan", "sample", "--run", "run", "--model", "m"]
        args += ["--api-base", server.url, "--deadline", "1", "--limit", "2"]
        result = run_cli(cli, args, tmp_path, ABLATIONKIT_API_KEY=SECRET)
    assert result.returncode == 1, result.stderr
    assert "no reply within 1 s" in result.stderr  # each paper failed, the batch went on
    assert_no_secret(result.stdout + result.stderr + every_file_text(tmp_path / "run"))


def test_key_echoed_in_an_unusable_reply_is_not_in_the_saved_raw_reply(
    cli: str, tmp_path: Path
) -> None:
    with FakeLLMServer(default=Reply(content="no plan here,", echo=True)) as server:
        args = ["plan", "--sample", "--model", "m", "--api-base", server.url, "-o", "out"]
        result = run_cli(cli, args, tmp_path, ABLATIONKIT_API_KEY=SECRET)
    assert result.returncode == 4, result.stderr
    raw = list((tmp_path / "out").glob("*.raw.txt"))
    assert raw and "authorization" in raw[0].read_text("utf-8").lower()
    assert_no_secret(result.stdout + result.stderr + every_file_text(tmp_path / "out"))


@pytest.mark.parametrize("debug", [False, True], ids=["one-line", "debug-traceback"])
def test_key_in_api_base_userinfo_is_in_no_output_and_no_run_file(
    cli: str, tmp_path: Path, debug: bool
) -> None:
    with FakeLLMServer(default=Reply(status=401, content="rejected", echo=True)) as server:
        url = server.url.replace("http://", f"http://alice:{USERINFO_SECRET}@")
        args = ["--debug"] if debug else []
        args += ["bench", "plan", "sample", "--run", "run", "--model", "m", "--limit", "1"]
        result = run_cli(cli, [*args, "--api-base", url], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert server.requests  # the URL was used
    assert_no_secret(output + every_file_text(tmp_path / "run"), USERINFO_SECRET)
    assert "alice:***@" in (tmp_path / "run" / "run.json").read_text("utf-8")


def test_key_in_an_error_traceback_is_redacted_by_the_log_filter() -> None:
    register_secret(SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("ablationkit.tests.hostile")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise RuntimeError(f"server said: Authorization: Bearer {SECRET}")
    except RuntimeError:
        log.exception("call to %s failed", f"http://bob:{USERINFO_SECRET}@10.0.0.1/v1?key=abc123")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert_no_secret(text, SECRET, USERINFO_SECRET, "abc123")


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer abc.def-123456", "abc.def-123456"),
        ('{"authorization": "Basic YWxpY2U6c2VjcmV0"}', "YWxpY2U6c2VjcmV0"),
        ("openai said: Incorrect API key provided: sk-proj-AbCdEf0123456789", "AbCdEf0123456789"),
        ("GET https://host/v1/models?key=AIzaSyA-123456789012345678901234 failed", "AIzaSyA"),
        ("https://host/v1?api_key=0123abcd&x=1", "0123abcd"),
        ("api_key='my-own-key-42'", "my-own-key-42"),
        ("x-api-key: zz-top-99-secret", "zz-top-99-secret"),
        ("https://alice:pw%40home@example.org/v1", "pw%40home"),
        ("https://ghp_TOKEN123456@example.org/v1", "ghp_TOKEN123456"),
    ],
)
def test_key_shapes_are_redacted(text: str, hidden: str) -> None:
    assert hidden not in redact(text) and "***" in redact(text)


def test_ordinary_text_is_not_redacted() -> None:
    text = 'the key idea: a bearer of news, {"api_key": null}, http://example.org/a@b'
    assert redact(text) == text


# ------------------------------------------------------------------ servers that do not answer
def test_server_that_never_answers_fails_with_one_line(
    cli: str, tmp_path: Path, never_answers: str
) -> None:
    args = ["plan", "--sample", "--model", "m", "--api-base", never_answers, "--timeout", "0.2"]
    result = run_cli(cli, args, tmp_path)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: m: ") and "timed out" in last and "0.2 s" in last
    assert "Traceback" not in result.stderr


def test_server_that_never_answers_is_retried_without_backoff(
    tmp_path: Path, never_answers: str
) -> None:
    sleep = RecordedSleep()
    lm = LMClient(retry=RetryPolicy(max_attempts=3, sleep=sleep), timeout=0.3, cache=False)
    with pytest.raises(ModelCallError, match=r"timed out .*after 3 attempts"):
        lm.complete("hi", model="m", api_base=never_answers)
    assert sleep.waits == [0.0, 0.0]  # the timeout itself was the wait


def test_paper_over_its_deadline_fails_and_the_batch_goes_on(tmp_path: Path) -> None:
    from ablationkit.bench import Run
    from fakes import respond, tiny_dataset

    def hang_on_first(body: dict[str, object]) -> Reply | str:
        prompt = json.dumps(body.get("messages"))
        return Reply(fault="hang") if "Paper 0" in prompt else respond(body)

    dataset = tiny_dataset(tmp_path / "toy.jsonl", 3)
    with FakeLLMServer(responder=hang_on_first, hang_seconds=20) as server:
        lm = LMClient(timeout=30, cache=False)
        report = Run(tmp_path / "run", client=lm).plan(
            dataset, model="m", api_base=server.url, k=2, deadline=0.5
        )
    assert sorted(report.done) == ["paper-001", "paper-002"]
    assert report.failed == {"paper-000": "m: no reply within 0.5 s"}


def test_refused_loopback_server_fails_at_once_with_a_hint(
    cli: str, tmp_path: Path, refused: str
) -> None:
    result = run_cli(cli, ["plan", "--sample", "--model", "m", "--api-base", refused], tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: m: cannot connect to {refused}: is the server running?"
    )


def test_refused_loopback_server_is_not_retried(tmp_path: Path, refused: str) -> None:
    sleep = RecordedSleep()
    lm = LMClient(retry=RetryPolicy(sleep=sleep), cache=False)
    with pytest.raises(ModelCallError, match="is the server running"):
        lm.complete("hi", model="ollama/llama3.1", api_base=refused)
    assert sleep.waits == [] and lm.usage.retries == 0


def test_connection_error_to_a_remote_server_is_still_retried(tmp_path: Path) -> None:
    sleep = RecordedSleep()
    lm = LMClient(retry=RetryPolicy(max_attempts=2, sleep=sleep), timeout=0.3, cache=False)
    with pytest.raises(ModelCallError, match="after 2 attempts"):
        lm.complete("hi", model="m", api_base="http://192.0.2.1:9/v1")  # TEST-NET-1
    assert len(sleep.waits) == 1 and lm.usage.retries == 1


# ------------------------------------------------------------------ malformed settings
@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/v1", "ftp://host/v1"])
@pytest.mark.parametrize("command", ["plan", "bench"])
def test_malformed_api_base_is_one_line_and_exit_2(
    cli: str, tmp_path: Path, url: str, command: str
) -> None:
    if command == "plan":
        args = ["plan", "--sample", "--model", "m", "--api-base", url]
    else:
        args = ["bench", "plan", "sample", "--run", "run", "--model", "m", "--api-base", url]
    result = run_cli(cli, args, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "api_base" in lines[0]


@pytest.mark.parametrize("debug", [False, True], ids=["one-line", "debug-traceback"])
def test_unexpected_error_carrying_a_key_is_redacted(tmp_path: Path, debug: bool) -> None:
    program = (
        "import sys\n"
        "from ablationkit import cli\n"
        "@cli.app.command('explode')\n"
        "def explode() -> None:\n"
        f"    raise RuntimeError('Authorization: Bearer {SECRET}')\n"
        "sys.argv = ['ablationkit', *sys.argv[1:]]\n"
        "cli.run()\n"
    )
    args = ["--debug", "explode"] if debug else ["explode"]
    result = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "RuntimeError" in result.stderr
    assert ("Traceback" in result.stderr) == debug
    assert_no_secret(result.stdout + result.stderr)
