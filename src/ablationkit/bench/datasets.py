"""Benchmark datasets: papers with the ablations that count as right answers.

* a local JSONL file, one instance per line: ``id``, ``title``, ``abstract``, ``text`` (the
  paper as markdown) or ``path`` (a paper file or LaTeX directory, relative to the JSONL),
  ``mode``, ``ground_truth`` (ablation objects) and, for reviewer mode, ``reviews``;
* a directory of papers laid out like ``../shared/papers``: one folder per paper with
  ``ground_truth.jsonl`` and ``meta.json`` and the paper as ``source/`` or ``paper.pdf``;
* ``sample``: the small dataset shipped with the package;
* ``hf:<name>[:split]``: AblationBench's datasets on the Hugging Face hub through
  ``datasets`` (optional), when they are cached here or the hub is reachable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ablationkit.errors import FormatError
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

    def load(self) -> Any:
        """The paper as a ``Paper`` (from its file, or from the markdown text)."""
        from ablationkit.papers import assign_roles, load_paper
        from ablationkit.papers.markdown import load_markdown

        if self.path:
            return load_paper(self.path)
        if self.text:
            paper = load_markdown(self.text, source=self.id)
            if self.title and not paper.title:
                paper.title = self.title
            if self.abstract and not paper.abstract:
                paper.abstract = self.abstract
            return assign_roles(paper)
        raise FormatError("instance has neither text nor path", where=self.id)


def sample_dataset_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "sample_dataset.jsonl"


def _from_jsonl(path: Path) -> list[Instance]:
    instances: list[Instance] = []
    for lineno, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if data.get("path") and not Path(data["path"]).is_absolute():
                data["path"] = str((path.parent / data["path"]).resolve())
            instances.append(Instance.model_validate(data))
        except (json.JSONDecodeError, ValidationError, AttributeError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise FormatError(
                f"line {lineno}: not a dataset instance ({detail})", where=path
            ) from None
    return instances


def _from_papers_dir(root: Path, mode: Mode) -> list[Instance]:
    instances: list[Instance] = []
    for folder in sorted(p for p in root.iterdir() if (p / "ground_truth.jsonl").is_file()):
        meta: dict[str, Any] = {}
        if (folder / "meta.json").is_file():
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
        source = folder / "source"
        paper = source if source.is_dir() else folder / "paper.pdf"
        if not paper.exists():
            candidates = [p for p in folder.iterdir() if p.suffix in {".pdf", ".md", ".tex"}]
            paper = candidates[0] if candidates else folder
        truth = [
            Ablation.model_validate(json.loads(line))
            for line in (folder / "ground_truth.jsonl").read_text("utf-8").splitlines()
            if line.strip()
        ]
        instances.append(
            Instance(
                id=meta.get("slug") or folder.name,
                mode=mode,
                title=meta.get("title", ""),
                path=str(paper),
                ground_truth=truth,
            )
        )
    if not instances:
        raise FormatError("no paper folders with ground_truth.jsonl", where=root)
    return instances


def _from_hub(spec: str, mode: Mode | None) -> list[Instance]:
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
    return [_hub_instance(dict(row), index, hub_mode) for index, row in enumerate(rows)]


def _hub_instance(row: dict[str, Any], index: int, mode: Mode) -> Instance:
    """AblationBench rows: paper id/title/abstract/markdown and ablations (JSON or JSONL)."""

    def first(*keys: str) -> Any:
        return next((row[k] for k in keys if row.get(k) not in (None, "")), None)

    truth = first("ablations", "ground_truth", "gt_ablations", "missing_ablations") or []
    if isinstance(truth, str):
        truth = [json.loads(line) for line in truth.splitlines() if line.strip()]
    reviews = first("reviews", "review") or []
    if isinstance(reviews, str):
        reviews = [reviews]
    return Instance(
        id=str(first("id", "paper_id", "instance_id", "paper_name") or index),
        mode=mode,
        title=str(first("title", "paper_title") or ""),
        abstract=str(first("abstract", "problem_statement") or ""),
        text=first("paper", "text", "paper_text", "markdown", "paper_source"),
        ground_truth=[Ablation.model_validate(a) for a in truth],
        reviews=list(reviews),
    )


def load_dataset(
    spec: str | Path,
    *,
    mode: Mode | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Instance]:
    """Instances from a JSONL file, a papers directory, ``sample`` or ``hf:<name>``."""
    text = str(spec)
    if text == "sample":
        instances = _from_jsonl(sample_dataset_path())
    elif text.startswith("hf:"):
        instances = _from_hub(text, mode)
    else:
        path = Path(spec)
        if path.is_dir():
            instances = _from_papers_dir(path, mode or "author")
        elif path.is_file():
            instances = _from_jsonl(path)
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
