"""PDFs made here with PyMuPDF: outline or not, running footers, and broken files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

pymupdf = pytest.importorskip("pymupdf")

from ablationkit.errors import FormatError  # noqa: E402
from ablationkit.papers import Paper, Section, load_paper  # noqa: E402

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
    return write_pdf(path, PAGES, TOC if toc else None)


def write_pdf(
    path: Path,
    pages: list[list[tuple[str, str]]],
    toc: list[list[object]] | None,
    *,
    figure: Sequence[tuple[float, float, str]] = (),
) -> Path:
    """A PDF of ``pages`` (blocks of kind title/h/p, one text box each, top to bottom), a
    page number in each footer, ``toc`` as its outline, and ``figure`` (x, y, text) as small
    loose labels on the first page, like a plot's axis ticks."""
    doc = pymupdf.open()
    for number, blocks in enumerate(pages, start=1):
        page = doc.new_page(width=595, height=842)
        y = 60.0
        for kind, text in blocks:
            size = {"title": 20, "h": 13, "p": 10}[kind]
            lines = len(text) // 80 + text.count("\n") + 2
            height = 2 * size if kind != "p" else 14 * lines
            rect = pymupdf.Rect(60, y, 535, y + height)
            left = page.insert_textbox(
                rect, text, fontsize=size, fontname="hebo" if kind != "p" else "helv"
            )
            assert left >= 0, f"test PDF: {text[:20]!r} did not fit its box"
            y += height + 12
        if number == 1:
            for x, y_label, label in figure:
                page.insert_text((x, y_label), label, fontsize=7)
        page.insert_text((290, 820), str(number), fontsize=9)  # page number in the footer
    if toc:
        doc.set_toc(toc)
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


# ---- artefacts seen on a real PDF (issue 15) -------------------------------------------------


Pages = list[list[tuple[str, str]]]


def _paper_of(
    tmp_path: Path,
    pages: Pages,
    toc: list[list[object]],
    figure: Sequence[tuple[float, float, str]] = (),
) -> Paper:
    return load_paper(write_pdf(tmp_path / "artefacts.pdf", pages, toc, figure=figure))


def _section(paper: Paper, title: str) -> Section:
    return next(s for s in paper.walk() if s.title == title)


TWO_COLUMN_PAGES = [
    [
        ("title", "Sparse Widgets for Fast Inference"),
        ("p", "Abstract. We propose sparse widgets. They are fast."),
        ("h", "1. Introduction"),
        ("p", "Widgets matter. " + BODY),
        ("h", "2. Method"),
        ("p", "Our method has an encoder. " + BODY),
        ("h", "3. Experiments"),
        ("p", "We evaluate on three datasets. " + BODY),
        ("h", "4. Limitations"),
        ("p", "Widgets are small. " + BODY),
    ],
    [
        ("h", "Acknowledgements"),
        ("p", "We thank the widget makers. " + BODY),
        ("h", "References"),
        ("p", "[1] A. Author. A paper about widgets. 2020."),
        ("h", "Supplementary Material"),
        ("p", "More widgets here. " + BODY),
        ("h", "A. Proofs"),
        ("p", "Proof of the widget lemma. " + BODY),
    ],
]
# the outline of a CVPR-style paper: "1 . Introduction", the number apart from its title
SPACED_TOC = [
    [1, "1 . Introduction", 1],
    [1, "2 . Method", 1],
    [1, "3 . Experiments", 1],
    [1, "4 . Limitations", 1],
    [1, "Acknowledgements", 2],
    [1, "References", 2],
    [1, "Supplementary Material", 2],
    [2, "A . Proofs", 2],
]


def test_outline_titles_with_the_number_apart_lose_the_stray_period(tmp_path: Path) -> None:
    paper = _paper_of(tmp_path, TWO_COLUMN_PAGES, SPACED_TOC)
    titles = [(s.number, s.title) for s in paper.walk()]
    assert titles[:4] == [
        ("1", "Introduction"),
        ("2", "Method"),
        ("3", "Experiments"),
        ("4", "Limitations"),
    ]
    assert ("A", "Proofs") in titles
    assert not any(s.title.startswith((".", ":", ")")) for s in paper.walk())
    assert "## 1 Introduction" in paper.to_markdown()


def test_supplementary_material_is_no_section_m_titled_aterial(tmp_path: Path) -> None:
    """ "Supplementary Material" read as "Supplementary M" + "aterial" made a phantom
    appendix section M, "aterial"."""
    paper = _paper_of(tmp_path, TWO_COLUMN_PAGES, SPACED_TOC)
    assert not any(s.number == "M" or s.title == "aterial" for s in paper.walk())
    proofs = _section(paper, "Proofs")
    assert proofs.appendix and proofs.role == "appendix"


