"""The run record: one typed reader of a run directory (``read_run``) for notebooks, ``bench
score`` and the site; old runs load; failed papers count as 0; a judge that never gave a verdict
is shown as failed, not ranked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import ablationkit
from ablationkit.bench import Run, RunStore, read_run
from ablationkit.bench.store import (
    RUN_FORMAT,
    JudgeStageConfig,
    PlanStageConfig,
    RunFormatError,
    legacy_stem,
)
from ablationkit.judge.metrics import aggregate, score_judgement
from ablationkit.schema import Ablation, Action, Judgement, Match, Plan
from ablationkit.site import build_site
from ablationkit.testing import FakeLLMServer
from fakes import respond, tiny_dataset


def cli_run(cli: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [cli, *map(str, args)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def two_ablations(paper_id: str, n: int = 2) -> Plan:
    parts = ["the gate", "the encoder", "the decoder"]
    return Plan(
        model="m",
        paper_id=paper_id,
        mode="author",
        ablations=[
            Ablation(name=f"No {part}", ablated_part=part, action=Action.REMOVE)
            for part in parts[:n]
        ],
    )


def verdict(plan: Plan, judge: str = "lm:m", *, error: str | None = None) -> Judgement:
    """The judge found the first planned ablation to be the paper's one ground truth."""
    return Judgement(
        judge=judge,
        paper_id=plan.paper_id,
        mode=plan.mode,
        k=len(plan.ablations),  # what a judge sets: never more than the plan has
        planned=[a.name for a in plan.ablations],
        targets=["Gate"],
        matches=[] if error else [Match(planned=0, target=0)],
        error=error,
    )


def hand_made_run(tmp_path: Path, *, k: int = 2) -> RunStore:
    """Four papers: 000 judged (1 of k matches), 001 judged with an error, 002 failed to plan
    (failures.json), 003 in the dataset with no plan file (the stage never finished it)."""
    dataset = tiny_dataset(tmp_path / "data.jsonl", 4)
    store = RunStore(tmp_path / "run")
    store.record_stage("plan", PlanStageConfig(dataset=str(dataset), model="m", k=k))
    store.record_stage("judge:lm:m", JudgeStageConfig(judge="lm:m"))
    good, bad = two_ablations("paper-000"), two_ablations("paper-001")
    for plan in (good, bad):
        store.write_plan(plan)
    store.write_judgement(verdict(good))
    store.write_judgement(verdict(bad, error="HTTP 500 from the judge"))
    store.record_failures("plan", {"paper-002": "HTTP 400: this paper is cursed"})
    return store


# ---------------------------------------------------------------- read_run on a CLI run


def test_read_run_gives_a_cli_made_run_typed_as_a_notebook_uses_it(
    cli: str, tmp_path: Path
) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 3)
    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=respond) as server:
        common: list[str | Path] = ["--run", run_dir, "--api-base", server.url]
        steps: tuple[list[str | Path], ...] = (
            ["bench", "plan", dataset, *common, "--model", "m", "-k", "2"],
            ["bench", "judge", *common, "--judge", "m"],
        )
        for step in steps:
            done = cli_run(cli, *step)
            assert done.returncode == 0, done.stderr
    # what a notebook does: one import, one call, attributes all the way down
    run = ablationkit.read_run(run_dir)
    assert run.manifest.format == RUN_FORMAT and run.manifest.version == ablationkit.__version__
    assert run.plan_config is not None
    assert (run.plan_config.model, run.plan_config.k) == ("m", 2)
    assert run.plan_config.dataset == str(dataset) and run.plan_config.api_base == server.url
    assert sorted(run.plans) == ["paper-000", "paper-001", "paper-002"]
    plan = run.plans["paper-001"]
    assert isinstance(plan, Plan) and plan.ablations[0].name == "Drop the gate"
    assert run.judges == ["lm:m"] and run.judge_configs["lm:m"].judge == "lm:m"
    judged = run.judgements["lm:m"]["paper-002"]
    assert judged.matches == [Match(planned=0, target=0)] and judged.error is None
    assert run.failures.of("plan") == {} and run.failures.of("judge:lm:m") == {}
    assert run.instances is not None and run.instances["paper-000"].ground_truth[0].name == "Gate"
    assert run.scores is None and not run.warnings  # not scored yet
    scores = run.score(resamples=20)
    lm = scores.judges["lm:m"]
    assert lm.papers == 3 and lm.failures == 0 and not lm.failed
    assert lm.macro.precision == 0.5 and lm.macro.recall == 1.0  # 1 of k=2; the one target
    assert lm.per_paper["paper-000"].f1 == pytest.approx(2 / 3)
    # bench score stores the same figures, in the shape older readers knew
    done = cli_run(cli, "bench", "score", "--run", run_dir)
    assert done.returncode == 0, done.stderr
    assert "lm:m" in done.stdout and "0.500" in done.stdout
    stored = json.loads((run_dir / "scores.json").read_text("utf-8"))
    assert stored["judges"]["lm:m"]["macro"]["precision"] == 0.5
    assert stored["judges"]["lm:m"]["macro_ci95"]["f1"] == list(lm.macro_ci95["f1"])
    assert stored["model"] == "m" and stored["plans"] == 3 and "warnings" not in stored
    assert read_run(run_dir).scores == Run(run_dir).store.read_scores()


