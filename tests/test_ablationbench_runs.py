"""AblationBench folders into a run and back, and the run scored by the reference's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablationkit.ablationbench.runs import export_run, import_run, score_run
from ablationkit.bench.store import read_run

GT = [
    {"name": "No KL", "ablated_part": "KL", "action": "REMOVE", "metrics": ["FID"]},
    {"name": "Width", "ablated_part": "width", "action": "REPLACE", "replacement": ["64"]},
]


def _row(name: str, action: str = "REMOVE") -> dict[str, object]:
    return {
        "name": name,
        "ablated_part": name.lower(),
        "action": action,
        "replacement": None,
        "metrics": ["FID"],
    }


def _reference_folders(root: Path) -> tuple[Path, Path, Path]:
    rows = [
        {
            "id": "paper-a_1",
            "paper_title": "A",
            "paper_abstract": "a",
            "ablations_in_paper": json.dumps(GT),
            "mode": "author",
        },
        {
            "id": "paper-b",
            "paper_title": "B",
            "paper_abstract": "b",
            "ablations_in_paper": json.dumps(GT),
            "mode": "author",
        },
        {
            "id": "paper-empty",
            "paper_title": "E",
            "paper_abstract": "e",
            "ablations_in_paper": json.dumps(GT),
            "mode": "author",
        },
    ]
    dataset = root / "author.jsonl"
    dataset.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    plans = root / "gpt-4o"
    plans.mkdir()
    lines_a = [_row("Remove KL"), _row("Remove KL"), _row("Add dropout", "ADD")]
    (plans / "paper-a_1.jsonl").write_text("\n".join(json.dumps(r) for r in lines_a), "utf-8")
    (plans / "paper-b.jsonl").write_text(json.dumps(_row("Other")) + "\n", "utf-8")
    (plans / "paper-empty.jsonl").write_bytes(b"")  # a failed plan: scores 0, stays in the mean
    (plans / "plans.json").write_text(
        json.dumps({"paper-a_1": {"predictions": "", "cost": 0.5}}), "utf-8"
    )
    judge = root / "judge"
    judge.mkdir()
    (judge / "paper-a_1.jsonl").write_text(
        '{"name_in_paper": "No KL", "name_in_plan": "Remove KL"}\n'
        '{"name_in_paper": "Width", "name_in_plan": ["Add dropout", "missing"]}',
        "utf-8",
    )
    (judge / "paper-b.jsonl").write_text('{"name_in_paper": "No KL", "name_in_plan": null}')
    (judge / "paper-empty.jsonl").write_text("")
    return dataset, plans, judge


def test_import_scores_by_the_reference_formulas_and_exports_the_same_predictions(
    tmp_path: Path,
) -> None:
    dataset, plans, judge = _reference_folders(tmp_path)
    run = tmp_path / "runs" / "imported"  # need not exist before the import
    report = import_run(plans, dataset, run, evaluations_dir=judge, judge="gpt-4o-judge")
    assert sorted(report.plans) == ["paper-a_1", "paper-b", "paper-empty"]
    record = read_run(run, dataset=False)
    assert [a.name for a in record.plans["paper-a_1"].ablations] == [
        "Remove KL",
        "Remove KL",
        "Add dropout",
    ]  # duplicate plan lines are kept
    assert record.plans["paper-a_1"].usage is not None
    assert record.plans["paper-a_1"].usage.cost_usd == 0.5
    scores = score_run(record.plans, record.judgements, ["paper-a_1", "paper-b", "paper-empty"])
    per = scores["gpt-4o-judge"]["per_paper"]
    # paper-a_1: TP 1 (No KL); the list with a name not in the plan matches nothing but clears
    # "Add dropout" from the false positives: FP 0, FN 1
    assert per["paper-a_1"]["precision"] == pytest.approx(1.0)
    assert per["paper-a_1"]["recall"] == pytest.approx(0.5)
    assert per["paper-a_1"]["f1"] == pytest.approx(2 / 3)
    assert per["paper-b"]["f1"] == 0.0 and per["paper-empty"]["f1"] == 0.0
    assert scores["gpt-4o-judge"]["macro"]["f1"] == pytest.approx((2 / 3) / 3)

    out = tmp_path / "export"
    export_run(run, out)
    for name in ("paper-a_1.jsonl", "paper-b.jsonl", "paper-empty.jsonl"):
        got = [json.loads(x) for x in (out / "plans" / name).read_text("utf-8").splitlines()]
        want = [json.loads(x) for x in (plans / name).read_text("utf-8").splitlines()]
        assert got == want
        got_j = [json.loads(x) for x in (out / "gpt-4o-judge" / name).read_text().splitlines()]
        want_j = [json.loads(x) for x in (judge / name).read_text().splitlines()]
        assert got_j == want_j
    evaluations = json.loads((out / "gpt-4o-judge" / "evaluations.json").read_text())
    assert {e["id"]: e["f1_score"] for e in evaluations}["paper-a_1"] == pytest.approx(2 / 3)


def test_import_needs_ground_truth_in_the_rows(tmp_path: Path) -> None:
    from ablationkit.errors import FormatError

    dataset = tmp_path / "d.jsonl"
    dataset.write_text(json.dumps({"id": "x", "paper_title": "T", "mode": "author"}), "utf-8")
    (tmp_path / "plans").mkdir()
    with pytest.raises(FormatError, match="needs ablations_in_paper"):
        import_run(tmp_path / "plans", dataset, tmp_path / "run")


def test_cli_import_score_json_export_and_site(tmp_path: Path, cli: str) -> None:
    import subprocess

    dataset, plans, judge = _reference_folders(tmp_path)
    run = tmp_path / "run"

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    call(
        "bench",
        "import-ablationbench",
        "--plans",
        str(plans),
        "--dataset",
        str(dataset),
        "--run",
        str(run),
        "--evaluations",
        str(judge),
        "--judge",
        "gpt-4o-judge",
    )
    scored = json.loads(
        call("bench", "score", "--run", str(run), "--protocol", "ablationbench", "--json").stdout
    )
    entry = scored["judges"]["gpt-4o-judge"]
    assert entry["per_paper"]["paper-a_1"]["f1"] == pytest.approx(2 / 3)
    assert entry["macro"]["f1"] == pytest.approx((2 / 3) / 3)  # failed/empty papers count as 0
    ours = json.loads(call("bench", "score", "--run", str(run), "--json").stdout)
    assert set(ours["judges"]["gpt-4o-judge"]["per_paper"]) == {
        "paper-a_1",
        "paper-b",
        "paper-empty",
    }
    call("bench", "export-ablationbench", "--run", str(run), "--out", str(tmp_path / "x"))
    assert (tmp_path / "x" / "plans" / "plans.json").is_file()
    call("site", str(run), "-o", str(tmp_path / "site"))
    pages = list((tmp_path / "site").rglob("*.html"))
    assert any("Remove KL" in page.read_text("utf-8") for page in pages)
