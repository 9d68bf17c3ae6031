"""Markdown (marker-style, as AblationBench ships papers) and plain text with numbered headings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablationkit.errors import FormatError
from ablationkit.papers import author_view, load_paper

MARKER = """# Gated Widgets: Fast and Sparse

<span id="page-0-0"></span>Ann Author, Bob Author

## ABSTRACT

We propose gated widgets.

![](_page_0_Picture_1.jpeg)

## 1 INTRODUCTION

Widgets are everywhere.

## 2 RELATED WORK

Prior widgets [\\[1\\]](#page-9-0).

## 3 GATED WIDGETS

Our gate has two parts.

### 3.1 Gate network

A two-layer MLP with $d=64$.

```python
# 4 Not a heading inside code
gate = mlp(x)
```

## 4 EXPERIMENTS

Setup.

### 4.3 Ablation Study

Without the gate accuracy drops by 3 points.

## 5 CONCLUSION

Done.

## REFERENCES

[1] Someone. Widgets. 2020.

## A Additional Proofs

The proof.
"""


def test_marker_markdown(tmp_path: Path) -> None:
    path = tmp_path / "paper.md"
    path.write_text(MARKER, "utf-8")
    paper = load_paper(path)
    assert paper.format == "markdown"
    assert paper.title == "Gated Widgets: Fast and Sparse"
    assert paper.abstract == "We propose gated widgets."
    assert [(s.number, s.title, s.role) for s in paper.walk()] == [
        ("1", "INTRODUCTION", "other"),
        ("2", "RELATED WORK", "related_work"),
        ("3", "GATED WIDGETS", "method"),
        ("3.1", "Gate network", "method"),
        ("4", "EXPERIMENTS", "experiments"),
        ("4.3", "Ablation Study", "ablation"),
        ("5", "CONCLUSION", "conclusion"),
        ("A", "Additional Proofs", "appendix"),
    ]
    gate = next(s for s in paper.walk() if s.number == "3.1")
    assert "# 4 Not a heading inside code" in gate.text
    markdown = paper.to_markdown()
    assert "_page_0_Picture" not in markdown and "<span" not in markdown
    assert "Someone. Widgets" not in markdown
    author = author_view(paper).to_markdown()
    assert "two-layer MLP" in author and "accuracy drops" not in author and "Setup." not in author


TEXT = """Gated Widgets: Fast and Sparse
Ann Author

Abstract
We propose gated widgets, which are 2 times faster.

1 Introduction
Widgets are everywhere.
We list three facts:
1 widgets are small,
2 widgets are fast.

2 Proposed Approach
The gate is an MLP.

2.1 Training
We train for 10 epochs.

3 Experiments
Results.

3.1 Ablations
Without the gate it is worse.

4 Conclusion
Done.
"""


def test_plain_text_with_numbered_headings(tmp_path: Path) -> None:
    path = tmp_path / "paper.txt"
    path.write_text(TEXT, "utf-8")
    paper = load_paper(path)
    assert paper.format == "text"
    assert paper.title == "Gated Widgets: Fast and Sparse"
    assert paper.abstract == "We propose gated widgets, which are 2 times faster."
    assert [(s.number, s.title, s.role) for s in paper.walk()] == [
        ("1", "Introduction", "other"),
        ("2", "Proposed Approach", "method"),
        ("2.1", "Training", "method"),
        ("3", "Experiments", "experiments"),
        ("3.1", "Ablations", "ablation"),
        ("4", "Conclusion", "conclusion"),
    ]
    intro = paper.sections[0].text
    assert "1 widgets are small," in intro and "2 widgets are fast." in intro


def test_section_overrides_by_number_and_title(tmp_path: Path) -> None:
    path = tmp_path / "paper.txt"
    path.write_text(TEXT, "utf-8")
    paper = load_paper(path, method_section=["2.1"], ablation_section="Experiments")
    roles = {s.title: s.role for s in paper.walk()}
    assert roles["Training"] == "method" and roles["Proposed Approach"] == "other"
    assert roles["Experiments"] == "ablation" and roles["Ablations"] == "ablation"
    with pytest.raises(Exception, match='no section "Nope"'):
        load_paper(path, method_section="Nope")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"  \n\n\t\n", "empty file"),
        ("latin.txt", "caf\xe9 au lait\n".encode("latin-1"), "not UTF-8"),
        ("junk.md", b"\x00\x01\x02\x03binary", "binary data"),
    ],
)
def test_bad_text_inputs(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        load_paper(path)
    assert message in str(info.value) and str(info.value).startswith(str(path))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file or directory"):
        load_paper(tmp_path / "nothing.pdf")
