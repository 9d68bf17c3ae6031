"""The validated offline judge: its two fitted models, leave-one-paper-out measurement, the
packaged fit, and the agreement figure that score tables print beside the scores."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ablationkit.errors import AblationKitError
from ablationkit.judge.offline import (
    LabelledPair,
    OfflineJudge,
    OfflineModel,
    cross_validate,
    describe_agreement,
    fit_logistic,
    fit_offline_model,
    measured_agreements,
    packaged_model,
)
from ablationkit.judge.pair_features import (
    CHANGE_FEATURES,
    COMPONENT_FEATURES,
    keyed_values,
    shared_alternatives,
)
from ablationkit.schema import Ablation, Match, Plan
from ablationkit.testing import FakeLLMServer
from fakes import respond, tiny_dataset

LABELS = Path(__file__).parent.parent / "benchmarks" / "data" / "judge-labels.jsonl"


def _pair(group: str, n: int, component: float, change: float, match: bool, same: bool) -> Any:
    features = dict.fromkeys((*COMPONENT_FEATURES, *CHANGE_FEATURES), 0.0)
    features.update(full=component, part=component, same_action=change, numbers_shared=change)
    return LabelledPair(group, f"{group}.line", n, 0, features, match, same)


def _synthetic(groups: tuple[str, ...]) -> list[LabelledPair]:
    """Matches: high component and change; H1: high component, low change; others low."""
    pairs = []
    for group in groups:
        pairs += [
            _pair(group, 0, 0.9, 1.0, True, True),
            _pair(group, 1, 0.85, 0.0, False, True),
            _pair(group, 2, 0.2, 1.0, False, False),
            _pair(group, 3, 0.1, 0.0, False, False),
        ]
    return pairs


def test_logistic_fit_is_exact_and_deterministic() -> None:
    rows = [{"x": float(v)} for v in range(10)]
    labels = [v >= 5 for v in range(10)]
    labels[4], labels[5] = True, False  # overlap, so the optimum is finite
    first = fit_logistic(rows, labels, ["x"])
    assert first == fit_logistic(rows, labels, ["x"])
    assert first.weights[0] > 0
    assert first.predict([{"x": 9.0}])[0] > 0.8 > 0.2 > first.predict([{"x": 0.0}])[0]
    with pytest.raises(AblationKitError, match="matches and non-matches"):
        fit_logistic(rows, [True] * 10, ["x"])


def test_two_models_reject_same_component_with_another_change() -> None:
    model = fit_offline_model(_synthetic(("a", "b", "c")))
    pairs = _synthetic(("d",))
    scores = [row[0] for row in model.scores([[p.features] for p in pairs])]
    assert scores[0] >= model.threshold  # the match
    assert all(s < model.threshold for s in scores[1:])  # H1, other component, neither
    again = OfflineModel.from_json(model.to_json())
    assert again.scores([[pairs[0].features]]) == model.scores([[pairs[0].features]])


def test_cross_validation_judges_each_paper_with_a_model_that_never_saw_it() -> None:
    pairs = _synthetic(("a", "b", "c"))
    # paper "z" is labelled the other way round: any fold that had seen it would learn that
    for pair in _synthetic(("z",)):
        pair.match, pair.same_component = not pair.match, not pair.same_component
        pairs.append(pair)
    found = cross_validate(pairs, "offline")
    folds = {fold["held_out"]: fold for fold in found["folds"]}
    assert set(folds) == {"a", "b", "c", "z"} and found["protocol"] == "leave-one-paper-out"
    assert folds["z"]["tp"] == 0  # judged only by models fitted on a, b and c
    assert sum(f["tp"] for f in folds.values()) == found["out_of_fold"]["tp"]
    assert found["matches"] == 3 + 3 and found["pairs"] == 16  # z: three inverted to matches
    with pytest.raises(AblationKitError, match="two papers"):
        cross_validate(_synthetic(("a",)), "offline")
    with pytest.raises(AblationKitError, match="cannot cross-validate"):
        cross_validate(pairs, "lm:gpt-4o")


CUTOFF = Ablation(
    name="Cutoff time",
    ablated_part="total cutoff time (10 min)",
    action="REPLACE",
    replacement=["20 min"],
)


def test_offline_judge_tells_other_values_apart_where_cosine_cannot(encoder: Any) -> None:
    from ablationkit.judge.embedding import EmbeddingJudge

    plan = Plan(
        planner="t",
        model="m",
        paper_id="p",
        mode="author",
        ablations=[
            Ablation(
                name="Shorter cutoff",
                ablated_part="total cutoff time (10 min)",
                action="REPLACE",
                replacement=["5 min"],
            ),
            Ablation(
                name="Longer cutoff",
                ablated_part="the total cutoff time of 10 minutes",
                action="REPLACE",
                replacement=["20 minutes"],
            ),
        ],
    )
    offline = OfflineJudge(encoder=encoder).judge(plan, [CUTOFF])
    assert offline.matches == [Match(planned=1, target=0)]
    assert offline.judge == "offline" and "1->0" in offline.reasoning
    # alone, the 5-minute sweep reads like the target: cosine matches it, the offline judge not
    shorter = plan.model_copy(update={"ablations": plan.ablations[:1]})
    assert EmbeddingJudge(encoder=encoder).verdict(shorter, [CUTOFF]).matches
    assert not OfflineJudge(encoder=encoder).judge(shorter, [CUTOFF]).matches
    assert OfflineJudge(encoder=encoder).judge(plan, []).error


SCHEDULE = Ablation(
    name="Mask scheduling function",
    ablated_part="cosine mask scheduling function gamma used in training and iterative decoding",
    action="REPLACE",
    replacement=["exponential", "cubic", "square", "linear", "square root", "logarithmic"],
)


def test_two_planned_ablations_may_match_one_target(encoder: Any) -> None:
    """The labels let several planned ablations match one target (and AblationBench's judge
    too): two sweeps of the schedule over different alternatives both match it. A
    one-to-one assignment would keep one of them."""
    plan = Plan(
        planner="t",
        model="m",
        paper_id="maskgit",
        mode="author",
        ablations=[
            Ablation(
                name="Convex schedules",
                ablated_part="cosine mask ratio curve",
                action="REPLACE",
                replacement=["square", "cubic", "exponential"],
            ),
            Ablation(
                name="Concave schedules",
                ablated_part="concave (cosine) masking schedule",
                action="REPLACE",
                replacement=["square-root", "logarithmic"],
            ),
            Ablation(name="No temperature", ablated_part="sampling temperature", action="REMOVE"),
        ],
    )
    verdict = OfflineJudge(encoder=encoder).judge(plan, [SCHEDULE])
    assert verdict.matches == [Match(planned=0, target=0), Match(planned=1, target=0)]


def test_alternatives_in_common_are_counted_whatever_their_punctuation() -> None:
    assert shared_alternatives(["Square-root", "log"], ["square root", "logarithmic"]) == 2
    assert shared_alternatives(["8", "32"], ["K = 8", "K = 32", "64"]) == 0  # too short
    assert shared_alternatives(["p = 3"], ["p=3 with 15 min cutoff (TM)"]) == 1
    assert shared_alternatives([], ["x"]) == 0


def _change(planned: Ablation, target: Ablation) -> dict[str, float]:
    from ablationkit.judge.pair_features import _lexical

    return _lexical(planned, target)


def _ablation(part: str, action: str = "REPLACE", *replacement: str) -> Ablation:
    return Ablation(
        name=part, ablated_part=part, action=action, replacement=list(replacement) or None
    )


def test_change_features_follow_the_edge_rules() -> None:
    """E2: the same value of the same knob is an alternative in common, even when the target
    co-varies another knob in the same item; a bare number in common is not a keyed one."""
    assert keyed_values(["p = 3", "15min total cutoff"]) == {("p", 3.0), ("min", 15.0)}
    assert keyed_values(["p = 3 with 10 min"]) == {("p", 3.0), ("min", 10.0)}  # not "3 with"
    meta_folds = _ablation("meta-folds p (p=1)", "REPLACE", "p=3 with 15 min cutoff (TM)")
    assert _change(_ablation("meta-folds p", "REPLACE", "p = 3", "p = 5"), meta_folds)[
        "same_alternative"
    ]
    assert not _change(_ablation("meta-folds k", "REPLACE", "k = 3"), meta_folds)[
        "same_alternative"
    ]
    # E1: what is left without the component, item by item ("0 epochs", "top-K", "random ..."),
    # not an alternative selector ("uniform sampling") nor a digit of another value
    removed = _ablation("gate warm-up", "REMOVE")
    for left in ("0 epochs (no warm-up)", "lambda = 0", "top-K selection", "random negatives"):
        assert _change(_ablation("warm-up", "REPLACE", left, "10 epochs"), removed)["leftover"]
    for other in ("uniform sampling among the top-64", "0.1", "g fixed to 0 (identity path)"):
        assert not _change(_ablation("warm-up", "REPLACE", other), removed)["leftover"]
    # E3: a described target neither conflicts with concrete values nor matches a rule
    described = _ablation("decoding steps T", "REPLACE", "varying T (e.g. 8-60)")
    values = _change(_ablation("steps T", "REPLACE", "6", "10", "40"), described)
    assert values["described_vs_values"] and not values["numbers_conflict"]
    rule = _change(_ablation("steps T", "REPLACE", "stop once confidence exceeds 0.9"), described)
    assert not rule["described_vs_values"]


def test_component_words_match_across_word_forms() -> None:
    """M1 reads the part, not its wording: "dimension" / "dimensionality" and "candidate" /
    "candidates" are the same words to the overlap feature."""
    planned = _ablation("uniform pre-sampling of candidate frames", "REMOVE")
    target = _ablation("candidates uniformly sampled", "REMOVE")
    assert _change(planned, target)["part_contain"] == 1.0
    size = _change(_ablation("embedding dimension"), _ablation("embedding dimensionality"))
    assert size["part_contain"] == 1.0


def test_packaged_model_and_its_agreement_are_read_from_the_package() -> None:
    model = packaged_model()
    assert model.component.features == list(COMPONENT_FEATURES)
    assert model.change.features == list(CHANGE_FEATURES)
    offline = measured_agreements()["offline"]
    assert offline["protocol"] == "leave-one-paper-out"
    assert offline["labels"] == "benchmarks/data/judge-labels.jsonl"
    assert offline["pairs"] == sum(
        len(row["planned"]) * len(row["targets"])
        for row in map(json.loads, LABELS.read_text("utf-8").splitlines())
    )
    line = describe_agreement("offline")
    assert f"pair F1 {offline['f1']:.2f}" in line and "leave-one-paper-out" in line
    assert "not measured" in describe_agreement("lm:some-model")


@pytest.mark.slow
def test_packaged_model_is_the_fit_of_the_labelled_set(encoder: Any) -> None:
    """Refitting on benchmarks/data/judge-labels.jsonl gives the shipped model (the file was
    written by ``benchmarks/fit_offline_judge.py --write`` and not edited by hand)."""
    from ablationkit.judge.offline import labelled_pairs

    fitted = fit_offline_model(labelled_pairs(LABELS, encoder))
    shipped = packaged_model()
    assert fitted.threshold == pytest.approx(shipped.threshold, abs=1e-6)
    assert fitted.change.weights == pytest.approx(shipped.change.weights, abs=1e-6)
    assert fitted.component.weights == pytest.approx(shipped.component.weights, abs=1e-6)


def test_make_judge_builds_the_offline_judge() -> None:
    from ablationkit.judge.factory import make_judge
    from ablationkit.lm import LMClient

    with LMClient() as client:
        assert isinstance(make_judge(["offline"], client), OfflineJudge)
        with pytest.raises(AblationKitError, match="no ablationbench protocol"):
            make_judge(["offline"], client, protocol="ablationbench")


def _small_label_file(path: Path) -> Path:
    """Two papers' hand-written author lines of the labelled set (each paper has matches and
    same-component misses, so either alone can be fitted on; few pairs, fast to encode)."""
    keep = {
        f"{paper}.author.{source}"
        for paper in ("gatenorm-sample", "maskgit")
        for source in ("hand-good", "hand-hard")
    }
    lines = [
        line
        for line in LABELS.read_text("utf-8").splitlines()
        if json.loads(line)["paper_id"] in keep
    ]
    assert len(lines) == 4
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_eval_judge_cross_validates_from_the_command_line(
    cli: str, encoder: Any, tmp_path: Path
) -> None:
    labels = _small_label_file(tmp_path / "labels.jsonl")
    result = subprocess.run(
        [cli, "eval-judge", str(labels), "--judge", "offline", "--cv"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert {f["held_out"] for f in found["folds"]} == {"gatenorm-sample", "maskgit"}
    assert 0.0 <= found["out_of_fold"]["f1"] <= 1.0 and found["matches"] > 0
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"planned": []}\n', "utf-8")
    result = subprocess.run(
        [cli, "eval-judge", str(broken), "--judge", "offline", "--cv"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2 and "broken.jsonl" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_score_names_each_judge_and_its_measured_agreement(
    cli: str, encoder: Any, tmp_path: Path
) -> None:
    dataset = tiny_dataset(tmp_path / "data.jsonl", 2)
    env = {**os.environ, "COLUMNS": "200"}
    common = ["--run", str(tmp_path / "run")]
    with FakeLLMServer(responder=respond) as server:
        steps = [
            ["bench", "plan", str(dataset), *common, "--model", "m", "--api-base", server.url],
            ["bench", "judge", *common, "--judge", "offline"],
            ["bench", "judge", *common, "--judge", "m", "--api-base", server.url],
            ["bench", "score", *common],
            ["bench", "score", *common, "--json"],
        ]
        results = [
            subprocess.run(
                [cli, *step], capture_output=True, text=True, env=env, timeout=120, check=False
            )
            for step in steps
        ]
    for result in results:
        assert result.returncode == 0, result.stderr
    table = results[3].stdout
    f1 = measured_agreements()["offline"]["f1"]
    assert f"offline: pair F1 {f1:.2f}" in table
    assert "lm:m: agreement with human labels not measured" in table
    judges = json.loads(results[4].stdout)["judges"]
    assert judges["offline"]["agreement"]["f1"] == f1 and judges["lm:m"]["agreement"] is None
