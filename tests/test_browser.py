"""What a person sees, in a real browser: Debian's chromium driven by Playwright (never a
browser Playwright downloads). Screenshots go to ``test-artifacts/screenshots`` (or
``$ABLATIONKIT_ARTIFACTS``) for a human to look at after CI."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from ablationkit.app import AppServer, AppSettings
from ablationkit.site import build_site
from ablationkit.testing import FakeLLMServer, Reply
from ablationkit.trajectory import parse_trajectory
from conftest import REPO

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAPER = (
    "# Gated Things\n\n## Abstract\n\nWe gate the encoder.\n\n"
    "## 1 Method\n\nA gate scales the encoder output; we use a temperature of 0.5.\n"
)
REASONING = "The gate is the new part, so removing it tests the central claim."
PLAN = {
    "reasoning": REASONING,
    "ablations": [
        {
            "name": "Drop the gate",
            "ablated_part": "the gate",
            "action": "REMOVE",
            "replacement": None,
            "metrics": ["accuracy"],
        },
        {
            "name": "Gate temperature",
            "ablated_part": "temperature of the gate",
            "action": "REPLACE",
            "replacement": [0.1, 1.0],
            "metrics": ["accuracy"],
        },
    ],
}


def _chromium() -> str:
    path = os.environ.get("ABLATIONKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("no chromium here (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()


def screenshot(page: Any, name: str) -> None:
    folder = Path(os.environ.get("ABLATIONKIT_ARTIFACTS", REPO / "test-artifacts")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_site_from_file_urls(page: Any, judged_runs: list[Path], tmp_path: Path) -> None:
    build_site(judged_runs, tmp_path / "site", resamples=50)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((tmp_path / "site" / "index.html").as_uri())
    boards = page.locator("section.board")
    assert boards.count() == 2  # author and reviewer
    rows = page.locator("table.leaderboard tbody tr")
    assert rows.count() == 3  # toy run (author), sample run (author, reviewer)
    assert "model-toy-run" in rows.first.inner_text() or "model-toy-run" in page.inner_text("body")
    screenshot(page, "site-leaderboard")

    page.select_option("#filter-model", "model-toy-run")
    visible = [r for r in rows.all() if r.is_visible()]
    assert len(visible) == 1 and "toy-run" in visible[0].inner_text()
    assert not page.locator("section.board[data-mode=reviewer]").is_visible()
    assert page.inner_text("#filter-count") == "4 paper pages"
    assert "model=model-toy-run" in page.url
    page.select_option("#filter-model", "")
    page.select_option("#filter-mode", "reviewer")
    assert page.inner_text("#filter-count") == "1 paper page"
    screenshot(page, "site-filtered-reviewer")
    page.select_option("#filter-mode", "")

    page.click("text=KESTREL: Keyframe Selection >> nth=0")
    page.wait_for_selector("#pair")
    assert page.locator(".box.reasoning h2").inner_text().endswith("Reasoning Trace")
    assert page.locator("li.planned").count() == 2
    assert page.locator("li.target").count() == 5
    assert page.locator("svg.wires path").count() == 1  # the judge's one match, drawn
    page.hover("#p0")
    assert "lit" in (page.locator("svg.wires path").first.get_attribute("class") or "")
    assert "lit" in (page.locator("#g0").get_attribute("class") or "")
    page.click("#p0 a.match")
    assert page.url.endswith("#g0")
    assert page.evaluate("document.querySelector(':target').id") == "g0"
    screenshot(page, "site-paper")
    assert all(url.startswith("file://") for url in requests), requests
    assert not page.errors, page.errors  # type: ignore[attr-defined]


@pytest.fixture()
def app_server() -> Iterator[AppServer]:
    slow = Reply(content=json.dumps(PLAN), piece_delay=0.05)  # ~2 s to stream the plan
    with FakeLLMServer(responder=lambda body: slow) as llm:
        settings = AppSettings(
            model="fake-model", api_base=llm.url, port=0, cache=False, k=2, max_upload_mb=1
        )
        with AppServer(settings) as server:
            yield server


def test_app_plan_edit_download(page: Any, app_server: AppServer, tmp_path: Path) -> None:
    page.goto(app_server.url + "/")
    expect(page.locator("#model")).to_have_value("fake-model")  # the page asked /api/config
    page.fill("#paste", PAPER)
    page.click("#plan-button")
    # the reasoning shows while the reply is still streaming, before any plan card exists
    expect(page.locator("#reasoning-text")).not_to_have_value("")
    assert page.locator(".ablation-card").count() == 0
    page.wait_for_selector(".ablation-card >> nth=1")
    assert page.input_value("#reasoning-text") == REASONING
    assert "plan ready: 2 ablations" in page.inner_text("#status")
    replacement = page.locator(".ablation-card .f-replacement").nth(1).input_value()
    assert replacement.splitlines() == ["0.1", "1.0"]  # one value per line
    screenshot(page, "app-plan")

    page.locator(".ablation-card .f-name").first.fill("Remove the gate entirely")
    page.click("#add-ablation")
    new = page.locator(".ablation-card").nth(2)
    new.locator(".f-name").fill("Gate on the decoder too")
    new.locator(".f-part").fill("decoder")
    new.locator(".f-action").select_option("ADD")
    new.locator(".f-metrics").fill("accuracy, latency")
    new.locator(".t-up").click()  # now second
    page.locator(".ablation-card").nth(2).locator(".t-remove").click()  # drop the temperature one
    screenshot(page, "app-edited")

    with page.expect_download() as info:
        page.click("#download-json")
    saved = tmp_path / "plan.json"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "pasted.json"
    plan = json.loads(saved.read_text("utf-8"))
    assert [a["name"] for a in plan["ablations"]] == [
        "Remove the gate entirely",
        "Gate on the decoder too",
    ]
    assert plan["ablations"][1]["action"] == "ADD"
    assert plan["ablations"][1]["metrics"] == ["accuracy", "latency"]
    assert plan["model"] == "fake-model" and plan["reasoning"] == REASONING

    with page.expect_download() as info:
        page.click("#download-md")
    info.value.save_as(tmp_path / "plan.md")
    parsed = parse_trajectory((tmp_path / "plan.md").read_text("utf-8"))
    assert parsed.ablations[1].name == "Gate on the decoder too"

    page.set_input_files(
        "#file",
        files=[{"name": "notes.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}],
    )
    page.click("#plan-button")
    expect(page.locator("#error")).to_contain_text("not a paper this app reads")
    big = {"name": "huge.pdf", "mimeType": "application/pdf", "buffer": b"%PDF" + b"0" * 2**20}
    page.set_input_files("#file", files=[big])
    page.click("#plan-button")  # refused in the page: nothing is uploaded
    expect(page.locator("#error")).to_contain_text("huge.pdf is larger than the 1 MB upload limit")
    screenshot(page, "app-rejected-upload")
    assert not [e for e in page.errors if "415" not in e], page.errors  # type: ignore[attr-defined]


def test_app_shows_model_written_html_as_text(page: Any) -> None:
    """A plan whose reasoning and names hold markup: the page shows the characters, runs no
    script and loads no image."""
    script, image = "<script>window.pwned = 1</script>", "<img src=x onerror=window.pwned=2>"
    # markup beside real words: a part that is nothing but "<...>" is a placeholder the
    # planner re-asks for and drops (planner.guards), so it would never reach the page
    part = f"the gate {image}"
    hostile = {
        "reasoning": f"{image} {script}",
        "ablations": [{**PLAN["ablations"][0], "name": script, "ablated_part": part}],
    }
    with FakeLLMServer(responder=lambda body: json.dumps(hostile)) as llm:
        settings = AppSettings(model="fake-model", api_base=llm.url, port=0, cache=False, k=1)
        with AppServer(settings) as server:
            page.goto(server.url + "/")
            page.fill("#paste", PAPER)
            page.click("#plan-button")
            page.wait_for_selector(".ablation-card")
            assert page.input_value("#reasoning-text") == f"{image} {script}"
            assert page.locator(".ablation-card .f-name").input_value() == script
            assert page.locator(".ablation-card .f-part").input_value() == part
            assert page.locator("#result img, #result script").count() == 0
            assert page.evaluate("window.pwned === undefined")
    assert not page.errors, page.errors  # type: ignore[attr-defined]
