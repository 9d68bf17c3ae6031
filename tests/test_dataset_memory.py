"""A dataset of thousands of papers is not held in memory: each row's text is read again
when its paper is prepared (issue 15: 10,000 papers of 13 KB peaked near 450 MB)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from ablationkit.bench import load_dataset
from ablationkit.errors import FormatError

BODY = "# Method\n\nWe gate the encoder with a sparse gate.\n\n" + "Filler words. " * 900  # ~13 KB


def write_dataset(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            row = {
                "id": f"paper-{i:05d}",
                "title": f"Paper {i}",
                "text": f"# Paper {i}\n\n{BODY}\u2028end {i}",  # U+2028 stays inside its row
                "ground_truth": [],
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def test_loading_a_large_dataset_keeps_no_paper_text_in_memory(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "big.jsonl", 1500)  # ~20 MB of text
    size = path.stat().st_size
    tracemalloc.start()
    try:
        instances = load_dataset(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(instances) == 1500
    assert peak < size / 4, f"peak {peak} bytes while loading {size} bytes of dataset"


def test_a_spilled_row_loads_the_same_paper_as_before(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", 3)
    instance = load_dataset(path, ids=["paper-00002"], mode="reviewer")[0]  # a copy keeps it
    assert instance.source_text() == f"# Paper 2\n\n{BODY}\u2028end 2"
    paper = instance.load()
    assert paper.title == "Paper 2"
    assert "sparse gate" in paper.to_markdown()


def test_short_rows_keep_their_text_inline(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "# T\n\n## Method\n\nShort."}) + "\n")
    [instance] = load_dataset(path)
    assert instance.text == "# T\n\n## Method\n\nShort."


def test_a_dataset_file_changed_under_a_run_is_one_clear_error(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", 2)
    instance = load_dataset(path)[1]
    path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(FormatError, match="changed since it was read"):
        instance.load()
