"""Plan validity and quality statistics (``ablationkit.bench.quality``) on hand-made plans and
the shared papers, and ``benchmarks/bench_quality.py`` end to end on the fake server."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ablationkit.bench import load_dataset, read_run
from ablationkit.bench.datasets import Instance
from ablationkit.bench.quality import (
    PaperText,
    WordIndex,
    check_plan,
    content_words,
    count_validity,
    grounding,
    instance_text,
    instances_for,
    is_grounded,
    measure_raw_prompt_rate,
    metric_in_text,
    paper_score,
    plan_prompt_rate,
    summarise_scores,
    time_split,
    variant_figures,
    words,
)
from ablationkit.papers.markdown import load_markdown
from ablationkit.papers.roles import assign_roles
from ablationkit.schema import Ablation, Action, Plan, Timings, Usage
from ablationkit.testing import FakeLLMServer, Reply, plan_or_verdict

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PART = "the 8 attention heads of the fusion encoder"

PAPER = """# GateNorm: Gated Normalisation

## Abstract

We gate between LayerNorm and RMSNorm.

## 1 Introduction

Normalisation matters for small vision transformers.

## 2 Method

GateNorm mixes LayerNorm and RMSNorm with an input-dependent gate g(x), a two-layer MLP with
hidden size 64 and a sigmoid of temperature τ = 0.5. During a 5-epoch warm-up the gate is fixed.

## 3 Experiments

