"""Judging the judges the reference's way: its judge-eval label format and its macro mean.

A label row is ``{"id": "<planner_model>/<task_id>", "labels": "<JSONL text>"}``; each label line
is author ``{"name_in_paper", "name_in_plan"}`` (a match when ``name_in_plan`` is set) or reviewer
``{"name_in_plan", "appears_in_review"}``. A judge's answer for the instance is the file
``<planner_model>/<task_id>.jsonl`` of its output folder, in the same line format. Per instance,
every label line is joined with the judge's lines of the same key (``name_in_paper``, or
``name_in_plan`` in reviewer mode; a key the judge wrote twice joins twice, a key it left out is
"no"), and precision, recall and F1 of the judge's yes/no against the label's are computed with
0 for an empty denominator; an instance without a judge file scores 0. The result is the plain
mean over instances.

This differs from our pair-level agreement (``judge/metrics.judge_agreement``) in one way worth
knowing: an instance where the labels and the judge both say "nothing matches" is perfect
agreement for us and 0/0/0 here.

One quirk of the reference is reproduced on purpose, because it moves its published numbers: it
reads the lines with pandas (2.2.3, pinned), where ``null`` in a column that also holds strings
is ``None`` (false) but a column holding *only* ``null`` becomes NaN, which is truthy. So in author
mode, when every label line of an instance says "no match", all of them count as matches; the
same for a judge file whose lines all say "no match" (both at once: perfect agreement, 1/1/1).
``faithful_nulls=False`` reads ``null`` as "no match" everywhere, which is what the format means.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ablationkit.ablationbench.files import read_jsonl
from ablationkit.errors import FormatError
from ablationkit.sandbox import resolve_file

Mode = Literal["author", "reviewer"]
KEY = {"author": "name_in_paper", "reviewer": "name_in_plan"}
VALUE = {"author": "name_in_plan", "reviewer": "appears_in_review"}


@dataclass(frozen=True)
class InstanceAgreement:
    instance_id: str
    precision: float
    recall: float
    f1: float
    judged: bool


def _truthy(value: Any) -> bool:
    return bool(value) if not isinstance(value, float) else value == value and value != 0


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def _labels_of(rows: Sequence[dict[str, Any]], mode: Mode, faithful_nulls: bool) -> list[bool]:
    values = [row.get(VALUE[mode]) for row in rows]
    if faithful_nulls and values and all(v is None for v in values):
        return [True] * len(values)  # pandas: an all-null column is NaN, and NaN is truthy
    return [_truthy(v) for v in values]


def agreement(
    labels: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]] | None,
    mode: Mode,
    *,
    faithful_nulls: bool = True,
) -> tuple[float, float, float]:
    """One instance's precision, recall and F1 of the judge's lines against the label lines."""
    if predictions is None:
        return 0.0, 0.0, 0.0
    return _prf(*counts(labels, predictions, mode, faithful_nulls=faithful_nulls))


def counts(
    labels: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    mode: Mode,
    *,
    faithful_nulls: bool = True,
) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one instance's joined lines."""
    by_key: dict[str, list[bool]] = defaultdict(list)
    said_labels = _labels_of(predictions, mode, faithful_nulls)
    for row, said_label in zip(predictions, said_labels, strict=True):
        by_key[_key(row.get(KEY[mode]))].append(said_label)
    tp = fp = fn = 0
    gold_labels = _labels_of(labels, mode, faithful_nulls)
    for row, gold in zip(labels, gold_labels, strict=True):
        for said in by_key.get(_key(row.get(KEY[mode])), [False]):
            tp += gold and said
            fp += said and not gold
            fn += gold and not said
    return tp, fp, fn


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return p, r, f


def load_label_rows(path: str | Path) -> list[dict[str, Any]]:
    """The label dataset as JSONL rows with ``id`` and ``labels`` (JSONL text)."""
    path = Path(path)
    rows = read_jsonl(path, path.parent)
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("id"), str) or "/" not in row["id"]:
            raise FormatError(f"row {number}: id must be '<planner_model>/<task_id>'", where=path)
        if not isinstance(row.get("labels"), str):
            raise FormatError(f"row {number}: labels must be JSONL text", where=path)
    return rows


def _parse_labels(text: str, where: str) -> list[dict[str, Any]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"label line {number}: {exc.msg}", where=where) from None
            if not isinstance(value, dict):
                raise FormatError(f"label line {number}: not a JSON object", where=where)
            out.append(value)
    return out


def evaluate_judge_folder(
    label_rows: Sequence[dict[str, Any]],
    judge_folder: str | Path,
    mode: Mode,
    *,
    faithful_nulls: bool = True,
) -> dict[str, Any]:
    """The reference's judge evaluation of the judge output folder ``judge_folder``."""
    folder = Path(judge_folder)
    per_instance: list[InstanceAgreement] = []
    pooled = [0, 0, 0]
    for row in label_rows:
        instance_id = row["id"]
        labels = _parse_labels(row["labels"], f"labels of {instance_id}")
        path, reason = resolve_file(folder, f"{instance_id}.jsonl")
        if reason and reason != "not found":
            raise FormatError(f"judge file of {instance_id!r}: {reason}; refused", where=folder)
        predictions = read_jsonl(path, folder) if path is not None else None
        p, r, f = agreement(labels, predictions, mode, faithful_nulls=faithful_nulls)
        found = counts(labels, predictions or [], mode, faithful_nulls=False)
        pooled = [a + b for a, b in zip(pooled, found, strict=True)]
        per_instance.append(InstanceAgreement(instance_id, p, r, f, predictions is not None))
    n = len(per_instance) or 1
    return {
        "protocol": "ablationbench",
        "instances": len(per_instance),
        "unjudged": sum(not a.judged for a in per_instance),
        "macro": {
            "precision": sum(a.precision for a in per_instance) / n,
            "recall": sum(a.recall for a in per_instance) / n,
            "f1": sum(a.f1 for a in per_instance) / n,
        },
        # ours beside theirs: every label line pooled, null read as "no match"; an instance
        # where labels and judge both say nothing matches adds nothing instead of a 0
        "pooled": dict(zip(("precision", "recall", "f1"), _prf(*pooled), strict=True)),
        "per_instance": {
            a.instance_id: {"precision": a.precision, "recall": a.recall, "f1": a.f1}
            for a in per_instance
        },
    }
