"""``extract_hints``: the same facts as before issue 15 on real papers, in one pass.

Issue 15 found ``extract_hints`` taking 7 ms per 13 KB paper (one regex per metric name, each
scanning the whole text). It now makes one pass with one compiled alternation. The hints it
gives on the shared papers and the bundled sample were recorded with the old implementation
before the change (``tests/data/hints_before_issue15.json``, written by
``benchmarks/bench_hints.py --record``); the differences accepted since are listed below,
each with its reason.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ablationkit.papers import Paper, load_paper, sample_paper_path, view
from ablationkit.planner.hints import extract_hints
from conftest import REPO, SHARED

FIXTURE = REPO / "tests" / "data" / "hints_before_issue15.json"
RECORDED: dict[str, dict[str, Any]] = json.loads(FIXTURE.read_text("utf-8"))

# Differences from the recorded hints that are accepted, as
# ``{text: {field: (recorded value, value now, reason)}}``. Empty: the new implementation
# gives the recorded hints on every recorded text (its fixes -- acronyms in shouted text,
# ``Hit@k`` / ``Recall@k`` -- change nothing on these papers; they have their own tests below).
ACCEPTED: dict[str, dict[str, tuple[Any, Any, str]]] = {}


def _bench() -> ModuleType:
    """``benchmarks/bench_hints.py``, which keeps the old implementation importable."""
    name = "bench_hints_for_tests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "bench_hints.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _as_json(text: str) -> dict[str, Any]:
    return _bench().hints_as_json(extract_hints(text))


@functools.cache
def _paper(path: Path) -> Paper:
    return load_paper(path)


def _text(name: str) -> str:
    paper, mode = name.rsplit("/", 1)
    path = sample_paper_path() if paper == "sample_paper" else SHARED / "papers" / paper
    if not path.exists():
        pytest.skip(f"shared paper not found: {path}")
    return view(_paper(path), mode).to_markdown()  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_same_hints_as_before_on_the_shared_papers_and_the_sample(name: str) -> None:
    text = _text(name)
    recorded = RECORDED[name]
    if _bench().digest(text) == recorded["sha256"]:
        expected = {k: recorded[k] for k in ("settings", "alternatives", "metrics")}
    else:  # the loader changed the text since: hold it to the old implementation on it
        expected = _bench().hints_as_json(_bench().old_extract_hints(text))
    for field, (before, now, _reason) in ACCEPTED.get(name, {}).items():
        assert expected[field] == before, f"{name}: accepted difference no longer applies"
        expected[field] = now
    assert _as_json(text) == expected


def test_the_fixture_covers_the_sample_in_both_modes_and_its_hints_are_not_empty() -> None:
    assert {"sample_paper/author", "sample_paper/reviewer"} <= set(RECORDED)
    sample = RECORDED["sample_paper/author"]
    assert sample["settings"] and sample["alternatives"] and sample["metrics"]


PDFS = sorted((SHARED / "papers").glob("*/paper.pdf"))


@pytest.mark.parametrize("pdf", PDFS, ids=lambda p: p.parent.name)
def test_same_hints_as_the_old_implementation_on_the_pdf_papers(pdf: Path) -> None:
    for mode in ("author", "reviewer"):
        text = view(_paper(pdf), mode).to_markdown()
        assert _as_json(text) == _bench().hints_as_json(_bench().old_extract_hints(text)), mode


# ---- metric names ----------------------------------------------------------------------------


def test_acronyms_do_not_match_ordinary_words() -> None:
    text = "This is what them is. Is it? Fid, bleu, em and kid are words here; is is is."
    assert extract_hints(text).metrics == []


def test_acronyms_match_case_sensitively_beside_punctuation() -> None:
    text = "We report FID and IS (Inception Score), BLEU; (R)MSE, and EM."
    assert set(extract_hints(text).metrics) == {"FID", "IS", "BLEU", "MSE", "EM"}


def test_acronym_inside_shouted_text_is_not_a_metric() -> None:
    """A PDF's capitalised title or running header ("WHAT IS NEEDED FOR KID DETECTION") is
    not a report of the Inception Score or the Kernel Inception Distance."""
    text = (
        "## WHAT IS NEEDED FOR KID SAFETY\n\nWe report FID.\n\n"
        "PROCEEDINGS OF THE CONFERENCE. THIS IS A PREPRINT\n\nText."
    )
    assert extract_hints(text).metrics == ["FID"]


def test_acronym_beside_another_metric_name_in_capitals_is_still_a_metric() -> None:
    assert extract_hints("Results: FID IS LPIPS on the test set.").metrics == [
        "FID",
        "IS",
        "LPIPS",
    ]
    assert extract_hints("FID, IS, and precision.").metrics == ["precision", "FID", "IS"]


def test_word_metrics_match_in_any_case_but_not_inside_words_or_after_a_hyphen() -> None:
    hints = extract_hints("Accuracy and ACCURACY and accuracy-based; inaccuracy, non-recall.")
    assert hints.metrics == ["accuracy"]


def test_at_k_metrics_match_with_their_cutoff() -> None:
    """``Hit@10`` and ``Recall@k`` are the ranking metrics named ``Hit@`` and ``Recall@``:
    the old patterns required a non-word character after the ``@`` and never matched them."""
    hints = extract_hints("We report Hit@10, Hit@1 and Recall@k, and MRR.")
    assert hints.metrics == ["Hit@", "MRR", "Recall@"]


def test_ties_are_ordered_as_the_metric_names_are() -> None:
    assert extract_hints("latency, then BLEU, then accuracy.").metrics == [
        "accuracy",
        "BLEU",
        "latency",
    ]


def test_at_most_six_metrics_most_frequent_first() -> None:
    text = "PSNR SSIM LPIPS FID KID FVD MSE. " + "MSE and FVD. " * 3
    metrics = extract_hints(text).metrics
    assert len(metrics) == 6 and metrics[:2] == ["FVD", "MSE"]


# ---- settings and design choices -------------------------------------------------------------


def test_math_settings_come_before_named_ones_and_names_are_deduplicated() -> None:
    text = (
        "We use a learning rate of 0.001 and a batch size of 64. The temperature "
        "$\\tau = 2$ and the learning rate of 0.1 later."
    )
    settings = extract_hints(text).settings
    assert [(s.name, s.value) for s in settings] == [
        ("\\tau", "2"),
        ("learning rate", "0.001"),
        ("batch size", "64"),
    ]
    assert settings[0].meaning == "the temperature"


def test_a_named_setting_inside_another_ones_phrase_is_not_read_twice() -> None:
    """As before: ``dropout rate and learning rate of 0.1`` is one match (dropout rate)."""
    settings = extract_hints("The dropout rate and learning rate of 0.1 are fixed.").settings
    assert [(s.name, s.value) for s in settings] == [("dropout rate", "0.1")]


def test_design_choices_come_from_cue_sentences_of_body_paragraphs_only() -> None:
    text = (
        "# Instead of a heading we use nothing here at all\n\n"
        "[Figure 1: we use a figure caption instead of text here.]\n\n"
        "Short instead.\n\n"
        "We train the encoder with a contrastive loss. We use cosine similarity rather than "
        "the dot product between the two views.\n\n"
        "Compared with the baseline, our model needs half the memory and time."
    )
    assert extract_hints(text).alternatives == [
        "We use cosine similarity rather than the dot product between the two views.",
        "Compared with the baseline, our model needs half the memory and time.",
    ]


def test_a_cue_split_by_a_paragraph_break_is_no_cue() -> None:
    text = "The model is compared\n\nto nothing else in this paragraph of the text at all."
    assert extract_hints(text).alternatives == []


def test_at_most_max_alternatives_and_a_long_text_is_read_in_one_pass() -> None:
    paragraphs = [
        f"We use a small network rather than a large one for run {i}. " for i in range(5_000)
    ]
    text = "\n\n".join(paragraphs) + "is them IS " * 20_000  # ~0.5 MB
    hints = extract_hints(text, method_text="\n\n".join(paragraphs), max_alternatives=3)
    assert len(hints.alternatives) == 3
    assert hints.metrics == ["IS"]


def test_the_method_names_the_alternatives_first() -> None:
    """MaskGIT's author view: read in order, the introduction's cue sentences took every
    slot; the method's lists of mask schedules (what its ablation compares) come first."""
    intro = (
        "Unlike text, images are not sequential at all in any of their many forms.\n\n"
        "Compared with GANs, these models are learned by maximum likelihood estimation."
    )
    method = (
        "We use a cosine schedule for the mask ratio during training and decoding.\n\n"
        "The concave family includes cosine, square, cubic, and exponential.\n\n"
        "Such functions have been used before in many works on masked modelling."
    )
    hints = extract_hints(f"{intro}\n\n{method}", method_text=method, max_alternatives=3)
    assert hints.alternatives == [
        "We use a cosine schedule for the mask ratio during training and decoding.",
        "The concave family includes cosine, square, cubic, and exponential.",
        "Unlike text, images are not sequential at all in any of their many forms.",
    ]
    one = extract_hints(f"{intro}\n\n{method}", method_text=method, max_alternatives=1)
    assert one.alternatives == [
        "The concave family includes cosine, square, cubic, and exponential."
    ]
