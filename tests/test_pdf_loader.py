"""PDFs made here with PyMuPDF: outline or not, running footers, and broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

pymupdf = pytest.importorskip("pymupdf")

from ablationkit.errors import FormatError  # noqa: E402
from ablationkit.papers import load_paper  # noqa: E402

BODY = "This sentence is part of the body text of the paper and it goes on for a while. " * 3
PAGES = [
    [
        ("title", "Sparse Widgets for Fast Inference"),
        ("p", "Abstract—We propose sparse widgets. They are fast and accurate on every benchmark."),
        ("h", "1 Introduction"),
        ("p", "Widgets matter. " + BODY),
        ("h", "2 Method"),
        ("p", "Our method has an encoder. " + BODY),
        ("h", "2.1 Encoder"),
        ("p", "The encoder uses four layers. " + BODY),
    ],
    [
        ("h", "3 Experiments"),
        ("p", "We evaluate on three datasets. " + BODY),
        ("h", "3.1 Ablation Study"),
        ("p", "Removing the encoder hurts. " + BODY),
        ("h", "4 Conclusion"),
        ("p", "Widgets work. " + BODY),
    ],
    [
        ("h", "References"),
        ("p", "[1] A. Author. A paper about widgets. 2020."),
        ("h", "A Proofs"),
        ("p", "Proof of the widget lemma. " + BODY),
    ],
]
TOC = [
    [1, "Introduction", 1],
    [1, "Method", 1],
    [2, "Encoder", 1],
    [1, "Experiments", 2],
    [2, "Ablation Study", 2],
    [1, "Conclusion", 2],
    [1, "Appendix A: Proofs", 3],
]


def make_pdf(path: Path, *, toc: bool) -> Path:
    doc = pymupdf.open()
    for number, blocks in enumerate(PAGES, start=1):
        page = doc.new_page(width=595, height=842)
        y = 60.0
        for kind, text in blocks:
            size = {"title": 20, "h": 13, "p": 10}[kind]
            height = 2 * size if kind != "p" else 14 * (len(text) // 80 + 2)
            rect = pymupdf.Rect(60, y, 535, y + height)
            left = page.insert_textbox(
                rect, text, fontsize=size, fontname="hebo" if kind != "p" else "helv"
            )
            assert left >= 0, f"test PDF: {text[:20]!r} did not fit its box"
            y += height + 12
        page.insert_text((290, 820), str(number), fontsize=9)  # page number in the footer
    if toc:
        doc.set_toc(TOC)
    doc.save(path)
    return path


def _outline(paper):  # type: ignore[no-untyped-def]
    return [(s.number, s.title, s.role, s.appendix) for s in paper.walk()]


EXPECTED = [
    ("1", "Introduction", "other", False),
    ("2", "Method", "method", False),
    ("2.1", "Encoder", "method", False),
    ("3", "Experiments", "experiments", False),
    ("3.1", "Ablation Study", "ablation", False),
    ("4", "Conclusion", "conclusion", False),
    ("A", "Proofs", "appendix", True),
]


def test_pdf_with_outline(tmp_path: Path) -> None:
    paper = load_paper(make_pdf(tmp_path / "with-toc.pdf", toc=True))
    assert paper.format == "pdf"
    assert paper.title == "Sparse Widgets for Fast Inference"
    assert paper.abstract.startswith("We propose sparse widgets.")
    assert _outline(paper) == EXPECTED
    text = paper.to_markdown()
    assert "A paper about widgets" not in text  # references dropped
    assert "\n2\n" not in text and "\n3\n" not in text  # page numbers dropped
    method = next(s for s in paper.walk() if s.title == "Method")
    assert method.text.startswith("Our method has an encoder.")
    assert not paper.warnings


def test_pdf_without_outline_guesses_numbered_headings(tmp_path: Path) -> None:
    paper = load_paper(make_pdf(tmp_path / "no-toc.pdf", toc=False))
    assert _outline(paper) == EXPECTED
    assert any("no PDF outline" in w for w in paper.warnings)


def test_encrypted_pdf(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret")
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    with pytest.raises(FormatError, match="encrypted PDF") as info:
        load_paper(path)
    assert str(info.value).startswith(str(path))


def test_pdf_without_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    doc = pymupdf.open()
    page = doc.new_page()
    page.draw_rect(pymupdf.Rect(50, 50, 300, 300), fill=(0.5, 0.5, 0.5))
    doc.save(path)
    with pytest.raises(FormatError, match="no extractable text"):
        load_paper(path)


@pytest.mark.parametrize(
    "content",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >>\ngarbage" * 3,
        b"this is not a pdf at all\n" * 10,
        b"%PDF-",
    ],
)
def test_corrupt_pdfs_fail_with_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        load_paper(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert any(word in message for word in ("corrupt", "no pages", "no extractable text"))


def test_truncated_pdf_never_crashes(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", toc=True).read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(good[: len(good) // 2])
    try:
        paper = load_paper(path)
    except FormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert paper.sections
