"""The static site: what it shows matches the run, it escapes model output, it needs nothing
from the network, and it never overwrites a directory that is not its own."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ablationkit.errors import AblationKitError
from ablationkit.judge.metrics import aggregate
from ablationkit.schema import Judgement, Plan
from ablationkit.site import build_site, load_run

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def test_site_pages_and_leaderboard_match_the_runs(judged_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_site(judged_runs, out, resamples=50)
    toy = judged_runs[0]
    assert report.runs == ["toy-run", "sample-run"] and not report.warnings
    # one page per paper and run, plus the index
    assert report.pages == 1 + 4 + 3
    assert (out / "runs" / "toy-run" / "paper-000.html").is_file()
    assert (out / "runs" / "sample-run" / "kestrel-sample-review.html").is_file()
    # the toy run's row agrees with the metrics computed straight from its judgements
    verdicts = [
        Judgement.model_validate_json(p.read_text("utf-8"))
        for p in sorted((toy / "judgements").glob("*/*.json"))
    ]
    expected = aggregate(verdicts, resamples=50).macro.f1
    [row] = [r for r in report.leaderboard if r.run == "toy-run"]
    assert row.mode == "author" and row.papers == 4 and row.macro.f1 == pytest.approx(expected)
    assert row.failures == 0 and not row.failed
    modes = {r.mode for r in report.leaderboard if r.run == "sample-run"}
    assert modes == {"author", "reviewer"}
    index = (out / "index.html").read_text("utf-8")
    assert f"{100 * expected:.1f}" in index and "model-toy-run" in index
    for page in out.rglob("*.html"):
        html = page.read_text("utf-8")
        assert not EXTERNAL.search(html), f"{page} loads something from the network"
        assert 'href="../../assets/site.css"' in html or 'href="assets/site.css"' in html
    paper = (out / "runs" / "sample-run" / "kestrel-sample.html").read_text("utf-8")
    # the ground truth sits beside the plan, and the judge's match is a link to it
    assert "Diversity term" in paper and 'href="#g0"' in paper and 'id="p0"' in paper
    matches = json.loads(re.search(r'id="matches">(.*?)</script>', paper, re.S).group(1))  # type: ignore[union-attr]
    assert matches == {"lm:judge-model": [[0, 0]]}


def test_model_output_is_escaped(judged_runs: list[Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(judged_runs[0], run)
    plan_file = run / "plans" / "paper-000.json"
    plan = Plan.model_validate_json(plan_file.read_text("utf-8"))
    plan.ablations[0].name = '<script>alert("x")</script>'
    plan.reasoning = "</script><img src=x onerror=alert(1)>"
    plan_file.write_text(plan.to_json(), "utf-8")
    build_site([run], tmp_path / "site", resamples=0)
    html = (tmp_path / "site" / "runs" / "run" / "paper-000.html").read_text("utf-8")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_site_refuses_foreign_directories_and_rebuilds_its_own(
    judged_runs: list[Path], tmp_path: Path
) -> None:
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious", "utf-8")
    with pytest.raises(AblationKitError, match="not a site built by ablationkit"):
        build_site(judged_runs[:1], foreign)
    assert (foreign / "thesis.tex").read_text("utf-8") == "precious"
    out = tmp_path / "site"
    build_site(judged_runs, out, resamples=0)
    build_site(judged_runs[:1], out, resamples=0)  # a rebuild drops pages of runs left out
    assert not (out / "runs" / "sample-run").exists() and (out / "runs" / "toy-run").is_dir()
    with pytest.raises(AblationKitError, match="not a run directory"):
        build_site([tmp_path], tmp_path / "other")


def test_unreadable_dataset_falls_back_to_the_judges_names(
    judged_runs: list[Path], tmp_path: Path
) -> None:
    run = tmp_path / "moved-run"
    shutil.copytree(judged_runs[0], run)
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    manifest["stages"]["plan"]["config"]["dataset"] = str(tmp_path / "gone.jsonl")
    (run / "run.json").write_text(json.dumps(manifest), "utf-8")
    data = load_run(run)
    assert data.warnings and "ground truth shown by name only" in data.warnings[0]
    assert data.papers[0].targets() == ["Gate"]
    report = build_site([run, run], tmp_path / "site", resamples=0)  # same name twice: both kept
    assert sorted(p.name for p in (tmp_path / "site" / "runs").iterdir()) == [
        "moved-run",
        "moved-run-2",
    ]
    assert report.warnings


def test_site_cli(cli: str, judged_runs: list[Path], tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [cli, "site", *map(str, judged_runs), "-o", str(tmp_path / "s"), "--resamples", "10"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "8 pages from 2 runs" in done.stdout
    bad = subprocess.run(
        [cli, "site", str(tmp_path), "-o", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "not a run directory (no run.json)" in bad.stderr