We report top-1 accuracy on ImageNet, the Fréchet Inception Distance (FID) of samples, the
Inception Score (IS) and the negative log-likelihood of held-out images. Throughput is measured.
"""


def paper_text() -> PaperText:
    return PaperText.of(assign_roles(load_markdown(PAPER, source="gatenorm")))


def item(part: str, action: str = "REMOVE", replacement: Any = None, **extra: Any) -> Ablation:
    return Ablation(
        name=extra.pop("name", part.title()),
        ablated_part=part,
        action=Action(action),
        replacement=replacement,
        metrics=extra.pop("metrics", ["top-1 accuracy"]),
    )


def plan_of(*items: Ablation, paper_id: str = "gatenorm", **extra: Any) -> Plan:
    return Plan(model="m", paper_id=paper_id, mode="author", ablations=list(items), **extra)


# ---------------------------------------------------------------------------- words


def test_words_are_casefolded_stemmed_split_and_greek_letters_named() -> None:
    assert words("Top-1 Accuracies of the β-term") == [
        "top",
        "1",
        "accuracy",
        "of",
        "the",
        "beta",
        "term",
    ]
    assert words("$\\beta$") == words("β") == ["beta"]
    assert words("sampling sampled samples") == ["sampl"] * 3
    assert words("losses heads") == ["loss", "head"]
    # function words, kind-of-part words, numbers and parentheses name no part
    assert content_words("the number of selected keyframes K = 16 (the paper's value)") == [
        "select",
        "keyfram",
        "k",
    ]
    assert content_words("(GRU)") == ["gru"]  # unless the parentheses are all there is


@pytest.mark.parametrize(
    ("metric", "found"),
    [
        ("top-1 accuracy", True),
        ("Top-1 Acc.", True),  # abbreviation of a word of the paper
        ("accuracies", True),  # plural
        ("FID", True),
        ("Frechet Inception Distance", True),  # accents ignored
        ("FID (lower is better)", True),  # parentheses are commentary
        ("IS", True),  # written in capitals in the paper
        ("NLL", True),  # spelled out: "negative log-likelihood"
        ("throughput", True),
        ("Chamfer distance", False),
        ("memory", False),
        ("accuracy on CIFAR-10", False),
        ("", False),
    ],
)
def test_metric_occurs_in_the_paper(metric: str, found: bool) -> None:
    assert metric_in_text(metric, paper_text().index) is found


def test_an_acronym_that_is_an_english_word_needs_its_capitals() -> None:
    """ "IS" is the Inception Score only where the paper writes it so; "is" is everywhere."""
    index = WordIndex("The model is small and it is fast.")
    assert not metric_in_text("IS", index)
    assert metric_in_text("IS", WordIndex("We report the Inception Score (IS)."))


def test_metric_words_must_be_near_each_other() -> None:
    far = "top results " + "filler " * 30 + "and 1 accuracy"
    assert not metric_in_text("top-1 accuracy", WordIndex(far))
    assert metric_in_text("top-1 accuracy", WordIndex("the top-1 validation accuracy"))


def test_grounding_in_the_method_section() -> None:
    method = paper_text().method_index
    example = grounding(EXAMPLE_PART, method)
    assert not is_grounded(example) and "fusion" in example.missing
    assert is_grounded(grounding("the gate's sigmoid temperature τ (0.5)", method))
    assert is_grounded(grounding("5-epoch warm-up of the gate", method))
    # in the paper, but only in its experiments: not a part of the method
    assert not is_grounded(grounding("ImageNet throughput", method))
    assert not is_grounded(grounding("the 8", method))  # no content words at all


# ---------------------------------------------------------------------------- validity


def test_check_plan_flags_copies_placeholders_unknown_metrics_and_invented_parts() -> None:
    plan = plan_of(
        item(EXAMPLE_PART, "REPLACE", ["4", "16"], metrics=["accuracy"]),
        item("the input-dependent gate g(x)", "REPLACE", ["None"]),
        item("the MLP of the gate", "REPLACE", ["a simpler model"], metrics=["Top-1 Acc."]),
        item("the sigmoid temperature", "REPLACE", ["0.1", "1.0"], metrics=["Chamfer distance"]),
    )
    check = check_plan(plan, paper_text(), paper_id="gatenorm", mode="author", k=5)
    assert check.written and check.items == 4 and check.error is None
    assert len(check.copied) == 1 and "fusion encoder" in check.copied[0]
    assert len(check.placeholders) == 2
    assert "'None'" in check.placeholders[0] and "a simpler model" in check.placeholders[1]
    # metrics once per plan, case ignored: accuracy, top-1 accuracy, Top-1 Acc., Chamfer
    assert (check.metrics, check.metrics_found) == (4, 3)
    assert check.metrics_missing == ["Chamfer distance"]
    assert (check.parts, check.parts_grounded) == (4, 3)
    assert check.parts_ungrounded[0].startswith(EXAMPLE_PART)


def test_validity_counts_count_failed_and_short_plans() -> None:
    text = paper_text()
    full = check_plan(
        plan_of(*[item("the gate warm-up")] * 2), text, paper_id="a", mode="author", k=2
    )
    short = check_plan(plan_of(item("the gate")), text, paper_id="b", mode="author", k=2)
    failed = check_plan(None, text, paper_id="c", mode="author", k=2, error="HTTP 400")
    assert not failed.written and failed.error == "HTTP 400"
    counts = count_validity([full, short, failed])
    assert (counts.plans_asked, counts.plans_written) == (3, 2)
    assert (counts.items_asked, counts.items, counts.short_plans) == (6, 3, 1)
    assert counts.grounded_fraction == 1.0 and counts.metrics_fraction == 1.0
    assert counts.as_dict()["grounded_fraction"] == 1.0


def test_shared_papers_ground_truth_is_grounded_and_its_metrics_found(papers_dir: Path) -> None:
    """The papers' own ablations are what a good plan looks like: their metrics are all in
    the paper (tables included) and nearly all parts in the method section; the prompt's
    example is grounded in none of them."""
    parts = grounded = 0
    for instance in load_dataset(papers_dir):
        text = instance_text(instance)
        for ablation in instance.ground_truth:
            assert all(metric_in_text(m, text.index) for m in ablation.metrics), ablation
            parts += 1
            grounded += is_grounded(grounding(ablation.ablated_part, text.method_index))
        assert not is_grounded(grounding(EXAMPLE_PART, text.method_index)), instance.id
    assert parts == 12 and grounded >= 11  # CoLES's hard-negative mining is in its results


def test_the_embedded_models_recorded_plans_are_flagged(papers_dir: Path) -> None:
    """The embedded model's plans of the labelled judge set: the reviewer-mode CoLES plan
    proposed the prompt's example; the author-mode one a vague replacement."""
    instances = {i.id: i for i in load_dataset(papers_dir)}
    checks = {}
    for mode in ("author", "reviewer"):
        path = REPO / "benchmarks" / "data" / "plans" / f"coles-event-sequences-{mode}.json"
        plan = Plan.model_validate_json(path.read_text("utf-8"))
        text = instance_text(instances[plan.paper_id])
        checks[mode] = check_plan(plan, text, paper_id=plan.paper_id, mode=plan.mode, k=5)
    assert [c.split(":")[0] for c in checks["reviewer"].copied] == ["Number of attention heads"]
    assert any(EXAMPLE_PART in part for part in checks["reviewer"].parts_ungrounded)
    assert "other sampling strategies" in checks["author"].placeholders[0]
    assert checks["author"].metrics_missing == ["f1-score", "recall"]