def test_read_run_of_a_folder_that_is_not_a_run_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ablationkit.FormatError, match=r"not a run directory \(no run.json\)"):
        read_run(tmp_path)
    (tmp_path / "file").write_text("x", "utf-8")
    with pytest.raises(ablationkit.FormatError, match="it is a file"):
        read_run(tmp_path / "file")


# ---------------------------------------------------------------- old and unknown runs


def test_a_run_made_by_the_previous_version_loads_and_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    """0.1's layout, written by hand: untyped run.json without a format, judge folder and
    file names made by safe_name, scores.json without the failure fields."""
    dataset = tiny_dataset(tmp_path / "data.jsonl", 3)
    run_dir = tmp_path / "run"
    plan_config: dict[str, object] = {
        "dataset": str(dataset),
        "model": "m",
        "mode": None,
        "k": 2,
        "api_base": "http://127.0.0.1:9",
        "ids": None,
        "limit": None,
        "papers_root": None,
        "params": {},
    }
    manifest = {
        "version": "0.1.0",
        "created": 1_700_000_000.0,
        "stages": {
            "plan": {"config": plan_config, "updated": 1_700_000_100.0},
            "judge:lm:m": {"config": {"judge": "lm:m", "k": None}, "updated": 1_700_000_200.0},
        },
    }
    (run_dir / "plans").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(manifest, indent=2), "utf-8")
    old_judge_dir = run_dir / "judgements" / legacy_stem("lm:m")  # "lm_m"
    old_judge_dir.mkdir(parents=True)
    for n in range(2):
        plan = two_ablations(f"paper-00{n}")
        (run_dir / "plans" / f"paper-00{n}.json").write_text(plan.to_json(), "utf-8")
        (old_judge_dir / f"paper-00{n}.json").write_text(verdict(plan).model_dump_json(), "utf-8")
    (run_dir / "failures.json").write_text(
        json.dumps({"plan": {"paper-002": "HTTP 400"}, "judge:lm:m": {}}), "utf-8"
    )
    old_scores = {
        "model": "m",
        "mode": None,
        "k": 2,
        "dataset": str(dataset),
        "plans": 2,
        "plan_cost_usd": None,
        "judges": {
            "lm:m": {
                "papers": 2,
                "errors": 0,
                "error_ids": [],
                "macro": {"precision": 0.5, "recall": 1.0, "f1": 0.6667},
                "micro": {"precision": 0.5, "recall": 1.0, "f1": 0.6667},
                "macro_ci95": {"f1": [0.6667, 0.6667]},
                "per_paper": {
                    "paper-000": {
                        "paper_id": "paper-000",
                        "planned": 2,
                        "matched_planned": 1,
                        "targets": 1,
                        "matched_targets": 1,
                        "precision": 0.5,
                        "recall": 1.0,
                        "f1": 0.6667,
                    }
                },
            }
        },
    }
    (run_dir / "scores.json").write_text(json.dumps(old_scores), "utf-8")

    run = read_run(run_dir)
    assert run.manifest.format == 1 and run.manifest.version == "0.1.0" and not run.warnings
    assert run.plan_config is not None and run.plan_config.api_base == "http://127.0.0.1:9"
    assert run.manifest.stages["plan"].updated == 1_700_000_100.0
    assert sorted(run.judgements["lm:m"]) == ["paper-000", "paper-001"]
    assert run.scores is not None and run.scores.judges["lm:m"].per_paper["paper-000"].f1 > 0.6
    assert run.scores.judges["lm:m"].failures == 0  # 0.1 did not count them
    assert run.plan_failures() == {"paper-002": "HTTP 400"}
    # scored again now, the paper that failed to plan counts as 0
    rescored = Run(run_dir).score(resamples=0).judges["lm:m"]
    assert rescored.papers == 3 and rescored.plan_failure_ids == ["paper-002"]
    assert rescored.macro.f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    # the next stage run keeps everything and writes the current format
    store = RunStore(run_dir)
    store.check_stage("plan", plan_config)  # the same experiment: not refused
    store.record_stage("judge:embedding", {"k": None})
    upgraded = json.loads((run_dir / "run.json").read_text("utf-8"))
    assert upgraded["format"] == RUN_FORMAT and upgraded["version"] == "0.1.0"
    assert upgraded["stages"]["plan"]["config"] == plan_config
    assert set(upgraded["stages"]) == {"plan", "judge:lm:m", "judge:embedding"}


