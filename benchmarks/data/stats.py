"""Counts and checks the labelled judge set (judge-labels.jsonl).

Run ``python benchmarks/data/stats.py [FILE]``. Besides counting, it checks what the
loader cannot: every (planned, target) pair is labelled exactly once in ``pairs``,
``matches`` equals the pairs labelled ``pos``, and ``paper_id`` is unique per line
(``judge_agreement`` pairs verdicts with labels by paper id).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from ablationkit.judge.evaluation import load_labels

KINDS = ("pos", "hard", "neg")


def check(line: dict[str, object], lineno: int) -> Counter[str]:
    """Pair counts by label and by hard-negative rule; AssertionError names a bad line."""
    planned, targets = line["planned"], line["targets"]
    assert isinstance(planned, list) and isinstance(targets, list)
    pairs = line.get("pairs", [])
    assert isinstance(pairs, list)
    labelled = sorted((p, t) for p, t, *_ in pairs)
    expected = [(p, t) for p in range(len(planned)) for t in range(len(targets))]
    assert labelled == expected, f"line {lineno}: pairs do not cover planned x targets once"
    positives = sorted((p, t) for p, t, kind, *_ in pairs if kind == "pos")
    matches = line["matches"]
    assert isinstance(matches, list)
    assert positives == sorted(map(tuple, matches)), f"line {lineno}: matches != pos pairs"
    counts = Counter(kind for _, _, kind, *_ in pairs)
    counts.update(str(why).split(":")[0] for _, _, kind, why in pairs if kind == "hard")
    return counts


def main(path: Path) -> None:
    load_labels(path)  # the format the judge evaluation reads
    lines = [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]
    ids = [line["paper_id"] for line in lines]
    assert len(ids) == len(set(ids)), "paper_id repeated: judge_agreement would mix lines"
    groups: dict[str, Counter[str]] = {}
    for lineno, line in enumerate(lines, start=1):
        counts = check(line, lineno)
        source = line.get("source", "?")
        for key in ("all", f"mode={line['mode']}", f"source={source}", f"{source}/{line['mode']}"):
            groups.setdefault(key, Counter()).update(counts + Counter(lines=1))
    columns = ("lines", "pairs", *KINDS, "H1", "H2", "H3")
    print(f"{'group':<24}" + "".join(f"{c:>7}" for c in columns))
    for key, c in sorted(groups.items()):
        c["pairs"] = sum(c[k] for k in KINDS)
        print(f"{key:<24}" + "".join(f"{c[k]:>7}" for k in columns))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("judge-labels.jsonl"))
