"""Model replies and datasets shared by the bench, site and browser tests."""

from __future__ import annotations

import json
from pathlib import Path

from ablationkit.testing import plan_or_verdict

PLAN = {
    "reasoning": "r",
    "ablations": [
        {
            "name": "Drop the gate",
            "ablated_part": "the gate",
            "action": "REMOVE",
            "replacement": None,
            "metrics": ["accuracy"],
        },
        {
            "name": "Other encoder",
            "ablated_part": "the encoder",
            "action": "REPLACE",
            "replacement": ["LSTM"],
            "metrics": ["accuracy"],
        },
    ],
}
VERDICT = {"reasoning": "first matches", "matches": [{"planned": 0, "ground_truth": 0}]}


respond = plan_or_verdict(PLAN, VERDICT)


def tiny_dataset(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(
                json.dumps(
                    {
                        "id": f"paper-{i:03d}",
                        "mode": "author",
                        "title": f"Paper {i}",
                        "text": f"# Paper {i}\n\n## Abstract\n\nWe gate things ({i}).\n\n"
                        f"## 1 Method\n\nA gate and an encoder, variant {i}.\n\n"
                        "## 2 Experiments\n\nIt works.\n",
                        "ground_truth": [
                            {
                                "name": "Gate",
                                "ablated_part": "the gate",
                                "action": "REMOVE",
                                "metrics": ["accuracy"],
                            }
                        ],
                    }
                )
                + "\n"
            )
    return path
