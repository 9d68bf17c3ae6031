"""The grid file: what ``grid`` writes, the user may edit, and ``execute``/``results`` read.

One file is the whole contract between the three steps, so it is plain JSON a user can open
and fix by hand: each ablation's mapping lists the overrides of the user's experiment per
value, and the concrete runs are derived from it (never stored twice, so an edit to a mapping
cannot disagree with a stale run list).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from ablationkit.schema import Action

GRID_FORMAT = "ablationkit.grid/1"
BASELINE = "baseline"

OverrideValue = str | int | float | bool | None


class Variant(BaseModel):
    """One concrete setting of an ablation: a REPLACE value, the REMOVE switch-off, the ADD."""

    label: str = Field(description="What this variant is, as shown in the results table.")
    overrides: dict[str, OverrideValue] = Field(
        description="Config keys (dotted, Hydra style) or script flags (without dashes) -> value."
    )


class AblationMapping(BaseModel):
    """How one planned ablation becomes runs of the user's experiment."""

    ablation: str = Field(description="The planned ablation's name.")
    action: Action
    variants: list[Variant]
    rationale: str = ""


class Unmapped(BaseModel):
    """An ablation that has no honest mapping to the experiment; listed, never guessed."""

    ablation: str
    reason: str


class GridRun(BaseModel):
    """One run: a variant (or the baseline) at one seed. Derived from the grid, not stored."""

    run_id: str
    ablation: str
    variant: str
    seed: int
    overrides: dict[str, OverrideValue]


class Grid(BaseModel):
    format: Literal["ablationkit.grid/1"] = "ablationkit.grid/1"
    plan: str = Field(description="The plan file this grid came from.")
    paper_id: str
    project: str = Field(description="The user's experiment folder.")
    config: str | None = Field(default=None, description="Its config file, if any.")
    style: Literal["hydra", "argparse"] = Field(
        description="hydra: `key=value` overrides; argparse: `--key value` flags."
    )
    seed_key: str | None = Field(
        default="seed", description="Override that sets the seed; None if the script has none."
    )
    seeds: list[int] = Field(default_factory=lambda: [0])
    baseline: dict[str, OverrideValue] = Field(
        default_factory=dict, description="Overrides every run starts from (usually empty)."
    )
    mappings: list[AblationMapping] = Field(default_factory=list)
    unmapped: list[Unmapped] = Field(default_factory=list)
    # Added by `grid` (optional, so hand-written grids need neither): the command it found for
    # the project and the knobs it validated against, so an edited file can be checked again.
    command: str | None = Field(
        default=None,
        description="Suggested run command with {overrides}, e.g. 'python train.py {overrides}'.",
    )
    knobs: dict[str, Any] = Field(
        default_factory=dict,
        description="The experiment's keys (or flags) and their defaults, as discovered.",
    )

    def runs(self) -> list[GridRun]:
        """The baseline and every variant, times the seeds, in a stable order."""
        runs: list[GridRun] = []
        groups: list[tuple[str, str, dict[str, OverrideValue]]] = [
            (BASELINE, BASELINE, dict(self.baseline))
        ]
        for mapping in self.mappings:
            for variant in mapping.variants:
                groups.append(
                    (mapping.ablation, variant.label, {**self.baseline, **variant.overrides})
                )
        seen: set[str] = set()
        for ablation, label, overrides in groups:
            for seed in self.seeds:
                merged = dict(overrides)
                if self.seed_key:
                    merged[self.seed_key] = seed
                run_id = _unique(run_slug(ablation, label, seed), seen)
                runs.append(
                    GridRun(
                        run_id=run_id,
                        ablation=ablation,
                        variant=label,
                        seed=seed,
                        overrides=merged,
                    )
                )
        return runs


def run_slug(ablation: str, variant: str, seed: int) -> str:
    """A file-name-safe id that stays the same across reruns (resume keys on it)."""

    def slug(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "x"

    if ablation == BASELINE:
        return f"{BASELINE}--seed{seed}"
    return f"{slug(ablation)}--{slug(variant)}--seed{seed}"


def _unique(run_id: str, seen: set[str]) -> str:
    candidate, n = run_id, 2
    while candidate in seen:
        candidate = f"{run_id}-{n}"
        n += 1
    seen.add(candidate)
    return candidate


def render_overrides(grid: Grid, overrides: dict[str, Any]) -> list[str]:
    """The overrides as command-line words in the grid's style (no shell quoting here)."""
    words: list[str] = []
    for key, value in overrides.items():
        text = _format_value(value)
        if grid.style == "hydra":
            words.append(f"{key}={text}")
        else:
            flag = key if key.startswith("-") else f"--{key}"
            if value is True:
                words.append(flag)
            elif value is False or value is None:
                continue
            else:
                words.extend([flag, text])
    return words


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
