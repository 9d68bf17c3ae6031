"""The trajectory format against the real corpus: byte-exact round trips, repaired seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablationkit import parse_trajectory, render_trajectory
from ablationkit.trajectory import PLAN_STYLES
from conftest import corpus_files, seed_files

CORPUS = corpus_files()
SEEDS = seed_files()
MOJIBAKE_MARKERS = ("üß", "üìã", "ðŸ", "‚Äô", "‚Äì", "â€", "Ã")


def test_corpus_is_there(trajectories_dir: Path) -> None:
    # Guard against the parametrised tests below silently collecting nothing.
    assert len(CORPUS) > 900


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.stem[:40]}")
def test_corpus_round_trip_is_byte_exact(path: Path) -> None:
    raw = path.read_bytes()
    plan = parse_trajectory(raw.decode("utf-8"), where=str(path))
    assert render_trajectory(plan).encode("utf-8") == raw
    assert plan.ablations, "every corpus file has at least one ablation"
    assert plan.model in {"gpt-4o", "claude-3.5-sonnet"}


def test_corpus_modes_follow_box_colour(trajectories_dir: Path) -> None:
    modes = {"author": 0, "reviewer": 0}
    for path in CORPUS:
        text = path.read_text(encoding="utf-8")
        plan = parse_trajectory(text)
        modes[plan.mode] += 1
        assert PLAN_STYLES[plan.mode].border in text
    assert modes["author"] > 100 and modes["reviewer"] > 700


def test_corpus_actions_and_replacements(trajectories_dir: Path) -> None:
    plans = [parse_trajectory(p.read_text(encoding="utf-8")) for p in CORPUS]
    ablations = [a for plan in plans for a in plan.ablations]
    removes = [a for a in ablations if a.action == "REMOVE"]
    replaces = [a for a in ablations if a.action == "REPLACE"]
    assert removes and replaces
    assert all(a.replacement is None for a in removes)
    assert all(isinstance(a.replacement, list) and a.replacement for a in replaces)
    assert all(a.metrics for a in ablations)


def test_seeds_are_there(seeds_dir: Path) -> None:
    assert len(SEEDS) == 5


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_mojibake_is_repaired(path: Path) -> None:
    broken = path.read_text(encoding="utf-8")
    assert any(marker in broken for marker in MOJIBAKE_MARKERS)
    plan = parse_trajectory(broken)
    codec = plan.layout.repaired_encoding
    assert codec in {"macroman", "sloppy-windows-1252"}
    rendered = render_trajectory(plan)
    # Independent oracle: undo the wrong decoding with Python's own codec tables.
    python_codec = "mac_roman" if codec == "macroman" else "cp1252"
    assert rendered == broken.encode(python_codec).decode("utf-8")
    assert "🧠 Reasoning Trace" in rendered and "📋 Ablation Plan" in rendered
    assert not any(marker in rendered for marker in MOJIBAKE_MARKERS)
    # And the clean text is stable: parsing it again changes nothing.
    assert render_trajectory(parse_trajectory(rendered)) == rendered


def test_seed_typography_survives_repair(seeds_dir: Path) -> None:
    plan = parse_trajectory((seeds_dir / "000_f000b98a064e9d7e.txt").read_text("utf-8"))
    assert "original model’s capabilities" in plan.reasoning  # curly quote kept, not uncurled
    assert "adapter‐augmented" in plan.reasoning
    assert plan.model == "o3-mini" and plan.mode == "reviewer"
    assert [a.action for a in plan.ablations] == ["REMOVE", "REPLACE"]
    assert plan.ablations[1].replacement == ["0.7", "0.8", "0.9"]