def test_limitations_and_acknowledgements_are_not_experiments(tmp_path: Path) -> None:
    paper = _paper_of(tmp_path, TWO_COLUMN_PAGES, SPACED_TOC)
    assert _section(paper, "Experiments").role == "experiments"
    assert _section(paper, "Limitations").role == "conclusion"
    assert _section(paper, "Acknowledgements").role == "other"
    # nested under the experiments in the outline, they still are not experiments
    nested = [
        [1, "1 Introduction", 1],
        [1, "2 Method", 1],
        [1, "3 Experiments", 1],
        [2, "3.1 Limitations", 1],
        [2, "Acknowledgements", 2],
    ]
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            ("p", "Widgets matter. " + BODY),
            ("h", "2 Method"),
            ("p", "Our method has an encoder. " + BODY),
            ("h", "3 Experiments"),
            ("p", "We evaluate on three datasets. " + BODY),
            ("h", "3.1 Limitations"),
            ("p", "Widgets are small. " + BODY),
        ],
        [("h", "Acknowledgements"), ("p", "We thank the widget makers. " + BODY)],
    ]
    paper = _paper_of(tmp_path, pages, nested)
    roles = {s.title: s.role for s in paper.walk()}
    assert roles == {
        "Introduction": "other",
        "Method": "method",
        "Experiments": "experiments",
        "Limitations": "conclusion",
        "Acknowledgements": "other",
    }


AXIS_TICKS = [(330.0, 250.0 + 12 * i, f"{0.2 * i:.1f}") for i in range(5)] + [
    (340.0 + 30 * i, 320.0, str(10 * i)) for i in range(5)
]


def test_figure_axis_numbers_are_not_paragraphs(tmp_path: Path) -> None:
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            ("p", "Widgets matter. " + BODY),
        ],
        [("h", "2 Method"), ("p", "Our method has an encoder with 4 layers and 0.5 dropout.")],
    ]
    toc = [[1, "1 Introduction", 1], [1, "2 Method", 2]]
    paper = _paper_of(tmp_path, pages, toc, figure=[*AXIS_TICKS, (480.0, 330.0, "(a) 0.25")])
    intro = _section(paper, "Introduction")
    assert intro.text == "Widgets matter. " + BODY.strip()
    assert _section(paper, "Method").text.endswith("0.5 dropout.")  # numbers in prose stay


def test_nul_and_control_characters_never_reach_the_view(tmp_path: Path) -> None:
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            # (PyMuPDF writes DEL as a bullet: these are the ones it keeps)
            ("p", "Widgets\x00 matter\x07 and\x1b they\x01 are\x02 fast. " + BODY),
        ]
    ]
    paper = _paper_of(tmp_path, pages, [[1, "1 Introduction", 1]])
    text = paper.to_markdown()
    assert not [ch for ch in text if ch not in "\n\t" and (ord(ch) < 32 or 127 <= ord(ch) < 160)]
    assert "Widgets matter and they are fast." in text
    assert [s.title for s in paper.walk()] == ["Introduction"]


HYPHENATED = (
    "We want to en-\nsure that self-attention is fast. The self-\nattention layer and the "
    "model-free method need CIFAR-\n10 and Auto-\nML and an algo-\nrithm with a state-of-the-\n"
    "art result. The algorithm is model-\nfree and we make sure it is a con-\ntribution. "
    "Our work is the last one to be con-"
)


def test_line_end_hyphens_join_words_but_keep_compounds(tmp_path: Path) -> None:
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            ("p", HYPHENATED),
        ],
        # the paragraph goes on at the top of the next page (or column): "con-" / "sidered"
        [("p", "sidered here, and the state-of-the-art is too."), ("h", "2 Method")],
    ]
    paper = _paper_of(tmp_path, pages, [[1, "1 Introduction", 1], [1, "2 Method", 2]])
    intro = _section(paper, "Introduction").text
    for joined in ("ensure", "algorithm", "contribution", "considered here"):
        assert joined in intro
    for compound in ("self-attention layer", "model-free", "CIFAR-10", "Auto-ML"):
        assert compound in intro
    assert "state-of-the-art result" in intro
    assert "- " not in intro and "-\n" not in intro
    assert "\n\n" not in intro  # one paragraph across the page break


