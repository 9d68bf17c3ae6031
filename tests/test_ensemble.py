"""Ensemble planning (``ensemble=[...]`` / ``samples=n``): member plans over real HTTP, merged
by the offline judge's pair model (the real MiniLM encoder), and the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ablationkit import load_plan, parse_trajectory
from ablationkit.errors import AblationKitError
from ablationkit.lm import LMClient
from ablationkit.lm.models import resolve_model
from ablationkit.papers import load_paper, sample_paper_path
from ablationkit.planner import PlanConfig, PlanConfigError, PlanError, merge_plans, plan
from ablationkit.planner.ensemble import cluster_plans, context_window, members_of
from ablationkit.schema import Ablation, Plan
from ablationkit.testing import FakeLLMServer
from ablationkit.testing.fake_server import Reply


def item(name: str, part: str, action: str, replacement: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "ablated_part": part,
        "action": action,
        "replacement": replacement,
        "metrics": ["accuracy"],
    }


# The same three ablations worded differently by different "models", and two of one model only.
FRAMES = [
    item("Frame budget", "number of frames K", "REPLACE", ["8", "32"]),
    item(
        "Number of selected frames", "the number of frames K kept per video", "REPLACE", ["8", "32"]
    ),
    item("Fewer or more frames", "frame budget K", "REPLACE", ["8", "32"]),
]
DPP = [
    item(
        "Top-K selection",
        "diversity-regularised DPP selection",
        "REPLACE",
        ["top-K by relevance", "uniform sampling"],
    ),
    item("Replace the DPP", "DPP frame selection", "REPLACE", ["top-K by relevance"]),
    item(
        "No DPP",
        "the diversity-regularised DPP selection",
        "REPLACE",
        ["top-K by relevance", "random frames"],
    ),
]
DISTILL = item("No distillation", "answer-likelihood distillation", "REMOVE")
# a sweep of the DPP's weight, not its removal: under the labels' rule E1, removing the
# diversity term is replacing the DPP by top-K (the same ablation as DPP's)
DIVERSITY = item(
    "Diversity weight", "diversity weight lambda of the DPP", "REPLACE", ["0.1", "1.0"]
)
SCORER = item("Other scorer", "relevance scorer", "REPLACE", ["CLIP similarity"])

# alpha ranks distillation first; the frame budget and the DPP are what all three agree on
PLANS = {
    "alpha": {
        "reasoning": "Alpha thinks distillation matters most. Then frames.",
        "ablations": [DISTILL, FRAMES[0], DPP[1]],
    },
    "beta": {
        "reasoning": "Beta sees the frame budget as central. More text.",
        "ablations": [FRAMES[1], DIVERSITY, DPP[2]],
    },
    "gamma": {
        "reasoning": "Gamma looks at frames and the DPP.",
        "ablations": [FRAMES[2], DPP[0], SCORER],
    },
}


def by_model(body: dict[str, Any]) -> Reply | str:
    if body["model"] == "broken":
        return Reply(status=400, content="model is broken")
    return json.dumps(PLANS[body["model"]])


@pytest.fixture(scope="module")
def sample() -> Any:
    return load_paper(sample_paper_path())


def ensemble_plan(server: FakeLLMServer, paper: Any, tmp_path: Path, **kwargs: Any) -> Plan:
    client = LMClient(cache=False, timeout=10)
    return plan(paper, client=client, api_base=server.url, raw_dir=tmp_path, k=3, **kwargs)


def test_votes_order_the_items_and_the_reasoning_names_who_agreed(
    encoder: Any, sample: Any, tmp_path: Path
) -> None:
    with FakeLLMServer(responder=by_model) as server:
        result = ensemble_plan(server, sample, tmp_path, ensemble="alpha,beta,gamma")
        sent = sorted(r["model"] for r in server.requests)
    assert sent == ["alpha", "beta", "gamma"]  # one request per member, nothing more
    # 3 votes (mean rank 0.33), 3 votes (mean rank 1.67), then the single votes by rank:
    # alpha's own first item comes third, not first
    assert [a.name for a in result.ablations] == [
        "Number of selected frames",  # the best-ranked wording (beta's and gamma's rank 1)
        "Top-K selection",
        "No distillation",
    ]
    assert result.model == "ensemble(alpha,beta,gamma)"
    lines = result.reasoning.splitlines()
    assert "offline judge's pair model" in lines[0]
    assert '1. "Number of selected frames": 3 of 3 plans (alpha, beta, gamma)' in lines[1]
    assert '3. "No distillation": 1 of 3 plans (alpha)' in lines[3]
    assert "- alpha: Alpha thinks distillation matters most." in lines
    assert "- beta: Beta sees the frame budget as central." in lines
    assert result.usage is not None and result.usage.prompt_tokens > 3 * 500  # the sum


def test_a_failed_member_is_noted_and_the_others_merge(
    encoder: Any, sample: Any, tmp_path: Path
) -> None:
    with FakeLLMServer(responder=by_model) as server:
        result = ensemble_plan(server, sample, tmp_path, ensemble="alpha,broken,gamma")
    assert [a.name for a in result.ablations][:2] == ["Fewer or more frames", "Top-K selection"]
    assert "2 of 2 plans (alpha, gamma)" in result.reasoning
    assert "The plan of broken failed and is not counted" in result.reasoning
    assert result.model == "ensemble(alpha,broken,gamma)"


def test_every_member_failing_is_a_plan_error(sample: Any, tmp_path: Path) -> None:
    with (
        FakeLLMServer(responder=lambda body: Reply(status=400, content="no")) as server,
        pytest.raises(PlanError, match="every plan of the ensemble failed"),
    ):
        ensemble_plan(server, sample, tmp_path, ensemble="one,two")


def test_samples_send_one_request_each_with_its_own_seed(
    encoder: Any, sample: Any, tmp_path: Path
) -> None:
    replies = [PLANS["alpha"], PLANS["beta"], PLANS["gamma"]]
    with FakeLLMServer(responder=lambda body: json.dumps(replies[body["seed"]])) as server:
        result = ensemble_plan(server, sample, tmp_path, model="m", samples=3)
        requests = list(server.requests)
    assert sorted(r["seed"] for r in requests) == [0, 1, 2]
    assert {r["temperature"] for r in requests} == {0.7}  # unset: the sampling temperature
    assert len({json.dumps(r["messages"]) for r in requests}) == 1  # one prepared paper
    assert result.model == "ensemble(m;samples=3)"
    assert "3 of 3 plans (sample 1, sample 2, sample 3)" in result.reasoning
    assert result.ablations[0].name == "Number of selected frames"


def test_items_of_one_plan_never_merge(encoder: Any) -> None:
    twice = Plan(
        model="a",
        paper_id="p",
        mode="author",
        ablations=[Ablation(**FRAMES[0]), Ablation(**FRAMES[0]), Ablation(**DISTILL)],
    )
    once = Plan(model="b", paper_id="p", mode="author", ablations=[Ablation(**FRAMES[1])])
    clusters = cluster_plans([twice, once])
    members = [sorted(e.member for e in c.entries) for c in clusters]
    assert members[0] == [0, 1]  # the frame budget: one item of each plan
    assert sorted(members[1:]) == [[0], [0]]  # the repeat stays alone, as does distillation
    assert [c.votes for c in clusters] == [2, 1, 1]


def test_a_concrete_item_is_chosen_over_a_placeholder_better_ranked_one(encoder: Any) -> None:
    unmeasured = Ablation(**{**DPP[2], "name": "DPP off", "metrics": ["N/A"]})
    first = Plan(model="a", paper_id="p", mode="author", ablations=[unmeasured])
    second = Plan(
        model="b", paper_id="p", mode="author", ablations=[Ablation(**DISTILL), Ablation(**DPP[2])]
    )
    clusters = cluster_plans([first, second])
    assert clusters[0].votes == 2
    assert clusters[0].representative.ablation.name == "No DPP"  # rank 1, but measurable


def test_without_the_encoder_a_lexical_similarity_merges_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ablationkit.judge import embedding

    def missing() -> Any:
        raise AblationKitError("the embedding judge needs all-MiniLM-L6-v2: pip install it")

    monkeypatch.setattr(embedding, "default_encoder", missing)
    plans = [
        (
            "a",
            Plan(
                model="a",
                paper_id="p",
                mode="author",
                ablations=[Ablation(**DISTILL), Ablation(**FRAMES[0])],
            ),
        ),
        ("b", Plan(model="b", paper_id="p", mode="author", ablations=[Ablation(**FRAMES[0])])),
    ]
    reasoning, ablations = merge_plans(plans, 2)
    assert [a.name for a in ablations] == ["Frame budget", "No distillation"]
    assert "word overlap" in reasoning and "all-MiniLM-L6-v2" in reasoning
    assert '"Frame budget": 2 of 2 plans (a, b)' in reasoning


def test_members_and_settings() -> None:
    config = PlanConfig.build(ensemble="a, b", samples=2, seed=5)
    assert config.model == "a" and config.plans == 4
    members = members_of(config)
    assert [m.label for m in members] == ["a sample 1", "a sample 2", "b sample 1", "b sample 2"]
    assert [m.config.generation.seed for m in members] == [5, 6, 5, 6]
    assert all(m.config.plans == 1 and m.config.generation.temperature == 0.7 for m in members)
    assert PlanConfig.build(samples=2, temperature=0.3).sample_temperature == 0.3
    # a new ensemble over an old one: its own first model
    assert PlanConfig.build(config, ensemble=["c", "d"]).model == "c"
    refused: list[tuple[dict[str, Any], str]] = [
        ({"samples": 2, "temperature": 0}, "temperature above 0"),
        ({"ensemble": "a"}, "two or more models"),
        ({"ensemble": "a,a"}, "twice"),
        ({"ensemble": "a,b", "model": "c"}, "not one of the ensemble"),
        ({"ensemble": "a,b", "samples": 9}, "at most 16"),
        ({"samples": 2, "protocol": "ablationbench", "mode": "author"}, "'ablationkit' only"),
        ({"samples": 17}, "samples"),
    ]
    for bad, message in refused:
        with pytest.raises(PlanConfigError, match=message):
            PlanConfig.build(**bad)


def test_the_paper_is_fitted_to_the_smallest_context_of_the_ensemble() -> None:
    base = "http://127.0.0.1:9/v1"
    config = PlanConfig.build(ensemble="gpt-4o,some-model")
    gpt = resolve_model("gpt-4o", base)
    assert gpt.context_window == 128_000
    assert context_window(config, gpt, base) == resolve_model("some-model", base).context_window
    assert context_window(PlanConfig.build(model="gpt-4o"), gpt, base) == 128_000


def run_cli(cli: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ABLATIONKIT_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run(
        [cli, "plan", "--sample", "-k", "3", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_ensemble_and_samples_end_to_end(encoder: Any, cli: str, tmp_path: Path) -> None:
    out = tmp_path / "plans"
    with FakeLLMServer(responder=by_model) as server:
        result = run_cli(
            cli,
            tmp_path,
            "--ensemble",
            "alpha,beta,gamma",
            "--api-base",
            server.url,
            "-o",
            str(out),
        )
        assert result.returncode == 0, result.stderr
        assert "ensemble of 3 plans: alpha, beta, gamma" in result.stderr
        assert "Number of selected frames" in result.stdout
        saved = load_plan(out / "kestrel-sample.author.json")
        assert saved.model == "ensemble(alpha,beta,gamma)"
        assert "3 of 3 plans (alpha, beta, gamma)" in saved.reasoning
        trajectory = (out / "kestrel-sample.author.md").read_text("utf-8")
        assert parse_trajectory(trajectory).model == saved.model
        refused = run_cli(cli, tmp_path, "--ensemble", "alpha", "--api-base", server.url)
        assert refused.returncode == 2 and "two or more models" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    replies = [PLANS["alpha"], PLANS["beta"], PLANS["gamma"]]
    with FakeLLMServer(responder=lambda body: json.dumps(replies[body["seed"]])) as server:
        sampled = run_cli(
            cli, tmp_path, "--model", "m", "--samples", "3", "--api-base", server.url, "--json"
        )
        seeds = sorted(r["seed"] for r in server.requests)
    assert sampled.returncode == 0, sampled.stderr
    assert seeds == [0, 1, 2]
    assert json.loads(sampled.stdout)["model"] == "ensemble(m;samples=3)"


def test_a_bench_run_of_an_ensemble_resumes_without_asking_again(
    encoder: Any, tmp_path: Path
) -> None:
    """Its stored plans carry the ensemble's name, not the first model's: a rerun of the
    same command skips them instead of stopping with "planned with model ..."."""
    from ablationkit.bench import Run
    from fakes import tiny_dataset

    dataset = tiny_dataset(tmp_path / "data.jsonl", 2)
    with FakeLLMServer(responder=by_model) as server:
        settings: dict[str, Any] = {"ensemble": ["alpha", "beta"], "api_base": server.url}
        first = Run(tmp_path / "run", concurrency=2)
        assert sorted(first.plan(dataset, k=3, **settings).done) == ["paper-000", "paper-001"]
        asked = len(server.requests)
        again = Run(tmp_path / "run", concurrency=2).plan(dataset, k=3, **settings)
        assert len(again.skipped) == 2 and not again.failed
        assert len(server.requests) == asked


def test_an_ensembles_timings_count_the_prompt_tokens_its_members_computed() -> None:
    from ablationkit.planner.ensemble import _computed
    from ablationkit.schema import Timings

    def member(computed: int | None) -> Plan:
        timings = Timings(prompt_s=1.0, prompt_computed=computed)
        return Plan(planner="p", model="m", paper_id="x", mode="author", timings=timings)

    # the first sample read the prompt, the others took it from the runtime's cache
    assert _computed([member(3000), member(5), member(5)]) == 3010
    assert _computed([member(3000), member(None)]) is None  # a member that did not say
