"""Judges and metrics: LM and majority judges over real HTTP, the offline embedding judge
against reference embeddings, and the P/R/F1 arithmetic."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from ablationkit.judge import (
    LMJudge,
    MajorityJudge,
    aggregate,
    bootstrap_ci,
    evaluate_judge,
    judge_agreement,
    score_judgement,
)
from ablationkit.judge.metrics import PaperScore
from ablationkit.lm import LMClient, RetryPolicy
from ablationkit.schema import Ablation, Judgement, Match, Plan
from ablationkit.testing import FakeLLMServer, Reply

TARGETS = [
    Ablation(
        name="Mask schedule",
        ablated_part="cosine mask scheduling function",
        action="REPLACE",
        replacement=["linear", "cubic"],
        metrics=["FID"],
    ),
    Ablation(
        name="Iterations",
        ablated_part="number of decoding iterations T",
        action="REPLACE",
        replacement=["8", "12"],
        metrics=["FID"],
    ),
]
PLAN = Plan(
    model="m",
    paper_id="maskgit",
    mode="author",
    ablations=[
        Ablation(
            name="Linear schedule",
            ablated_part="the cosine masking schedule",
            action="REPLACE",
            replacement=["linear"],
        ),
        Ablation(
            name="No bidirectional attention",
            ablated_part="bidirectional transformer",
            action="REPLACE",
            replacement=["causal attention"],
        ),
        Ablation(
            name="Fewer steps", ablated_part="decoding steps T", action="REPLACE", replacement=["4"]
        ),
    ],
)


async def no_wait(_: float) -> None:
    return None


def lm_judge(server: FakeLLMServer, model: str = "judge-model") -> LMJudge:
    client = LMClient(cache=False, timeout=5, retry=RetryPolicy(max_attempts=2, sleep=no_wait))
    return LMJudge(model, client=client, api_base=server.url)


def test_lm_judge_matches(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(
        json.dumps(
            {
                "reasoning": "0 and 2 match",
                "matches": [
                    {"planned": 0, "ground_truth": 0},
                    {"planned": 2, "ground_truth": 1},
                    {"planned": 2, "ground_truth": 0},
                ],
            }
        )
    )
    verdict = lm_judge(fake_llm).judge(PLAN, TARGETS, title="MaskGIT")
    assert verdict.error is None and verdict.judge == "lm:judge-model"
    assert verdict.matches == [Match(planned=0, target=0), Match(planned=2, target=1)]
    prompt = fake_llm.requests[0]["messages"][0]["content"]
    assert "[0] Mask schedule: REPLACE cosine mask scheduling function -> linear; cubic" in prompt
    assert "[1] No bidirectional attention" in prompt and "MaskGIT" in prompt
    assert (
        "matches" in fake_llm.requests[0]["response_format"]["json_schema"]["schema"]["properties"]
    )


def test_lm_judge_repairs_then_records_errors(fake_llm: FakeLLMServer) -> None:
    fake_llm.script(
        '{"matches": [{"planned": 7, "ground_truth": 0}]}',
        '{"reasoning": "", "matches": [{"planned": 1, "ground_truth": 1}]}',
    )
    verdict = lm_judge(fake_llm).judge(PLAN, TARGETS)
    assert verdict.matches == [Match(planned=1, target=1)]
    assert "out of range" in fake_llm.requests[1]["messages"][-1]["content"]
    fake_llm.script("no idea", "still no idea")
    failed = lm_judge(fake_llm).judge(PLAN, TARGETS)
    assert failed.error is not None and "unparseable judge reply" in failed.error
    failed_score = score_judgement(failed)  # an error is no verdict: it scores 0, and says why
    assert failed_score.error == failed.error and failed_score.f1 == failed_score.recall == 0
    fake_llm.script(Reply(status=500), Reply(status=500))
    down = lm_judge(fake_llm).judge(PLAN, TARGETS)
    assert down.error is not None and "HTTP 500" in down.error


def test_majority_judge(fake_llm: FakeLLMServer) -> None:
    votes = {
        "a": [{"planned": 0, "ground_truth": 0}, {"planned": 2, "ground_truth": 1}],
        "b": [{"planned": 0, "ground_truth": 0}],
        "c": [
            {"planned": 0, "ground_truth": 0},
            {"planned": 2, "ground_truth": 1},
            {"planned": 1, "ground_truth": 0},
        ],
    }
    fake_llm.responder = lambda body: json.dumps(
        {"reasoning": body["model"], "matches": votes[body["model"]]}
    )
    majority = MajorityJudge([lm_judge(fake_llm, m) for m in "abc"])
    verdict = majority.judge(PLAN, TARGETS)
    assert verdict.judge == "majority(3)" and verdict.votes is not None
    assert verdict.matches == [Match(planned=0, target=0), Match(planned=2, target=1)]


VOTES: dict[str, list[dict[str, int]]] = {
    "a": [{"planned": 0, "ground_truth": 0}, {"planned": 2, "ground_truth": 1}],
    "b": [{"planned": 0, "ground_truth": 0}],
    "c": [{"planned": 0, "ground_truth": 0}, {"planned": 2, "ground_truth": 1}],
}


def _pool_threads() -> set[str]:
    """Threads of a ``ThreadPoolExecutor`` alive now (what the old per-plan pools made)."""
    return {t.name for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")}


class _Spy(LMJudge):
    """An LM judge that notes the event loop and thread its coroutine ran on."""

    seen: list[tuple[int, int]]

    async def ajudge(self, *args: Any, **kwargs: Any) -> Judgement:
        self.seen.append((id(asyncio.get_running_loop()), threading.get_ident()))
        return await super().ajudge(*args, **kwargs)


def test_majority_runs_its_judges_concurrently_on_one_loop() -> None:
    pools: set[str] = set()

    def respond(body: dict[str, Any]) -> str:
        pools.update(_pool_threads())
        return json.dumps({"reasoning": body["model"], "matches": VOTES[body["model"]]})

    seen: list[tuple[int, int]] = []
    with (
        FakeLLMServer(responder=respond, latency=0.3) as server,
        LMClient(cache=False, timeout=10) as client,
    ):
        judges = [_Spy(m, client=client, api_base=server.url) for m in "abc"]
        for judge in judges:
            judge.seen = seen
        verdict = MajorityJudge(judges).judge(PLAN, TARGETS)
        assert server.max_in_flight == 3  # the three calls were in flight together
    assert len({loop for loop, _ in seen}) == 1 and len({thread for _, thread in seen}) == 1
    assert not pools  # and no thread pool made that happen
    assert verdict.error is None and verdict.votes is not None and len(verdict.votes) == 3
    assert verdict.matches == [Match(planned=0, target=0), Match(planned=2, target=1)]


def test_ajudge_on_the_callers_loop_gives_the_sync_verdict(fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda body: json.dumps({"reasoning": "", "matches": VOTES["a"]})
    judge = lm_judge(fake_llm)
    sync = judge.judge(PLAN, TARGETS, title="MaskGIT")

    async def main() -> Judgement:
        try:
            return await judge.ajudge(PLAN, TARGETS, title="MaskGIT")
        finally:
            await judge.client.aclose()

    assert asyncio.run(main()) == sync
    assert fake_llm.requests[0] == fake_llm.requests[1]


def test_scores_by_hand() -> None:
    judgement = Judgement(
        judge="j",
        paper_id="p",
        mode="author",
        k=3,
        planned=["a", "b", "c"],
        targets=["x", "y"],
        matches=[Match(planned=0, target=0), Match(planned=2, target=0)],
    )
    score = score_judgement(judgement)
    assert score.error is None
    assert score.precision == pytest.approx(2 / 3) and score.recall == pytest.approx(1 / 2)
    assert score.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    top1 = judgement.model_copy(update={"k": 1})
    assert score_judgement(top1).precision == 1.0
    other = Judgement(
        judge="j", paper_id="q", mode="author", k=2, planned=["a", "b"], targets=["x"], matches=[]
    )
    failed = other.model_copy(update={"paper_id": "r", "error": "boom"})
    result = aggregate([judgement, other, failed], resamples=200)
    # the failed judgement counts as 0 (never left out: that would flatter the judge)
    assert result.papers == 3 and result.errors == 1 and result.error_ids == ["r"]
    assert result.failures == 1 and not result.failed
    assert result.macro.precision == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert result.micro.precision == pytest.approx(2 / (3 + 2 + 2))
    assert result.micro.recall == pytest.approx(1 / (2 + 1 + 1))
    low, high = result.macro_ci95["f1"]
    assert low <= result.macro.f1 <= high
    assert aggregate([failed], resamples=0).failed  # no verdict at all: the judge failed


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    scores = [PaperScore(str(i), 5, i % 5, 4, i % 4) for i in range(40)]

    def mean_f1(sample):  # type: ignore[no-untyped-def]
        return {"f1": sum(s.f1 for s in sample) / len(sample)}

    first = bootstrap_ci(scores, mean_f1, resamples=300, seed=1)
    assert first == bootstrap_ci(scores, mean_f1, resamples=300, seed=1)
    low, high = first["f1"]
    assert low < mean_f1(scores)["f1"] < high and high - low < 0.3


def test_judge_agreement_and_eval_judge(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    row = {
        "paper_id": "maskgit",
        "mode": "author",
        "title": "MaskGIT",
        "planned": [a.model_dump(mode="json") for a in PLAN.ablations],
        "targets": [a.model_dump(mode="json") for a in TARGETS],
        "matches": [[0, 0], [2, 1]],
    }
    labels.write_text(json.dumps(row) + "\n", "utf-8")
    fake_llm.script(
        json.dumps(
            {
                "reasoning": "",
                "matches": [{"planned": 0, "ground_truth": 0}, {"planned": 1, "ground_truth": 1}],
            }
        )
    )
    heard: list[tuple[str, int, int]] = []
    result = evaluate_judge(
        lm_judge(fake_llm), labels, on_judged=lambda v, n, of: heard.append((v.paper_id, n, of))
    )
    assert heard == [("maskgit", 1, 1)]  # each verdict is reported as it comes
    assert result["judge"] == "lm:judge-model" and result["errors"] == 0
    assert result["pairs"]["precision"] == 0.5 and result["pairs"]["recall"] == 0.5
    assert result["items"]["precision"] == 1.0 and result["items"]["recall"] == 1.0
    # four labelled plans are judged at once on the client's loop, with no thread pool
    pools: set[str] = set()

    def respond(body: dict[str, Any]) -> str:
        pools.update(_pool_threads())
        return json.dumps({"reasoning": "", "matches": [{"planned": 0, "ground_truth": 0}]})

    rows = [{**row, "paper_id": f"p{i}"} for i in range(4)]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    with FakeLLMServer(responder=respond, latency=0.3) as server:
        result = evaluate_judge(lm_judge(server), labels)
        assert server.max_in_flight == 4
    assert not pools and result["errors"] == 0 and result["papers"] == 4
    assert result["pairs"]["precision"] == 1.0 and result["pairs"]["recall"] == 0.5
    gold = Judgement(
        judge="h",
        paper_id="x",
        mode="reviewer",
        k=2,
        planned=["a", "b"],
        matches=[Match(planned=1, target=0)],
    )
    guess = gold.model_copy(update={"matches": [Match(planned=0, target=0)]})
    agreement = judge_agreement([guess], [gold])
    assert agreement["items"]["f1"] == 0.0  # reviewer items are the suggestions
    # a judge that failed on a paper missed its matches: they stay in the recall's denominator
    right = gold.model_copy(update={"paper_id": "y"})
    failed = right.model_copy(update={"matches": [], "error": "no JSON"})
    both = judge_agreement([gold, failed], [gold, right])
    assert both["errors"] == 1 and both["pairs"]["support"] == 2
    assert both["pairs"]["precision"] == 1.0 and both["pairs"]["recall"] == 0.5


def test_numpy_minilm_matches_sentence_transformers(encoder) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    reference = json.loads(
        (Path(__file__).parent / "data" / "minilm_reference.json").read_text("utf-8")
    )
    ours = encoder.encode(reference["texts"])
    assert np.abs(ours - np.array(reference["embeddings"])).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_embedding_judge_assigns_and_calibrates(encoder) -> None:  # type: ignore[no-untyped-def]
    from ablationkit.judge.embedding import (
        EmbeddingJudge,
        calibrate_threshold,
        similarity_matrix,
    )

    similarity = similarity_matrix(PLAN.ablations, TARGETS, encoder)
    assert similarity.shape == (3, 2)
    assert similarity[0, 0] > similarity[1, 0] and similarity[2, 1] > similarity[1, 1]
    labelled = [
        (float(similarity[0, 0]), True),
        (float(similarity[2, 1]), True),
        (float(similarity[1, 0]), False),
        (float(similarity[1, 1]), False),
    ]
    threshold = calibrate_threshold(labelled)
    verdict = EmbeddingJudge(threshold=threshold, encoder=encoder).judge(PLAN, TARGETS)
    assert verdict.matches == [Match(planned=0, target=0), Match(planned=2, target=1)]
    assert verdict.judge.startswith("embedding@")


class _WordEncoder:
    """A stand-in for MiniLM (no model needed): schedules, decoding steps, anything else."""

    def encode(self, texts: list[str]) -> Any:
        import numpy as np

        rows = np.zeros((len(texts), 3))
        for i, text in enumerate(texts):
            rows[i, 0 if "schedul" in text else 1 if "decoding" in text else 2] = 1.0
        return rows


def test_embedding_judge_encodes_off_the_loop_and_runs_inside_a_running_loop() -> None:
    from ablationkit.judge.embedding import EmbeddingJudge

    threads: list[str] = []

    class Spy(EmbeddingJudge):
        def verdict(self, *args: Any, **kwargs: Any) -> Judgement:
            threads.append(threading.current_thread().name)
            return super().verdict(*args, **kwargs)

    judge = Spy(threshold=0.5, encoder=_WordEncoder())  # type: ignore[arg-type]
    sync = judge.judge(PLAN, TARGETS)

    async def in_a_notebook() -> tuple[Judgement, Judgement]:  # a loop runs in this thread
        return await judge.ajudge(PLAN, TARGETS), judge.judge(PLAN, TARGETS)

    assert asyncio.run(in_a_notebook()) == (sync, sync)
    assert sync.matches == [Match(planned=0, target=0), Match(planned=2, target=1)]
    assert threading.main_thread().name not in threads  # never on a loop's thread