@pytest.mark.parametrize(
    ("limitations", "acknowledgements"),
    [
        # NeurIPS: unnumbered headings the outline leaves out
        (("h", "Limitations"), ("h", "Acknowledgments and Disclosure of Funding")),
        # a run-in heading opening its paragraph
        (("h", "Limitations"), ("p", "Acknowledgements. We thank the widget makers.")),
    ],
)
def test_unnumbered_back_matter_outside_the_outline_is_not_experiments(
    tmp_path: Path, limitations: tuple[str, str], acknowledgements: tuple[str, str]
) -> None:
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            ("p", "Widgets matter. " + BODY),
            ("h", "2 Method"),
            ("p", "Our method has an encoder. " + BODY),
            ("h", "3 Experiments"),
            ("p", "We evaluate on three datasets. " + BODY),
            limitations,
            ("p", "Widgets are small and slow to build."),
        ],
        [
            acknowledgements,
            *([("p", "We thank the widget makers.")] * (acknowledgements[0] == "h")),
        ],
    ]
    toc = [[1, "1 Introduction", 1], [1, "2 Method", 1], [1, "3 Experiments", 1]]
    paper = _paper_of(tmp_path, pages, toc)
    experiments = _section(paper, "Experiments")
    assert experiments.role == "experiments"
    assert "small and slow" not in experiments.text and "We thank" not in experiments.text
    roles = {s.title: s.role for s in paper.walk()}
    assert roles["Limitations"] == "conclusion"
    assert [r for t, r in roles.items() if t.startswith("Acknowledg")] == ["other"]
    assert "We thank the widget makers." in paper.to_markdown()


def test_a_broken_word_goes_on_after_the_floats_between(tmp_path: Path) -> None:
    """The column ends in "For CIFAR-"; a figure caption and a table come first in the text,
    then "10, ensembles ..." (seen on the shared iSklearn PDF)."""
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            ("p", "Widgets matter. " + BODY + "The widgets are then con-"),
        ],
        [
            ("p", "Figure 1: Widgets at work on three datasets."),
            ("p", "Method Accuracy Speed"),
            ("p", "Ours 91.2 3.4"),
            ("p", "sidered here, and this sentence goes on for a while after the figure."),
            ("p", "A new paragraph starts here and it goes on for a while too."),
            ("h", "2 Method"),
        ],
    ]
    paper = _paper_of(tmp_path, pages, [[1, "1 Introduction", 1], [1, "2 Method", 2]])
    paragraphs = _section(paper, "Introduction").text.split("\n\n")
    assert paragraphs[0].endswith(
        "then considered here, and this sentence goes on for a while after the figure."
    )
    assert paragraphs[1:] == [
        "Figure 1: Widgets at work on three datasets.",
        "Method Accuracy Speed",
        "Ours 91.2 3.4",
        "A new paragraph starts here and it goes on for a while too.",
    ]


def test_a_broken_word_does_not_reach_past_prose(tmp_path: Path) -> None:
    pages = [
        [
            ("title", "Sparse Widgets for Fast Inference"),
            ("p", "Abstract. We propose sparse widgets. They are fast."),
            ("h", "1 Introduction"),
            ("p", "Widgets matter. " + BODY + "The widgets are then con-"),
        ],
        [
            ("p", "A new paragraph starts here and it goes on for a while too."),
            ("p", "sidered here, and this sentence goes on for a while after the figure."),
            ("h", "2 Method"),
        ],
    ]
    paper = _paper_of(tmp_path, pages, [[1, "1 Introduction", 1], [1, "2 Method", 2]])
    assert len(_section(paper, "Introduction").text.split("\n\n")) == 3


def test_a_long_chain_of_broken_paragraphs_is_joined_in_linear_time() -> None:
    """A hostile PDF of thousands of blocks each ending in "bro-": joined once, not copied
    again at every link (5,000 links took 13 s when each merge rebuilt the paragraph)."""
    from concurrent.futures import ThreadPoolExecutor

    from ablationkit.papers.pdf import _merge_broken_paragraphs, _Vocabulary
    from ablationkit.papers.plaintext import Item, Paragraph

    items: list[Item] = [Paragraph("chain of words bro-") for _ in range(50_000)]
    with ThreadPoolExecutor(1) as pool:  # a hang guard, not a timing
        merged = pool.submit(_merge_broken_paragraphs, items, _Vocabulary()).result(timeout=120)
    assert len(merged) == 1 and isinstance(merged[0], Paragraph)
    text = merged[0].text
    assert text.startswith("chain of words brochain of words bro") and text.endswith("bro-")
