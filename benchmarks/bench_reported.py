"""How well ``drop_reported`` recognises a planned ablation that the paper already reports.

Reviewer mode must never propose an ablation the paper reports. The planner finds the
reported ones in the paper's structure (``reported_ablations``) and drops planned items that
share enough content words with one of them (``drop_reported``). This measures that flag on
the shared papers and the two bundled samples, whose ground truth *is* what they report:

- positives: every ground-truth item as a planned item (``gt``), and every planned item of
  ``benchmarks/data/judge-labels.jsonl`` labelled a match (``pos``) of a ground-truth item,
  i.e. the reported ablations reworded by a model or by hand (``reworded``);
- negatives: the hand-written planned items (``hand-good`` / ``hand-hard``) whose pairs are
  all easy negatives (``neg``): plausible ablations the paper does not report;
- for information only: items whose best label is a hard negative (same component with
  another change, an overlapping component, shared words), and the embedded model's own
  all-``neg`` items.

KESTREL's reviewer-mode lines are left out: their targets are reviewers' requests, not what
the paper reports. No model is called; a run takes a few seconds.

    python benchmarks/bench_reported.py [--papers DIR] [--labels FILE] [--show]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from ablationkit.bench import load_dataset
from ablationkit.planner.reported import (
    ReportedAblation,
    matching_reported,
    reported_ablations,
)
from ablationkit.schema import Ablation

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ABLATIONKIT_SHARED", ROOT.parent / "shared"))
LABELS = ROOT / "benchmarks" / "data" / "judge-labels.jsonl"


def evaluation_items(
    labels: Path, gt: dict[str, list[Ablation]]
) -> dict[str, list[tuple[str, Ablation]]]:
    """``{group: [(paper, planned item)]}`` for the groups described above, deduplicated."""
    groups: dict[str, list[tuple[str, Ablation]]] = defaultdict(list)
    seen: set[tuple[str, str, str, str]] = set()
    for paper, items in gt.items():
        for item in items:
            groups["gt"].append((paper, item))
    for raw in labels.read_text("utf-8").splitlines():
        line = json.loads(raw)
        paper = line["paper"]
        if paper not in gt or (paper == "kestrel-sample" and line["mode"] == "reviewer"):
            continue
        best: dict[int, str] = {}
        rules: dict[int, set[str]] = defaultdict(set)
        rank = {"neg": 0, "hard": 1, "pos": 2}
        for planned, _target, label, reason in line["pairs"]:
            if rank[label] > rank[best.get(planned, "neg")]:
                best[planned] = label
            if label == "hard":
                rules[planned].add(str(reason).split(":")[0].strip())
        for index, data in enumerate(line["planned"]):
            label = best.get(index, "neg")
            source = line["source"]
            if label == "pos":
                group = "reworded"
            elif label == "hard":
                group = "hard-H1" if "H1" in rules[index] else "hard-H2/3"
            else:
                group = "neg" if source.startswith("hand") else "model-neg"
            key = (group, paper, data["name"], data["ablated_part"])
            if key in seen:
                continue
            seen.add(key)
            groups[group].append((paper, Ablation.model_validate(data)))
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=Path, default=SHARED / "papers")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--show", action="store_true", help="print the reported lists and errors")
    args = parser.parse_args()

    instances = load_dataset(args.papers) + [
        i for i in load_dataset("sample") if i.mode == "author"
    ]
    reported: dict[str, list[ReportedAblation]] = {}
    gt: dict[str, list[Ablation]] = {}
    seconds = 0.0
    for instance in instances:
        paper = instance.load()
        begun = time.perf_counter()
        reported[instance.id] = reported_ablations(paper)
        seconds += time.perf_counter() - begun
        gt[instance.id] = instance.ground_truth
        if args.show:
            print(f"== {instance.id}: {len(reported[instance.id])} reported")
            for entry in reported[instance.id]:
                print(f"   {entry.render()}")
    print(
        f"{len(instances)} papers, {sum(map(len, reported.values()))} reported items found "
        f"in {seconds * 1000:.0f} ms"
    )

    groups = evaluation_items(args.labels, gt)
    flagged: dict[str, int] = {}
    for group, items in groups.items():
        hits = 0
        for paper, item in items:
            match = matching_reported(item, reported[paper])
            hits += match is not None
            wrong = (match is None) == (group in {"gt", "reworded"})
            if args.show and (
                (wrong and group in {"gt", "reworded", "neg"})
                or (match and group.startswith("hard"))
            ):
                why = f" ~ {match.description!r}" if match else ""
                print(f"  [{group}] {paper}: {item.name} | {item.ablated_part}{why}")
        flagged[group] = hits
    print(f"{'group':<10} {'items':>5} {'flagged':>7}")
    for group in ("gt", "reworded", "neg", "model-neg", "hard-H1", "hard-H2/3"):
        print(f"{group:<10} {len(groups[group]):>5} {flagged[group]:>7}")
    positives = len(groups["gt"]) + len(groups["reworded"])
    true_positives = flagged["gt"] + flagged["reworded"]
    false_positives = flagged["neg"]
    recall = true_positives / positives
    precision = true_positives / max(true_positives + false_positives, 1)
    print(
        f"flag recall {recall:.2f} ({true_positives}/{positives}: gt "
        f"{flagged['gt']}/{len(groups['gt'])}, reworded "
        f"{flagged['reworded']}/{len(groups['reworded'])}); "
        f"negatives flagged {false_positives}/{len(groups['neg'])}; "
        f"precision {precision:.2f}"
    )


if __name__ == "__main__":
    main()
