"""``results``: the ablation table (mean ± std over seeds, Δ from the baseline, best/worst),
as Markdown, LaTeX, JSON and a PNG chart; failed and missing runs are shown, never dropped.

Most tests write run records by hand (exact numbers); one goes through ``execute`` first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ablationkit.runs.execute import RunResult, execute
from ablationkit.runs.model import Grid
from ablationkit.runs.results import collect, lower_is_better, to_latex, to_markdown, write_results


def grid(seeds: tuple[int, ...] = (0, 1)) -> Grid:
    return Grid.model_validate(
        {
            "plan": "plans/toy.json",
            "paper_id": "toy_paper",
            "project": ".",
            "style": "hydra",
            "seeds": list(seeds),
            "mappings": [
                {
                    "ablation": "No augmentation",
                    "action": "REMOVE",
                    "variants": [{"label": "off", "overrides": {"augment.noise": 0}}],
                },
                {
                    "ablation": "Regularisation C",
                    "action": "REPLACE",
                    "variants": [
                        {"label": "C=0.1", "overrides": {"model.C": 0.1}},
                        {"label": "C=10", "overrides": {"model.C": 10}},
                    ],
                },
            ],
            "unmapped": [{"ablation": "Bigger dataset", "reason": "no config key for it"}],
        }
    )


def record(runs: Path, g: Grid, run_id: str, status: str = "ok", **metrics: float) -> None:
    run = next(r for r in g.runs() if r.run_id == run_id)
    result = RunResult(
        run_id=run.run_id,
        ablation=run.ablation,
        variant=run.variant,
        seed=run.seed,
        overrides=run.overrides,
        command="python train.py",
        status=status,  # type: ignore[arg-type]
        exit_code=0 if status == "ok" else 1,
        error=None if status == "ok" else "exit code 1: boom",
        metrics=metrics,
        seconds=1.0,
        started_at="2026-01-01T00:00:00Z",
    )
    (runs / run_id).mkdir(parents=True, exist_ok=True)
    (runs / run_id / "result.json").write_text(result.model_dump_json())


def full_runs(tmp_path: Path) -> tuple[Grid, Path]:
    """Every run finished except C=10 seed 1 (failed) and C=10 seed 0 (never run)."""
    g = grid()
    runs = tmp_path / "runs"
    values: dict[str, tuple[float, float]] = {
        "baseline--seed0": (0.90, 0.30),
        "baseline--seed1": (0.92, 0.28),
        "no-augmentation--off--seed0": (0.80, 0.50),
        "no-augmentation--off--seed1": (0.84, 0.46),
        "regularisation-c--c-0-1--seed0": (0.93, 0.25),
        "regularisation-c--c-0-1--seed1": (0.95, 0.27),
    }
    for run_id, (acc, loss) in values.items():
        record(runs, g, run_id, accuracy=acc, val_loss=loss)
    record(runs, g, "regularisation-c--c-10--seed1", status="failed")
    return g, runs


def test_rows_have_mean_std_and_difference_from_the_baseline(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    table = collect(g, runs)
    assert [r.label for r in table.rows] == [
        "baseline",
        "No augmentation: off",
        "Regularisation C: C=0.1",
        "Regularisation C: C=10",
    ]
    assert table.metrics == ["accuracy", "val_loss"]
    base, no_aug, small_c, _ = table.rows
    assert base.stats["accuracy"].mean == pytest.approx(0.91)
    assert base.stats["accuracy"].std == pytest.approx(0.0141421, rel=1e-4)
    assert no_aug.diffs["accuracy"] == pytest.approx(-0.09)
    assert no_aug.diffs["val_loss"] == pytest.approx(0.19)
    assert small_c.diffs["accuracy"] == pytest.approx(0.03)


def test_best_and_worst_follow_each_metrics_direction(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    table = collect(g, runs)
    _, no_aug, small_c, _ = table.rows
    assert table.lower_better == {"accuracy": False, "val_loss": True}
    assert small_c.marks == {"accuracy": "best", "val_loss": "best"}
    assert no_aug.marks == {"accuracy": "worst", "val_loss": "worst"}
    assert lower_is_better("perplexity") and lower_is_better("test_error")
    assert not lower_is_better("f1") and not lower_is_better("bleu")
    flipped = collect(g, runs, higher=["val_loss"])
    assert flipped.rows[1].marks["val_loss"] == "best"


def test_metrics_can_be_chosen_and_ordered(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    table = collect(g, runs, metrics=["val_loss", "nope"])
    assert table.metrics == ["val_loss"]
    assert all(set(r.stats) <= {"val_loss"} for r in table.rows)
    assert "accuracy" not in to_markdown(table)


def test_failed_and_missing_runs_are_shown_not_dropped(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    table = collect(g, runs)
    big_c = table.rows[3]
    assert big_c.finished == 0 and big_c.stats == {}
    assert big_c.runs_text() == "0/2 (1 missing, 1 failed)"
    assert {(p.run_id, p.status) for p in big_c.problems} == {
        ("regularisation-c--c-10--seed0", "missing"),
        ("regularisation-c--c-10--seed1", "failed"),
    }
    md = to_markdown(table)
    assert "| Regularisation C: C=10 | 0/2 (1 missing, 1 failed) | failed | — |" in md
    assert "- `regularisation-c--c-10--seed1`: failed (exit code 1: boom)" in md
    assert "- Bigger dataset: no config key for it" in md


def test_a_record_from_other_overrides_counts_as_stale(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    g.mappings[0].variants[0].overrides["augment.noise"] = 0.5  # edited after the runs
    row = collect(g, runs).rows[1]
    assert row.finished == 0 and {p.status for p in row.problems} == {"stale"}


def test_markdown_table_is_ready_to_paste(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    md = to_markdown(collect(g, runs))
    lines = md.splitlines()
    assert lines[0] == "| Ablation | Runs | accuracy | Δ accuracy | val_loss | Δ val_loss |"
    assert lines[1] == "|---|---|---:|---:|---:|---:|"
    assert lines[2] == "| baseline | 2/2 | 0.910 ± 0.014 |  | 0.290 ± 0.014 |  |"
    assert lines[3] == (
        "| No augmentation: off | 2/2 | *0.820 ± 0.028* | -0.090 | *0.480 ± 0.028* | +0.190 |"
    )
    assert lines[4] == (
        "| Regularisation C: C=0.1 | 2/2 | **0.940 ± 0.014** | +0.030 "
        "| **0.260 ± 0.014** | -0.030 |"
    )
    assert "Mean ± std over 2 seeds" in md and "lower is better for val_loss" in md


def test_latex_is_booktabs_with_escaped_labels(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    g.mappings[0].ablation = "No aug & 50% noise_level"
    for run_id in list((runs).iterdir()):
        if run_id.name.startswith("no-aug"):
            run_id.rename(runs / run_id.name.replace("no-augmentation", "no-aug-50-noise-level"))
    for path in runs.glob("no-aug-50-noise-level*/result.json"):
        data = json.loads(path.read_text())
        data["ablation"] = "No aug & 50% noise_level"
        path.write_text(json.dumps(data))
    tex = to_latex(collect(g, runs))
    assert r"\begin{tabular}{llrrrr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"No aug \& 50\% noise\_level: off" in tex
    assert r"accuracy & $\Delta$ accuracy & val\_loss & $\Delta$ val\_loss \\" in tex
    assert r"\textbf{0.940 $\pm$ 0.014} & +0.030" in tex
    assert r"\underline{0.820 $\pm$ 0.028} & $-$0.090" in tex
    assert "best ablation per metric in bold, worst underlined" in tex


def test_write_results_writes_tables_json_and_a_png_chart(tmp_path: Path) -> None:
    g, runs = full_runs(tmp_path)
    written = write_results(collect(g, runs), tmp_path / "out")
    assert set(written) == {"markdown", "latex", "json", "chart"}
    assert written["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(written["chart"]) as image:
        assert image.width > 400 and image.height > 200
    data = json.loads(written["json"].read_text())
    assert data["paper_id"] == "toy_paper" and len(data["rows"]) == 4
    assert data["rows"][2]["marks"] == {"accuracy": "best", "val_loss": "best"}


def test_the_chart_leaves_pyplot_and_the_backend_alone(tmp_path: Path) -> None:
    """A notebook's backend must not be switched: the chart uses the Agg canvas directly."""
    code = (
        "import sys, matplotlib\n"
        "from ablationkit.runs.chart import draw_chart\n"
        "from ablationkit.runs.results import collect\n"
        "from ablationkit.runs.model import Grid\n"
        "import json\n"
        f"g = Grid.model_validate_json(open({str(tmp_path / 'g.json')!r}).read())\n"
        f"draw_chart(collect(g, {str(tmp_path / 'runs')!r}), {str(tmp_path / 'c.png')!r})\n"
        "print(json.dumps(['matplotlib.pyplot' in sys.modules]))\n"
    )
    g, _ = full_runs(tmp_path)
    (tmp_path / "g.json").write_text(g.model_dump_json())
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False]
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_execute_then_results_end_to_end(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "train.py").write_text(
        "import json, sys\n"
        "a = dict(x.split('=', 1) for x in sys.argv[1:])\n"
        "c, seed = float(a.get('model.C', 1)), int(a['seed'])\n"
        "print(json.dumps({'accuracy': 0.9 - abs(c - 1) / 100 + seed / 1000}))\n"
    )
    g = grid()
    report = execute(g, f"{sys.executable} train.py {{overrides}}", project=project, jobs=2)
    assert not report.failed
    table = collect(g, project / "runs")
    assert [r.runs_text() for r in table.rows] == ["2/2"] * 4
    assert table.rows[3].diffs["accuracy"] == pytest.approx(-0.09)


