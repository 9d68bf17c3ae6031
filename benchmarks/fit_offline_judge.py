"""Fit the offline judge on the labelled set and measure it, leave one paper out.

    python benchmarks/fit_offline_judge.py [--labels benchmarks/data/judge-labels.jsonl]
        [--write]   # also write the fitted model into the package

Prints the out-of-fold pair precision/recall/F1 of the offline judge and, for comparison
in the same run, of the plain embedding judge with its cosine threshold fitted the same way;
then the per-paper folds. ``--write`` fits on every label and stores the model with its
out-of-fold figures in ``src/ablationkit/judge/data/`` (``offline-judge.json``,
``agreement.json``: what ``bench score`` quotes beside the scores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ablationkit.fsutil import atomic_write_text
from ablationkit.judge.embedding import DEFAULT_THRESHOLD
from ablationkit.judge.offline import (
    AGREEMENT_FILE,
    MODEL_FILE,
    assigned_matches,
    cross_validate,
    fit_offline_model,
    labelled_pairs,
    pair_agreement,
)

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "benchmarks" / "data" / "judge-labels.jsonl"
TARGET = ROOT / "src" / "ablationkit" / "judge" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    pairs = labelled_pairs(args.labels)
    print(
        f"{args.labels.name}: {len(pairs)} pairs, {sum(p.match for p in pairs)} matches "
        f"({time.perf_counter() - started:.1f} s to compute features)"
    )
    results = {judge: cross_validate(pairs, judge) for judge in ("offline", "embedding")}
    print(f"{'judge':<10} {'P':>6} {'R':>6} {'F1':>6}   (pairs, leave-one-paper-out)")
    for judge, found in results.items():
        o = found["out_of_fold"]
        print(f"{judge:<10} {o['precision']:6.3f} {o['recall']:6.3f} {o['f1']:6.3f}")
    print("offline judge per held-out paper:")
    for fold in results["offline"]["folds"]:
        print(
            f"  {fold['held_out']:<24} P {fold['precision']:.2f} R {fold['recall']:.2f} "
            f"F1 {fold['f1']:.2f} ({fold['tp']}/{fold['gold']} matches, "
            f"threshold {fold['threshold']})"
        )
    fixed = assigned_matches(
        pairs, lambda p: p.features["full"], DEFAULT_THRESHOLD, one_to_one=True
    )
    plain = pair_agreement(fixed, pairs)
    print(
        f"embedding@{DEFAULT_THRESHOLD:g} as shipped (nothing fitted): P {plain['precision']:.3f} "
        f"R {plain['recall']:.3f} F1 {plain['f1']:.3f}"
    )
    if args.write:
        model = fit_offline_model(pairs)
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(TARGET / MODEL_FILE, model.to_json())

        def entry(found: dict[str, float], protocol: str) -> dict[str, object]:
            return {
                "labels": f"benchmarks/data/{args.labels.name}",
                "pairs": len(pairs),
                "matches": sum(p.match for p in pairs),
                "protocol": protocol,
                "precision": round(found["precision"], 4),
                "recall": round(found["recall"], 4),
                "f1": round(found["f1"], 4),
                "command": "python benchmarks/fit_offline_judge.py --write",
            }

        agreement = {
            "offline": entry(results["offline"]["out_of_fold"], "leave-one-paper-out"),
            f"embedding@{DEFAULT_THRESHOLD:g}": entry(plain, "threshold as shipped, not fitted"),
        }
        atomic_write_text(TARGET / AGREEMENT_FILE, json.dumps(agreement, indent=1) + "\n")
        print(f"wrote {TARGET.relative_to(ROOT)}/ (threshold {model.threshold:.4f})")


if __name__ == "__main__":
    main()