@pytest.mark.parametrize(
    ("manifest", "needle"),
    [
        ({"format": 99, "version": "9.0.0", "stages": {}}, "upgrade ablationkit"),
        ({"version": "0.0.3", "papers": ["a"]}, "plan again into a new run directory"),
    ],
    ids=["newer", "much-older"],
)
def test_a_run_of_an_unknown_format_gets_one_line_saying_how_to_migrate(
    cli: str, tmp_path: Path, manifest: dict[str, object], needle: str
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(RunFormatError, match=needle):
        read_run(run_dir)
    commands: list[list[str | Path]] = [
        ["bench", "score", "--run", run_dir],
        ["site", run_dir, "-o", tmp_path / "s"],
    ]
    for args in commands:
        done = cli_run(cli, *args)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(lines) == 1 and str(run_dir / "run.json") in lines[0] and needle in lines[0]
    # nothing repairs it: a newer version's run is never set aside or rewritten
    with pytest.raises(RunFormatError):
        RunStore(run_dir).record_stage("plan", {"dataset": "x.jsonl", "model": "m"})
    assert json.loads((run_dir / "run.json").read_text("utf-8")) == manifest
    assert not list(run_dir.glob("run.json.corrupt-*"))


# ---------------------------------------------------------------- failures count as 0


def test_papers_whose_plan_or_judgement_failed_count_as_zero(tmp_path: Path) -> None:
    store = hand_made_run(tmp_path)
    run = read_run(store.root)
    assert run.plan_failures() == {
        "paper-002": "HTTP 400: this paper is cursed",
        "paper-003": "not planned (no plan file)",
    }
    lm = run.score(resamples=50).judges["lm:m"]
    assert lm.papers == 4 and not lm.failed
    assert (lm.errors, lm.error_ids) == (1, ["paper-001"])
    assert (lm.plan_failures, lm.plan_failure_ids) == (2, ["paper-002", "paper-003"])
    assert lm.failures == 3 and lm.failed_ids == ["paper-001", "paper-002", "paper-003"]
    # one paper of four scored: P 1/2, R 1, F1 2/3; the three failed ones 0/0/0
    assert lm.macro.precision == pytest.approx(0.5 / 4)
    assert lm.macro.recall == pytest.approx(1 / 4)
    assert lm.macro.f1 == pytest.approx((2 / 3) / 4)
    # pooled: 1 match of 4 x k=2 planned, 1 of the 4 papers' 4 targets
    assert lm.micro.precision == pytest.approx(1 / 8) and lm.micro.recall == pytest.approx(1 / 4)
    assert lm.per_paper["paper-002"].error == "HTTP 400: this paper is cursed"
    assert lm.per_paper["paper-001"].f1 == 0 and lm.per_paper["paper-001"].recall == 0
    low, high = lm.macro_ci95["f1"]
    assert low <= lm.macro.f1 <= high


def test_a_judge_stage_failure_without_a_verdict_counts_as_zero(tmp_path: Path) -> None:
    store = hand_made_run(tmp_path)
    store.write_plan(two_ablations("paper-003"))  # planned now, but its judging crashed
    store.record_failures("judge:lm:m", {"paper-003": "RuntimeError: judge crashed"})
    lm = read_run(store.root).score(resamples=0).judges["lm:m"]
    assert lm.papers == 4 and lm.error_ids == ["paper-001", "paper-003"]
    assert lm.plan_failure_ids == ["paper-002"]


def test_precision_divides_by_the_k_asked_for_not_by_the_plan_length() -> None:
    plan = two_ablations("p", n=1)  # asked for 5, the planner gave 1 (which matches)
    judged = verdict(plan)
    assert judged.k == 1
    assert score_judgement(judged, k=5).precision == pytest.approx(1 / 5)
    assert score_judgement(judged, k=5).recall == 1.0
    assert aggregate([judged], k=5, resamples=0).micro.precision == pytest.approx(1 / 5)
    # a plan of 3 with one match at k=5 is 0.2, not 1/3
    three = verdict(two_ablations("q", n=3))
    assert score_judgement(three, k=5).precision == pytest.approx(0.2)
    # matches beyond k do not count
    longer = three.model_copy(update={"matches": [Match(planned=2, target=0)]})
    assert score_judgement(longer, k=2).precision == 0.0


def test_a_run_scores_precision_over_its_k(tmp_path: Path) -> None:
    store = hand_made_run(tmp_path, k=4)  # plans of 2 ablations where 4 were asked for
    lm = read_run(store.root).score(resamples=0).judges["lm:m"]
    assert lm.per_paper["paper-000"].precision == pytest.approx(1 / 4)
    assert lm.per_paper["paper-000"].planned == 4


# ---------------------------------------------------------------- a judge that always failed


def test_a_judge_that_failed_on_every_paper_is_flagged_and_not_ranked(
    cli: str, tmp_path: Path
) -> None:
    store = hand_made_run(tmp_path)
    store.record_stage("judge:lm:nokey", JudgeStageConfig(judge="lm:nokey"))
    for paper_id in ("paper-000", "paper-001"):
        plan = two_ablations(paper_id)
        store.write_judgement(verdict(plan, "lm:nokey", error="no API key for provider 'lm'"))
    scores = Run(store.root).score(resamples=20)
    assert scores.judges["lm:nokey"].failed and not scores.judges["lm:m"].failed
    stored = json.loads(store.scores_path.read_text("utf-8"))
    assert stored["judges"]["lm:nokey"]["failed"] is True
    assert stored["judges"]["lm:nokey"]["failures"] == 4

    report = build_site([store.root], tmp_path / "site", resamples=20)
    rows = {row.judge: row for row in report.leaderboard}
    assert rows["lm:nokey"].failed and not rows["lm:m"].failed
    assert [row.judge for row in report.leaderboard] == ["lm:m", "lm:nokey"]  # ranked first
    index = (tmp_path / "site" / "index.html").read_text("utf-8")
    failed_row = index[index.index('class="judge-failed"') :].split("</tr>")[0]
    assert "judge failed" in failed_row and "lm:nokey" in failed_row
    assert '<td class="rank">—</td>' in failed_row and "0.0" not in failed_row

    done = cli_run(cli, "bench", "score", "--run", store.root)
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if "lm:nokey" in line]
    assert "judge failed" in line and "0.000" not in line