def run_cli(cli: str, *args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_cli_results_prints_and_writes_everything(cli: str, tmp_path: Path) -> None:
    g, _ = full_runs(tmp_path)
    (tmp_path / "grid.json").write_text(g.model_dump_json())
    done = run_cli(cli, "results", "grid.json", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "No augmentation: off" in done.stdout and "0.940 ± 0.014" in done.stdout
    assert "regularisation-c--c-10--seed1: failed (exit code 1: boom)" in done.stdout
    assert "not run: Bigger dataset: no config key for it" in done.stdout
    assert "results: 2 runs without numbers" in done.stderr
    for name in ("results.md", "results.tex", "results.json", "results.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_cli_results_of_a_grid_never_run_lists_every_run_as_missing(
    cli: str, tmp_path: Path
) -> None:
    (tmp_path / "grid.json").write_text(grid(seeds=(0,)).model_dump_json())
    done = run_cli(cli, "results", "grid.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "results: 4 runs without numbers" in done.stderr
    md = (tmp_path / "results" / "results.md").read_text()
    assert md.count("not run, or not finished") == 4
    assert not (tmp_path / "results" / "results.png").exists()  # nothing to draw


def test_results_json_reads_back_into_the_same_table(tmp_path: Path) -> None:
    from ablationkit.runs.results import load_results

    g, runs = full_runs(tmp_path)
    table = collect(g, runs)
    write_results(table, tmp_path / "out")
    again, chart = load_results(tmp_path / "out")
    assert to_markdown(again) == to_markdown(table) and to_latex(again) == to_latex(table)
    assert chart == tmp_path / "out" / "results.png"


def test_a_damaged_results_json_is_one_line_format_error(tmp_path: Path) -> None:
    from ablationkit.errors import FormatError
    from ablationkit.runs.results import load_results

    (tmp_path / "results.json").write_text('{"format": "ablationkit.results/1", "rows": 3}')
    with pytest.raises(FormatError, match=r"results.json: not a results file"):
        load_results(tmp_path)
    with pytest.raises(FormatError, match=r"no results\.json here"):
        load_results(tmp_path / "nowhere")


# --- shown beside the plan: the static site -------------------------------------------------


def results_folder(tmp_path: Path, paper_id: str, label: str = "Regularisation C") -> Path:
    g, runs = full_runs(tmp_path / paper_id)
    g.paper_id = paper_id
    table = collect(g, runs)
    table.rows[2].ablation = label
    write_results(table, tmp_path / paper_id / "results")
    return tmp_path / paper_id / "results"


def test_site_shows_a_papers_results_beside_its_plan(
    judged_runs: list[Path], tmp_path: Path
) -> None:
    from ablationkit.site import build_site

    mine = results_folder(tmp_path, "paper-000", label="<script>alert(1)</script>")
    other = results_folder(tmp_path, "not-in-the-runs")
    report = build_site(judged_runs[:1], tmp_path / "site", resamples=0, results=[mine, other])
    page = (tmp_path / "site" / "runs" / "toy-run" / "paper-000.html").read_text()
    assert "Results of the ablations" in page
    assert '<td class="best">0.940 ± 0.014</td>' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;: C=0.1" in page and "<script>alert" not in page
    assert "regularisation-c--c-10--seed1: failed (exit code 1: boom)" in page
    assert 'src="../../assets/results-paper-000.png"' in page
    assert (tmp_path / "site" / "assets" / "results-paper-000.png").read_bytes()[:4] == b"\x89PNG"
    untouched = (tmp_path / "site" / "runs" / "toy-run" / "paper-001.html").read_text()
    assert "Results of the ablations" not in untouched
    assert "results for not-in-the-runs: no page of that paper in these runs" in report.warnings


def test_site_cli_takes_results_folders_and_names_a_damaged_one(
    cli: str, judged_runs: list[Path], tmp_path: Path
) -> None:
    mine = results_folder(tmp_path, "paper-001")
    done = run_cli(
        cli, "site", judged_runs[0], "-o", "site", "--resamples", "0", "--results", mine,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Results of the ablations" in (tmp_path / "site/runs/toy-run/paper-001.html").read_text()
    (mine / "results.json").write_text("{")
    done = run_cli(cli, "site", judged_runs[0], "-o", "site", "--results", mine, cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {mine / 'results.json'}: not a results file")


# --- shown beside the plan: the app ---------------------------------------------------------


def test_app_serves_a_papers_results_and_chart(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    pytest.importorskip("fastapi")
    from ablationkit.app import AppServer, AppSettings

    folder = results_folder(tmp_path, "gated-things", label="<b>bold</b>")
    settings = AppSettings(model="fake", port=0, cache=False, results=[str(folder)])
    with AppServer(settings) as server:
        with urllib.request.urlopen(f"{server.url}/api/results/gated-things", timeout=30) as r:
            data = json.loads(r.read())
        assert data["header"][:3] == ["Ablation", "Runs", "accuracy"]
        assert data["rows"][2][0] == ["<b>bold</b>: C=0.1", None]  # text: the page sets textContent
        assert data["rows"][2][2] == ["0.940 ± 0.014", "best"]
        assert data["chart"] is True
        with urllib.request.urlopen(
            f"{server.url}/api/results/gated-things/chart.png", timeout=30
        ) as r:
            assert r.headers["Content-Type"] == "image/png" and r.read()[:4] == b"\x89PNG"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.url}/api/results/other", timeout=30)
        assert missing.value.code == 404


def test_serve_with_a_damaged_results_folder_is_one_line(cli: str, tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("[]")
    done = run_cli(cli, "serve", "--port", "1", "--results", tmp_path, cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'results.json'}: not a results file")


def test_app_page_shows_the_results_under_the_plan(tmp_path: Path) -> None:
    """In a real browser: plan an uploaded paper, and its results table and chart appear."""
    pytest.importorskip("playwright")
    pytest.importorskip("fastapi")
    from playwright.sync_api import expect, sync_playwright

    from ablationkit.app import AppServer, AppSettings
    from ablationkit.testing import FakeLLMServer
    from test_browser import CHROMIUM_FLAGS, PAPER, PLAN, _chromium, screenshot

    executable = _chromium()
    folder = results_folder(tmp_path, "gated-things")
    with FakeLLMServer(default=json.dumps(PLAN)) as llm:
        settings = AppSettings(
            model="fake-model", api_base=llm.url, port=0, cache=False, k=2, results=[str(folder)]
        )
        with AppServer(settings) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(server.url + "/")
                paper = {"name": "gated-things.md", "mimeType": "text/markdown"}
                page.set_input_files("#file", files=[{**paper, "buffer": PAPER.encode()}])
                page.click("#plan-button")
                box = page.locator("#results-box")
                expect(box).to_be_visible(timeout=30_000)
                expect(box.locator("td.best").first).to_have_text("0.940 ± 0.014")
                page.wait_for_function(  # the chart loaded (a broken image has no width)
                    "document.querySelector('#results-box img').naturalWidth > 400"
                )
                screenshot(page, "app-results")
            finally:
                browser.close()


def test_an_output_folder_that_is_a_file_is_one_line(cli: str, tmp_path: Path) -> None:
    (tmp_path / "grid.json").write_text(grid(seeds=(0,)).model_dump_json())
    (tmp_path / "taken").write_text("a file")
    done = run_cli(cli, "results", "grid.json", "-o", "taken", cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line == "error: taken: the output folder cannot be made (File exists)"
