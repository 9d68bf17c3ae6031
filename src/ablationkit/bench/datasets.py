"""Benchmark datasets: papers with the ablations that count as right answers.

* a local JSONL file, one instance per line: ``id``, ``title``, ``abstract``, ``text`` (the
  paper as markdown) or ``path`` (a paper file or LaTeX directory, relative to the JSONL),
  ``mode``, ``ground_truth`` (ablation objects) and, for reviewer mode, ``reviews``;
* a directory of papers laid out like ``../shared/papers``: one folder per paper with
  ``ground_truth.jsonl`` and ``meta.json`` and the paper as ``source/`` or ``paper.pdf``;
* ``sample``: the small dataset shipped with the package;
* ``hf:<name>[:split]``: AblationBench's datasets on the Hugging Face hub (see
  ``hub_instances``) through
  ``datasets`` (optional), when they are cached here or the hub is reachable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from ablationkit.errors import FormatError, describe_validation
from ablationkit.fsutil import load_json
from ablationkit.schema import Ablation, Mode


class Instance(BaseModel):
    id: str
    mode: Mode = "author"
    title: str = ""
    abstract: str = ""
    text: str | None = None
    path: str | None = None
    ground_truth: list[Ablation] = Field(default_factory=list)
    reviews: list[str] = Field(default_factory=list)
    # Reviewer mode without named targets: how many ablations the reviewers asked for.
    target_count: int | None = None
    # The folder ``path`` must stay under (set by the dataset readers, never by a row): the
    # dataset file's folder, the papers directory, or ``papers_root``.
    _root: Path | None = PrivateAttr(default=None)
    # Where a long ``text`` was left in its JSONL file (file, byte offset, line number):
    # read again when the paper is prepared, so a dataset of 10,000 papers is not held in
    # memory (about 40 MB per 1,000 papers of 13 KB when it was).
    _text_at: tuple[Path, int, int] | None = PrivateAttr(default=None)

    def with_root(self, root: Path | None) -> Instance:
        """This instance, its ``path`` confined to ``root`` (see :meth:`load`)."""
        self._root = root
        return self

    def checked_path(self) -> Path:
        """``path``, if it exists and stays under the dataset's root; else one error.

        A ``path`` that leads outside the root (``..``, an absolute path elsewhere, a symlink
        pointing out) fails this instance: a dataset may only name its own papers.
        """
        from ablationkit.sandbox import UnsafePathError, is_inside

        if not self.path:
            raise FormatError("instance has no paper path", where=self.id)
        if self._root is not None and not is_inside(self._root, Path(self.path)):
            raise UnsafePathError(
                f"paper path {self.path!r} leads outside the dataset's folder "
                f"{str(self._root)!r}; refused",
                where=f"instance {self.id!r}",
            )
        if not Path(self.path).exists():
            raise FormatError(
                "paper not found (for AblationBench rows, pass --papers-root: a checkout of "
                "its repository)",
                where=self.path,
            )
        return Path(self.path)

    def source_text(self) -> str | None:
        """The row's paper text: ``text``, or read again from the dataset file when it was
        long enough to be left there."""
        if self.text is not None or self._text_at is None:
            return self.text
        path, offset, lineno = self._text_at
        changed = FormatError(
            f"line {lineno}: the dataset changed since it was read (row {self.id!r})",
            where=path,
        )
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                data = load_json(handle.readline())
        except (OSError, ValueError):
            raise changed from None
        if not isinstance(data, dict) or data.get("id") != self.id:
            raise changed
        text = data.get("text")
        if not isinstance(text, str):
            raise changed
        return text

    def load(self) -> Any:
        """The paper as a ``Paper`` (from its file, or from the markdown text).

        A ``path`` that leads outside the dataset's root (``..``, an absolute path elsewhere, a
        symlink pointing out) fails this instance: a dataset may only name its own papers.
        """
        from ablationkit.papers import assign_roles, load_paper
        from ablationkit.papers.markdown import load_markdown

        if self.path:
            return load_paper(self.checked_path())
        text = self.source_text()
        if text:
            paper = load_markdown(text, source=self.id)
            if self.title and not paper.title:
                paper.title = self.title
            if self.abstract and not paper.abstract:
                paper.abstract = self.abstract
            return assign_roles(paper)
        raise FormatError("instance has neither text nor path", where=self.id)


def sample_dataset_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "sample_dataset.jsonl"


def _from_jsonl(
    path: Path, *, mode: Mode | None = None, papers_root: Path | None = None
) -> list[Instance]:
    """Our rows (``id``, ``title``, ``text``/``path``, ``ground_truth``, ...) or AblationBench's
    (``paper_title``, ``ablations_in_paper``, ``review_text``, ...; see ``hub_instances``), one
    format per row; AblationBench's ``paper_path`` is resolved against ``papers_root`` (default:
    the file's folder)."""
    instances: list[Instance] = []
    seen: dict[str, int] = {}
    for lineno, line, offset in _jsonl_lines(path, offsets=True):
        try:
            data = load_json(line)
            if isinstance(data, dict) and REFERENCE_FIELDS & data.keys():
                instances.append(
                    reference_instance(
                        data,
                        f"{path}: line {lineno}",
                        mode=data.get("mode") or mode,
                        root=papers_root or path.parent,
                    )
                )
                continue
            if data.get("path") and not Path(data["path"]).is_absolute():
                data["path"] = str(path.parent / data["path"])
            text = data.get("text")
            spill = isinstance(text, str) and len(text) > INLINE_TEXT and "id" in data
            if spill:
                data["text"] = None
            instance = Instance.model_validate(data).with_root(path.parent)
            if spill:
                instance._text_at = (path, offset, lineno)
            instances.append(instance)
        except (json.JSONDecodeError, ValidationError, AttributeError, TypeError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise FormatError(
                f"line {lineno}: not a dataset instance ({detail})", where=path
            ) from None
        first = seen.setdefault(instances[-1].id, lineno)
        if first != lineno:
            raise FormatError(
                f"duplicate instance id {instances[-1].id!r} on lines {first} and {lineno}",
                where=path,
            )
    return instances


INLINE_TEXT = 4096  # characters of a row's text kept in memory; longer ones are re-read


@overload
def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]: ...
@overload
def _jsonl_lines(path: Path, *, offsets: Literal[True]) -> Iterator[tuple[int, str, int]]: ...
def _jsonl_lines(path: Path, *, offsets: bool = False) -> Iterator[Any]:
    """(line number, text) of each non-blank line, with its byte offset if ``offsets``; a
    line that is not UTF-8 is named. Read a line at a time: a dataset file may be larger than
    the memory a run should take.

    Split on newlines only: ``str.splitlines`` also splits on U+2028 and friends, which JSON
    strings may contain as they are.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise FormatError(f"cannot read ({exc.strerror})", where=path) from None
    with handle:
        offset = 0
        for lineno, raw in enumerate(handle, start=1):  # binary lines end at b"\n" only
            start, offset = offset, offset + len(raw)
            try:
                line = raw.decode("utf-8").removeprefix("\ufeff" if lineno == 1 else "")
            except UnicodeDecodeError as exc:
                raise FormatError(
                    f"line {lineno}: not UTF-8 (bad byte at column {exc.start + 1})", where=path
                ) from None
            if line.strip():
                yield (lineno, line, start) if offsets else (lineno, line)


def _meta(path: Path) -> dict[str, str]:
    """A paper folder's ``meta.json``: its text fields (``slug``, ``title``), others dropped."""
    try:
        data = load_json(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise FormatError(f"not a JSON object ({exc})", where=path) from None
    if not isinstance(data, dict):
        raise FormatError("not a JSON object", where=path)
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _ground_truth(path: Path) -> list[Ablation]:
    truth: list[Ablation] = []
    for lineno, line in _jsonl_lines(path):
        try:
            truth.append(Ablation.model_validate(load_json(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            detail = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
            raise FormatError(f"line {lineno}: not an ablation ({detail})", where=path) from None
    return truth


def _from_papers_dir(root: Path, mode: Mode) -> list[Instance]:
    instances: list[Instance] = []
    for folder in sorted(p for p in root.iterdir() if (p / "ground_truth.jsonl").is_file()):
        meta: dict[str, Any] = {}
        if (folder / "meta.json").is_file():
            meta = _meta(folder / "meta.json")
        source = folder / "source"
        paper = source if source.is_dir() else folder / "paper.pdf"
        if not paper.exists():
            candidates = [p for p in folder.iterdir() if p.suffix in {".pdf", ".md", ".tex"}]
            paper = candidates[0] if candidates else folder
        truth = _ground_truth(folder / "ground_truth.jsonl")
        instances.append(
            Instance(
                id=meta.get("slug") or folder.name,
                mode=mode,
                title=meta.get("title", ""),
                path=str(paper),
                ground_truth=truth,
            ).with_root(root)
        )
    if not instances:
        raise FormatError("no paper folders with ground_truth.jsonl", where=root)
    return instances


def _from_hub(spec: str, mode: Mode | None, papers_root: Path | None) -> list[Instance]:
    name, _, split = spec.removeprefix("hf:").partition(":")
    try:
        import datasets
    except ImportError:
        raise FormatError(
            "Hugging Face datasets need: pip install 'ablationkit[hub]'", where=spec
        ) from None
    try:
        rows = datasets.load_dataset(name, split=split or "test")
    except Exception as exc:  # offline and not cached, or a wrong name
        raise FormatError(
            f"cannot load from the hub or its cache ({type(exc).__name__}: {str(exc)[:200]})",
            where=spec,
        ) from None
    hub_mode: Mode = mode or ("reviewer" if "review" in name else "author")
    return hub_instances((dict(row) for row in rows), hub_mode, papers_root=papers_root)


def _json_records(value: Any, field: str, where: str) -> list[Any]:
    """AblationBench stores lists as JSON text (an array, or one object per line)."""
    if value in (None, ""):
        return []
    if not isinstance(value, str):
        return list(value)
    try:
        parsed = load_json(value)
        return parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError:
        pass
    try:
        return [load_json(line) for line in value.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise FormatError(f"field {field!r} is not JSON ({exc.msg})", where=where) from None


# Fields only AblationBench's rows have: a row with any of them is read as one of its rows.
REFERENCE_FIELDS = frozenset(
    {"paper_title", "paper_abstract", "paper_path", "ablations_in_paper", "review_text"}
    | {"num_ablation_suggestions"}
)


def reference_instance(
    row: dict[str, Any], where: str, *, mode: Mode | str | None, root: Path
) -> Instance:
    """One row of AblationBench's datasets as an instance.

    The fields are the ones AblationBench's own harness reads: ``id``, ``paper_title``,
    ``paper_abstract``, ``paper_path`` (the paper's folder, relative to ``root``: a checkout of
    its repository), ``ablations_in_paper`` (author mode: the ground truth, JSON text) and
    ``review_text`` (reviewer mode: the reviews, JSON text) with ``num_ablation_suggestions`` (how
    many missing ablations the reviewers asked for: the recall denominator AblationBench uses).
    No paper file is needed to judge or score. The mode is the row's, the caller's, or what the
    row holds (reviews: reviewer); a row without its ground truth for that mode is an error,
    never an instance with nothing to find.
    """
    if mode is None:
        mode = "reviewer" if "review_text" in row or "num_ablation_suggestions" in row else "author"
    if mode not in ("author", "reviewer"):
        raise FormatError(f"mode {mode!r} is neither author nor reviewer", where=where)
    checked: Mode = "reviewer" if mode == "reviewer" else "author"
    if mode == "author" and row.get("ablations_in_paper") in (None, ""):
        raise FormatError("an author-mode row needs ablations_in_paper", where=where)
    count = row.get("num_ablation_suggestions")
    if mode == "reviewer" and count in (None, "") and not row.get("review_text"):
        raise FormatError(
            "a reviewer-mode row needs num_ablation_suggestions or review_text", where=where
        )
    paper_path = row.get("paper_path")
    if paper_path and not Path(paper_path).is_absolute():
        paper_path = str(root / paper_path)
    try:
        return Instance(
            id=str(row["id"]) if row.get("id") not in (None, "") else where,
            mode=checked,
            title=str(row.get("paper_title") or ""),
            abstract=str(row.get("paper_abstract") or ""),
            text=row.get("paper_text") or None,
            path=paper_path or None,
            ground_truth=_json_records(row.get("ablations_in_paper"), "ablations_in_paper", where),
            reviews=[
                r if isinstance(r, str) else json.dumps(r)
                for r in _json_records(row.get("review_text"), "review_text", where)
            ],
            target_count=int(count) if count not in (None, "") else None,
        ).with_root(root)
    except (ValidationError, ValueError, TypeError) as exc:
        detail = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
        raise FormatError(f"not an AblationBench row ({detail})", where=where) from None


def hub_instances(
    rows: Iterable[dict[str, Any]], mode: Mode, *, papers_root: Path | None = None
) -> list[Instance]:
    """Instances from rows of AblationBench's hub datasets (see :func:`reference_instance`)."""
    # Without papers_root, relative paths are read from the working directory: the root then.
    root = Path(papers_root) if papers_root is not None else Path.cwd()
    return [
        reference_instance(
            dict(row, id=row.get("id") or index), f"row {index}", mode=mode, root=root
        )
        for index, row in enumerate(rows)
    ]


def load_dataset(
    spec: str | Path,
    *,
    mode: Mode | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    papers_root: str | Path | None = None,
) -> list[Instance]:
    """Instances from a JSONL file, a papers directory, ``sample`` or ``hf:<name>``.

    ``papers_root`` resolves the relative ``paper_path`` of AblationBench's rows (from the hub
    or a local JSONL file).
    """
    text = str(spec)
    if text == "sample":
        instances = _from_jsonl(sample_dataset_path())
    elif text.startswith("hf:"):
        instances = _from_hub(text, mode, Path(papers_root) if papers_root else None)
    else:
        path = Path(spec)
        if path.is_dir():
            instances = _from_papers_dir(path, mode or "author")
        elif path.is_file():
            instances = _from_jsonl(
                path, mode=mode, papers_root=Path(papers_root) if papers_root else None
            )
        else:
            raise FormatError("no such dataset file or directory", where=path)
    if mode is not None:
        instances = [i.model_copy(update={"mode": mode}) for i in instances]
    if ids:
        wanted = set(ids)
        unknown = wanted - {i.id for i in instances}
        if unknown:
            raise FormatError(f"unknown ids: {', '.join(sorted(unknown))}", where=str(spec))
        instances = [i for i in instances if i.id in wanted]
    seen: set[str] = set()
    for instance in instances:
        if instance.id in seen:
            raise FormatError(f"duplicate instance id {instance.id!r}", where=str(spec))
        seen.add(instance.id)
    return instances[:limit] if limit is not None else instances
