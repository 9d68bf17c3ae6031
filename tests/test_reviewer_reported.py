"""Reviewer mode never proposes an ablation the paper already reports.

The embedded model once wrote "the paper does not report any ablation studies" about a paper
whose §3.3 is titled "Ablations", and proposed one of them. The planner now finds what the
paper reports (``planner.reported``), lists it in the reviewer prompt, and drops planned
items that repeat it, on the real shared papers and through the fake HTTP server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ablationkit.bench import load_dataset
from ablationkit.lm import LMClient
from ablationkit.papers import Paper, Section, load_paper, sample_paper_path
from ablationkit.planner import PlanProgress, plan
from ablationkit.planner.reported import (
    ReportedAblation,
    denies_ablations,
    drop_reported,
    matching_reported,
    reported_ablations,
)
from ablationkit.schema import Ablation, Plan
from ablationkit.testing import FakeLLMServer

Shared = list[tuple[str, Paper, list[Ablation]]]
REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "benchmarks" / "data" / "judge-labels.jsonl"


def item(
    name: str, part: str, action: str = "REMOVE", replacement: list[str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "ablated_part": part,
        "action": action,
        "replacement": replacement,
        "metrics": ["accuracy"],
    }


# On the KESTREL sample: §4.3 removes the diversity term, swaps the DPP for uniform sampling,
# trains the scorer on CLIP similarity, drops the coarse-to-fine stage, varies K.
REPORTED_DIVERSITY = item("No diversity term", "diversity term of the DPP selection (lambda = 0.3)")
REPORTED_BUDGET = item(
    "Frame budget", "number of selected keyframes K = 16", "REPLACE", ["8", "32"]
)
NEW_DEPTH = item(
    "Scorer depth", "two-layer cross-attention scorer", "REPLACE", ["1 layer", "4 layers"]
)
NEW_ENCODER = item("Frame encoder", "frozen CLIP ViT-B/16 frame encoder", "REPLACE", ["SigLIP"])


@pytest.fixture(scope="module")
def kestrel() -> Paper:
    return load_paper(sample_paper_path())


@pytest.fixture(scope="module")
def shared_instances(papers_dir: Path) -> Shared:
    """The shared papers and the two bundled samples, loaded once, with their ground truth."""
    instances = load_dataset(papers_dir) + [i for i in load_dataset("sample") if i.mode == "author"]
    return [(i.id, i.load(), i.ground_truth) for i in instances]


def run_reviewer(server: FakeLLMServer, paper: Paper, tmp_path: Path, **kwargs: Any) -> Plan:
    client = LMClient(cache=False, timeout=10)
    return plan(
        paper,
        client=client,
        api_base=server.url,
        raw_dir=tmp_path,
        model="test-model",
        mode="reviewer",
        **kwargs,
    )


# --- what the paper reports -----------------------------------------------------------------


def test_reported_ablations_are_read_from_the_ablation_section(kestrel: Paper) -> None:
    reported = reported_ablations(kestrel)
    descriptions = [r.description for r in reported]
    assert "the diversity term" in descriptions
    assert "the budget K ∈ {8, 16, 32}" in descriptions  # the LaTeX set, made readable
    assert any("uniform sampling among the top-64 frames" in d for d in descriptions)
    assert all(r.where == "§4.3 Ablation study" for r in reported)


def test_every_ground_truth_item_of_the_shared_papers_is_recognised(
    shared_instances: Shared,
) -> None:
    """The ground truth of the shared papers IS what they report: each item, taken as a
    planned ablation, is found to repeat one of the extracted reported ablations."""
    missed = []
    for paper_id, paper, truth in shared_instances:
        reported = reported_ablations(paper)
        assert reported, paper_id
        missed += [(paper_id, t.name) for t in truth if matching_reported(t, reported) is None]
    assert missed == []


def test_plausible_ablations_the_papers_do_not_report_are_kept(shared_instances: Shared) -> None:
    """The hand-written items of the labelled judge set that match no reported ablation
    (every pair an easy negative) mostly survive the filter; their reworded matches do not."""
    papers = {paper_id: reported_ablations(paper) for paper_id, paper, _ in shared_instances}
    negatives, positives = [], []
    for raw in LABELS.read_text("utf-8").splitlines():
        line = json.loads(raw)
        if line["paper"] not in papers or (
            line["paper"] == "kestrel-sample" and line["mode"] == "reviewer"
        ):
            continue  # KESTREL's reviewer lines are labelled against reviews, not the paper
        labels: dict[int, set[str]] = {}
        for planned, _target, label, *_ in line["pairs"]:
            labels.setdefault(planned, set()).add(label)
        for index, data in enumerate(line["planned"]):
            ablation = Ablation.model_validate(data)
            flagged = matching_reported(ablation, papers[line["paper"]]) is not None
            if "pos" in labels[index]:
                positives.append(flagged)
            elif labels[index] == {"neg"} and line["source"] != "model":
                negatives.append(flagged)
    assert len(negatives) >= 10 and len(positives) >= 40
    assert sum(negatives) <= len(negatives) // 10  # at most one in ten dropped wrongly
    assert sum(positives) >= 0.9 * len(positives)


def test_drop_reported_is_pure_and_says_why(kestrel: Paper) -> None:
    reported = reported_ablations(kestrel)
    planned = [Ablation.model_validate(x) for x in (REPORTED_DIVERSITY, NEW_DEPTH)]
    copies = [a.model_copy(deep=True) for a in planned]
    kept, notes = drop_reported(planned, reported)
    assert [a.name for a in kept] == ["Scorer depth"]
    assert len(notes) == 1 and "'No diversity term'" in notes[0]
    assert "the diversity term" in notes[0] and "§4.3 Ablation study" in notes[0]
    assert planned == copies  # nothing mutated


def test_a_paper_without_ablations_reports_none() -> None:
    paper = Paper(
        title="A Plain Paper",
        sections=[
            Section(number="1", title="Method", role="method", text="We use a gate."),
            Section(number="2", title="Results", role="experiments", text="It works well."),
        ],
    )
    assert reported_ablations(paper) == []
    kept, notes = drop_reported([Ablation.model_validate(NEW_DEPTH)], [])
    assert len(kept) == 1 and notes == []


def test_megabyte_paper_without_sentence_ends_is_read_in_bounded_time() -> None:
    """Every pattern is a bounded run of one character class: text made of cue words with no
    punctuation, and an unclosed caption bracket, cannot make a regex backtrack for long."""
    script = (
        "from ablationkit.papers import Paper, Section\n"
        "from ablationkit.planner.reported import reported_ablations\n"
        "text = ('removing the gate without w/o replacing effect of we vary K in {1 ' * 40000)\n"
        "text += '[Table 1: ' + 'ablation [x ' * 20000\n"
        "paper = Paper(title='X', sections=[Section(number='1', title='Ablation study',"
        " role='ablation', text=text)])\n"
        "print(len(text) > 2_000_000, len(reported_ablations(paper)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "True"


# --- the reviewer-mode planner --------------------------------------------------------------


def test_reviewer_prompt_lists_what_the_paper_already_reports(
    fake_llm: FakeLLMServer, kestrel: Paper, tmp_path: Path
) -> None:
    fake_llm.script(json.dumps({"reasoning": "r", "ablations": [NEW_DEPTH]}))
    run_reviewer(fake_llm, kestrel, tmp_path, k=1)
    user = fake_llm.requests[0]["messages"][1]["content"]
    heading = "ALREADY REPORTED BY THE PAPER (do not propose these again):"
    assert heading in user and user.index(heading) < user.index("<paper_source>")
    listed = user.split(heading, 1)[1].split("INSTRUCTIONS:", 1)[0]
    assert "- the diversity term (§4.3 Ablation study)" in listed
    assert "- the budget K ∈ {8, 16, 32} (§4.3 Ablation study)" in listed
    # no rule to parrot: the embedded model looped on "The paper does report ablations, so
    # never write that it reports none" for 675 s; a claim of none is corrected instead
    assert "never write" not in user and "in your own words" in user
    # author mode plans before the experiments exist: no such list
    fake_llm.script(json.dumps({"reasoning": "r", "ablations": [NEW_DEPTH]}))
    client = LMClient(cache=False, timeout=10)
    plan(kestrel, client=client, api_base=fake_llm.url, model="m", k=1, raw_dir=tmp_path)
    assert "ALREADY REPORTED" not in fake_llm.requests[-1]["messages"][1]["content"]


def test_reviewer_plan_drops_ablations_the_paper_reports(
    fake_llm: FakeLLMServer, kestrel: Paper, tmp_path: Path
) -> None:
    """Two of the three planned items are in §4.3; they are dropped with a note and a
    warning. If the planner asks the model again for the missing items, what comes back is
    filtered too (here: the reported frame budget again, and one new item)."""
    fake_llm.script(
        json.dumps(
            {
                "reasoning": "The scorer and the DPP selection are the main components.",
                "ablations": [REPORTED_DIVERSITY, NEW_DEPTH, REPORTED_BUDGET],
            }
        ),
        json.dumps({"ablations": [REPORTED_BUDGET, NEW_ENCODER]}),
    )
    notes: list[str] = []
    result = run_reviewer(
        fake_llm, kestrel, tmp_path, k=3, progress=PlanProgress(on_stage=notes.append)
    )
    names = [a.name for a in result.ablations]
    assert "No diversity term" not in names and "Frame budget" not in names
    assert names[0] == "Scorer depth"
    reported = reported_ablations(kestrel)
    assert all(matching_reported(a, reported) is None for a in result.ablations)
    assert "already in the paper" in result.reasoning
    assert "'No diversity term'" in result.reasoning and "'Frame budget'" in result.reasoning
    assert any(n.startswith("warning:") and "No diversity term" in n for n in notes)
    follow_up = fake_llm.requests[1]["messages"][-1]["content"]
    assert (
        'The paper already reports these, so they are not missing: "No diversity term"; '
        '"Frame budget". Do not propose them again.'
    ) in follow_up


def test_reviewer_reasoning_that_denies_the_papers_ablations_is_corrected(
    fake_llm: FakeLLMServer, kestrel: Paper, tmp_path: Path
) -> None:
    fake_llm.script(
        json.dumps(
            {
                "reasoning": "The paper does not report any ablation studies. The scorer matters.",
                "ablations": [NEW_DEPTH],
            }
        )
    )
    result = run_reviewer(fake_llm, kestrel, tmp_path, k=1)
    assert result.reasoning.startswith("The paper does not report any ablation studies.")
    assert "Correction by the planner: the paper does report ablations: " in result.reasoning
    assert "the diversity term" in result.reasoning.split("Correction by the planner")[1]


@pytest.mark.parametrize(
    ("sentence", "denies"),
    [
        ("The paper does not report any ablation studies.", True),
        ("No ablations are reported.", True),
        ("It lacks ablations.", True),
        # claims about some ablations, named or listed: fair, never "corrected"
        ("It does not report the following ablations: the margin and the encoder.", False),
        ("The paper lacks an ablation of the margin.", False),
        ("It does not include ablations such as a GRU encoder.", False),
        ("The paper is missing several important ablations.", False),
        ("It does not report these ablations, which matter.", False),
    ],
)
def test_a_claim_of_no_ablations_is_told_from_a_claim_that_some_are_missing(
    sentence: str, denies: bool
) -> None:
    assert denies_ablations(sentence) is denies


def test_planner_added_sweep_is_not_one_the_paper_reports(
    fake_llm: FakeLLMServer, kestrel: Paper, tmp_path: Path
) -> None:
    """With no planned item varying a value, the planner adds a sweep of a stated value; in
    reviewer mode not of K (the paper sweeps K ∈ {8, 16, 32}) but of one it never varies."""
    removes = [
        item(f"Drop part {i}", f"auxiliary component number {i} of the scorer") for i in range(4)
    ]
    fake_llm.script(json.dumps({"reasoning": "r", "ablations": removes}))
    result = run_reviewer(fake_llm, kestrel, tmp_path, k=4)
    sweeps = [a for a in result.ablations if a.name.startswith("Sensitivity to")]
    assert sweeps, result.ablations
    reported = reported_ablations(kestrel)
    assert all(matching_reported(a, reported) is None for a in result.ablations)
    assert not sweeps[0].ablated_part.startswith("K,")


def test_reported_ablation_is_hashable_and_renders_its_place() -> None:
    entry = ReportedAblation("the warm-up", "§3.1 Ablation study")
    assert entry.render() == "the warm-up (§3.1 Ablation study)"
    assert len({entry, ReportedAblation("the warm-up", "§3.1 Ablation study")}) == 1