def test_instances_for_a_mode() -> None:
    sample = load_dataset("sample")
    assert [i.id for i in instances_for(sample, "author")] == ["kestrel-sample", "gatenorm-sample"]
    assert len(instances_for(sample, "reviewer")) == 3


# ---------------------------------------------------------------------------- scores, time


def test_pooled_scores_are_bench_scores_figures(judged_runs: list[Path]) -> None:
    """Pooling one run's papers gives exactly what ``bench score`` gives for it: the same
    macro figures and, with the same seed and resamples, the same intervals."""
    record = read_run(judged_runs[0])
    figures = record.judge_scores("lm:judge-model", resamples=200)
    pooled = summarise_scores([paper_score(r) for r in figures.per_paper.values()], resamples=200)
    assert pooled.papers == figures.papers == 4
    assert (pooled.precision, pooled.recall, pooled.f1) == (
        figures.macro.precision,
        figures.macro.recall,
        figures.macro.f1,
    )
    assert pooled.ci95 == figures.macro_ci95


def test_variant_figures_count_every_planned_paper(judged_runs: list[Path]) -> None:
    """One run's figures: every paper checked and scored, one whose text cannot be read
    included (checked against nothing, never dropped)."""
    from ablationkit.errors import FormatError

    def texts(instance: Instance) -> PaperText:
        if instance.id == "paper-001":
            raise FormatError("unreadable", where=instance.id)
        return instance_text(instance)

    record = read_run(judged_runs[0])
    figures = variant_figures(
        [record], label="m", model="m", mode="author", judge="lm:judge-model", texts=texts
    )
    assert figures.scores is not None and figures.scores.papers == 4 and figures.k == 2
    assert figures.validity.plans_written == 4 and figures.repeats is None
    unreadable = next(c for c in figures.checks if c.paper_id == "paper-001")
    assert unreadable.written and unreadable.parts_grounded == 0
    others = [c for c in figures.checks if c.paper_id != "paper-001"]
    assert all(c.parts_grounded == c.parts == 2 for c in others)


def test_failed_papers_count_as_zero_in_pooled_scores() -> None:
    from ablationkit.judge.metrics import PaperScore

    good = PaperScore("a", planned=2, matched_planned=2, targets=2, matched_targets=2)
    failed = PaperScore.failure("b", "HTTP 400", k=2, targets=3)
    pooled = summarise_scores([good, failed], resamples=100)
    assert (pooled.precision, pooled.recall, pooled.f1) == (0.5, 0.5, 0.5)
    assert pooled.failed == {"b": "HTTP 400"}
    low, high = pooled.ci95["f1"]
    assert low == 0.0 and high == 1.0


def test_time_split_and_the_plans_prompt_rate() -> None:
    timed = [
        plan_of(
            timings=Timings(load_s=1.0, prompt_s=10.0, generation_s=20.0, total_s=31.0),
            usage=Usage(prompt_tokens=1000, completion_tokens=10),
        ),
        plan_of(
            timings=Timings(load_s=3.0, prompt_s=30.0, generation_s=40.0, total_s=73.0),
            usage=Usage(prompt_tokens=3000, completion_tokens=10),
        ),
        plan_of(timings=Timings(load_s=2.0, generation_s=6.0)),  # a server without a split
        plan_of(),
    ]
    split = time_split(timed)
    assert split.plans == 4
    assert split.mean == {"load_s": 2.0, "prompt_s": 20.0, "generation_s": 22.0, "total_s": 52.0}
    assert split.median["generation_s"] == 20.0
    assert plan_prompt_rate(timed) == 100.0
    assert plan_prompt_rate(timed[2:]) is None
    # a follow-up call read 1,500 of its 2,500 tokens from the runtime's cache: the rate is
    # of the 1,000 the runtime computed
    followed = plan_of(
        timings=Timings(prompt_s=10.0, prompt_computed=1000),
        usage=Usage(prompt_tokens=2500, completion_tokens=10),
    )
    assert plan_prompt_rate([followed]) == 100.0


def test_raw_prompt_rate_times_fresh_1500_token_prompts_for_one_token() -> None:
    requests: list[dict[str, Any]] = []

    def raw_chat(request: dict[str, Any]) -> dict[str, Any]:
        requests.append(request)
        return {"timings": {"prompt_n": 1500, "prompt_ms": 3000.0}, "usage": {}}

    rate = measure_raw_prompt_rate(raw_chat, rounds=2)
    assert rate.median == 500.0 and rate.tokens == 1500
    assert len(requests) == 3  # a warm-up, then the timed rounds
    assert all(r["max_tokens"] == 1 and r["cache_prompt"] is False for r in requests)
    prompts = [r["messages"][0]["content"] for r in requests[1:]]
    assert len(set(prompts)) == 2 and all(1000 < len(p.split()) < 2000 for p in prompts)


def test_raw_prompt_rate_falls_back_to_wall_time() -> None:
    ticks = iter([0.0, 1.0, 10.0, 14.0])  # warm-up, then 4 s for the timed call

    def raw_chat(request: dict[str, Any]) -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 1600}}

    rate = measure_raw_prompt_rate(raw_chat, rounds=1, clock=lambda: next(ticks))
    assert rate.rates == [400.0]


# ---------------------------------------------------------------------------- the script


def bench_quality() -> ModuleType:
    path = REPO / "benchmarks" / "bench_quality.py"
    spec = importlib.util.spec_from_file_location("bench_quality", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REPLY = {
    "reasoning": "The DPP kernel and the teacher's distribution carry the method.",
    "ablations": [
        {
            "name": "Temporal bandwidth",
            "ablated_part": "temporal bandwidth sigma of the DPP kernel",
            "action": "REPLACE",
            "replacement": ["0.01", "0.2"],
            "metrics": ["Accuracy", "BLEU-4"],
        },
        {
            "name": "Teacher temperature",
            "ablated_part": "softmax temperature tau of the teacher distribution",
            "action": "REPLACE",
            "replacement": ["1", "4"],
            "metrics": ["accuracy"],
        },
    ],
}
VERDICT = {"reasoning": "the first is the same", "matches": [{"planned": 0, "ground_truth": 0}]}


def test_bench_quality_end_to_end_on_the_fake_server(
    fake_llm: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample in both modes through ``bench plan``/``bench judge`` machinery: figures per
    mode, the failed paper counted as 0, and a rerun that asks the server nothing."""
    answer = plan_or_verdict(REPLY, VERDICT)

    def respond(body: dict[str, Any]) -> Reply | str:
        schema = json.dumps(body.get("response_format", {}))
        if "GateNorm" in json.dumps(body["messages"]) and '"matches"' not in schema:
            return Reply(status=400, content="no GateNorm today")  # its plans fail
        return answer(body)

    fake_llm.responder = respond
    argv = [
        *("--model", "fake-model", "--api-base", fake_llm.url, "--dataset", "sample"),
        *("--judge", "lm:judge-model", "--k", "2", "--resamples", "50"),
        *("--run-dir", str(tmp_path / "run"), "--json", str(tmp_path / "figures.json")),
    ]
    script = bench_quality()
    assert script.main(argv) == 0
    asked = len(fake_llm.requests)
    data = json.loads((tmp_path / "figures.json").read_text("utf-8"))
    author, reviewer = data["variants"]
    assert (author["mode"], reviewer["mode"]) == ("author", "reviewer")
    assert data["judge"] == author["judge"] == "lm:judge-model" and data["raw_runtime"] == {}

    # author: kestrel planned and judged (1 of 2 matched, 1 of 5 targets), GateNorm failed: 0
    scores = author["scores"]
    assert scores["papers"] == 2 and list(scores["failed"]) == ["gatenorm-sample"]
    assert scores["precision"] == 0.25 and scores["recall"] == 0.1
    validity = author["validity"]
    assert (validity["plans_asked"], validity["plans_written"]) == (2, 1)
    assert (validity["items_asked"], validity["items"]) == (4, 2)
    assert (validity["copied"], validity["placeholders"]) == (0, 0)
    assert (validity["metrics"], validity["metrics_found"]) == (2, 1)
    kestrel = next(c for c in author["checks"] if c["paper_id"] == "kestrel-sample")
    assert kestrel["metrics_missing"] == ["BLEU-4"] and kestrel["parts_grounded"] == 2
    assert author["time"]["plans"] == 1 and author["time"]["mean"]["total_s"] > 0

    # reviewer: the review row scored against its requests; the others' matches are repeats
    # (the scripted judge matches every plan's first item, if the planner kept one)
    runs = tmp_path / "run" / "fake-model" / "default" / "reviewer" / "sample"
    kept = {p: bool(plan.ablations) for p, plan in read_run(runs).plans.items()}
    assert reviewer["scores"]["papers"] == 1
    assert reviewer["scores"]["precision"] == (0.5 if kept["kestrel-sample-review"] else 0.0)
    assert reviewer["repeats"]["papers"] == 2
    assert reviewer["repeats"]["repeated"] == int(kept["kestrel-sample"])
    assert reviewer["validity"]["plans_written"] == 2

    out = capsys.readouterr().out
    assert "fake-model, author mode (2 papers, k 2)" in out
    assert "vs reported ablations (2 papers): P 0.250 [" in out
    assert "failed, counted 0: gatenorm-sample" in out
    assert "repeats of reported ablations: " in out
    assert "metrics in the paper 1/2 (50%)" in out

    # a rerun reuses every plan and verdict: only the failed paper is asked again
    assert script.main(argv) == 0
    assert len(fake_llm.requests) == asked + 2  # GateNorm, in each mode
    assert json.loads((tmp_path / "figures.json").read_text("utf-8"))["variants"] == [
        author,
        reviewer,
    ]


def test_bench_quality_unknown_paper_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_quality().main(["--dataset", "sample", "--papers", "nope"]) == 1
    assert capsys.readouterr().err.strip() == "bench_quality: unknown paper ids: nope"


def test_bench_quality_judges_stored_baseline_plans_beside_the_new_ones(
    fake_llm: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--baseline-plans``: the embedded model's stored plans, judged in the same run by the
    same judge; a paper without a stored plan is counted 0, like a failed new plan."""
    fake_llm.responder = plan_or_verdict(REPLY, VERDICT)
    stored = Path(__file__).parent.parent / "benchmarks" / "data" / "plans"
    argv = [
        *("--model", "fake-model", "--api-base", fake_llm.url, "--dataset", "sample"),
        *("--judge", "lm:judge-model", "--k", "2", "--resamples", "50", "--modes", "author"),
        *("--baseline-plans", str(stored), "--run-dir", str(tmp_path / "run")),
        *("--json", str(tmp_path / "figures.json")),
    ]
    assert bench_quality().main(argv) == 0
    baseline, new = json.loads((tmp_path / "figures.json").read_text("utf-8"))["variants"]
    assert baseline["model"] == "baseline" and new["model"] == "fake-model"
    assert baseline["judge"] == new["judge"] == "lm:judge-model"
    assert list(baseline["scores"]["failed"]) == ["gatenorm-sample"]  # no stored plan
    assert baseline["validity"]["copied"] == 0 and baseline["validity"]["placeholders"] >= 1
    run = read_run(tmp_path / "run" / "baseline" / "author" / "sample")
    saved = json.loads((stored / "kestrel-sample-author.json").read_text("utf-8"))
    assert [a.name for a in run.plans["kestrel-sample"].ablations] == [
        a["name"] for a in saved["ablations"]
    ]
    assert "baseline (plans), author mode (2 papers, k 2)" in capsys.readouterr().out


def test_a_plans_timings_count_the_prompt_tokens_the_runtime_computed() -> None:
    from ablationkit.lm.types import Completion, TokenUsage
    from ablationkit.planner.core import reply_timings

    first = Completion(
        text="{}",
        usage=TokenUsage(prompt_tokens=3000, completion_tokens=400),
        timings={"prompt_n": 2900.0, "cache_n": 100.0, "prompt_ms": 60000.0},
    )
    follow_up = Completion(
        text="{}",
        usage=TokenUsage(prompt_tokens=3500, completion_tokens=100),
        timings={"prompt_n": 80.0, "cache_n": 3420.0, "prompt_ms": 2000.0},
    )
    request = type("Request", (), {"load_seconds": 0.5})()
    timings = reply_timings(request, [first, follow_up], begun=0.0)  # type: ignore[arg-type]
    assert timings.prompt_computed == 2980 and timings.prompt_s == 62.0
    # a server that does not say: unknown, not 0
    bare = Completion(text="{}", usage=TokenUsage(prompt_tokens=10, completion_tokens=1))
    assert reply_timings(request, [bare], begun=0.0).prompt_computed is None  # type: ignore[arg-type]
