"""A grid in other tools' formats: Hydra multirun lines, a W&B sweep, a Ray Tune param_space,
plain shell lines.

A grid is a list of chosen variants times seeds, not a cartesian product of settings, so
each format gets it the way that format can hold it without adding runs:

* **hydra**: one ``--multirun`` line per variant, sweeping only the seeds (``seed=0,1,2``);
* **shell**: one line per run, every value shell-quoted;
* **ray**: ``{"variant": {"grid_search": [...]}, "seed": {"grid_search": [...]}}`` for
  ``tune.Tuner(trainable, param_space=...)``; each variant carries its overrides;
* **wandb**: a sweep (``method: grid``) over ``variant`` x ``seed``; its command runs this
  module (``python -m ablationkit.runs.exports GRID variant=... seed=...``), which looks the
  variant up in the grid and runs the grid's command with its overrides.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ablationkit.errors import AblationKitError
from ablationkit.runs.model import BASELINE, Grid, OverrideValue, render_overrides, run_slug
from ablationkit.runs.project import format_value

ExportFormat = Literal["hydra", "wandb", "ray", "shell"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("hydra", "wandb", "ray", "shell")
EXPORT_SUFFIX = {"hydra": ".sh", "shell": ".sh", "ray": ".json", "wandb": ".yaml"}
_PLACEHOLDER = re.compile(r"\{(overrides|seed|run_id|metrics_file)\}")


class ExportError(AblationKitError):
    """The grid cannot be written in that format (no command, a flag grid for Hydra)."""

    exit_code = 2


@dataclass(frozen=True)
class VariantGroup:
    """One variant (or the baseline) before the seeds: what every export lists."""

    id: str
    ablation: str
    label: str
    overrides: dict[str, OverrideValue]


def variant_groups(grid: Grid) -> list[VariantGroup]:
    """The baseline and every variant with the baseline's overrides under its own, in the
    grid's order; ids are file-name safe and unique (as run ids are, without the seed)."""
    groups: list[VariantGroup] = []
    seen: set[str] = set()
    pairs = [(BASELINE, BASELINE, dict(grid.baseline))] + [
        (m.ablation, v.label, {**grid.baseline, **v.overrides})
        for m in grid.mappings
        for v in m.variants
    ]
    for ablation, label, overrides in pairs:
        base = run_slug(ablation, label, 0).removesuffix("--seed0")
        group_id, n = base, 2
        while group_id in seen:
            group_id, n = f"{base}-{n}", n + 1
        seen.add(group_id)
        groups.append(VariantGroup(group_id, ablation, label, overrides))
    return groups


def _command(grid: Grid, command: str | None) -> str:
    template = command or grid.command
    if not template:
        raise ExportError(
            "the grid names no command: give one with {overrides} "
            '(e.g. --cmd "python train.py {overrides}")'
        )
    if "{overrides}" not in template:
        raise ExportError(f"the command {template!r} has no {{overrides}}")
    return template


def _fill(template: str, values: dict[str, str]) -> str:
    """Our placeholders only: a user's own braces (``${HOME}``) stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _with_seed(grid: Grid, overrides: dict[str, OverrideValue], seed: int) -> dict[str, Any]:
    return {**overrides, grid.seed_key: seed} if grid.seed_key else dict(overrides)


def _hydra_value(value: OverrideValue) -> str:
    """A value in Hydra's override grammar: text with a sweep or grammar character quoted."""
    text = format_value(value)
    if isinstance(value, str) and re.search(r"[\s,=\[\]{}()'\"\\:$*?]", text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def _comment(text: str) -> str:
    """Text for a ``#`` comment of a script: one line, whatever an edited grid holds (a line
    break in a label would start a command of its own)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def hydra_lines(grid: Grid, command: str | None = None) -> str:
    """One ``--multirun`` command line per variant, sweeping the seeds."""
    if grid.style != "hydra":
        raise ExportError("Hydra multirun needs a config grid (style hydra); this one passes flags")
    template = _command(grid, command)
    lines = [
        f"# Hydra multirun: {len(variant_groups(grid))} variants x {len(grid.seeds)} seeds "
        f"of {_comment(grid.paper_id)}",
        f"cd {shlex.quote(grid.project)} || exit 1",
    ]
    for group in variant_groups(grid):
        words = ["--multirun"] + [f"{k}={_hydra_value(v)}" for k, v in group.overrides.items()]
        if grid.seed_key:
            words.append(f"{grid.seed_key}={','.join(str(s) for s in grid.seeds)}")
        lines.append(f"# {_comment(group.ablation)}: {_comment(group.label)}")
        lines.append(_fill(template, {"overrides": " ".join(shlex.quote(w) for w in words)}))
    return "\n".join(lines) + "\n"


def shell_lines(grid: Grid, command: str | None = None) -> str:
    """Every run as one shell line, run from the project folder."""
    template = _command(grid, command)
    lines = [
        "#!/bin/sh",
        f"# {len(grid.runs())} runs of {_comment(grid.paper_id)}'s ablations (ablationkit grid)",
        f"cd {shlex.quote(grid.project)} || exit 1",
    ]
    for run in grid.runs():
        words = render_overrides(grid, run.overrides)
        values = {
            "overrides": " ".join(shlex.quote(w) for w in words),
            "seed": str(run.seed),
            "run_id": shlex.quote(run.run_id),
            "metrics_file": shlex.quote(f"{run.run_id}.metrics.json"),
        }
        lines.append(_fill(template, values))
    return "\n".join(lines) + "\n"


def ray_param_space(grid: Grid) -> dict[str, Any]:
    """A Ray Tune ``param_space``: a grid search over the variants and the seeds."""
    variants = [
        {"id": g.id, "ablation": g.ablation, "label": g.label, "overrides": g.overrides}
        for g in variant_groups(grid)
    ]
    return {"variant": {"grid_search": variants}, "seed": {"grid_search": list(grid.seeds)}}


def wandb_sweep(grid: Grid, grid_path: str | Path, command: str | None = None) -> dict[str, Any]:
    """A W&B sweep (grid method) over variant x seed; each agent's run goes through
    :func:`main`, which turns the variant id back into the grid's overrides."""
    template = _command(grid, command)
    launcher = ["${env}", "${interpreter}", "-m", "ablationkit.runs.exports"]
    launcher += [str(Path(grid_path).resolve())]
    if command:
        launcher += ["--cmd", command]
    return {
        "name": f"{grid.paper_id} ablations",
        "description": f"ablationkit grid of {grid.plan}: each variant runs `{template}`",
        "method": "grid",
        "parameters": {
            "variant": {"values": [g.id for g in variant_groups(grid)]},
            "seed": {"values": list(grid.seeds)},
        },
        "command": [*launcher, "${args_no_hyphens}"],
    }


def export_grid(
    grid: Grid, fmt: str, *, grid_path: str | Path = "grid.json", command: str | None = None
) -> str:
    """The grid in ``fmt`` (one of :data:`EXPORT_FORMATS`), as the file's text."""
    if fmt == "hydra":
        return hydra_lines(grid, command)
    if fmt == "shell":
        return shell_lines(grid, command)
    if fmt == "ray":
        return json.dumps(ray_param_space(grid), indent=2) + "\n"
    if fmt == "wandb":
        import yaml

        return yaml.safe_dump(wandb_sweep(grid, grid_path, command), sort_keys=False)
    raise ExportError(f"unknown export format {fmt!r} (one of {', '.join(EXPORT_FORMATS)})")


# --- the W&B launcher -----------------------------------------------------------------------


def launch(
    grid: Grid, variant: str, seed: int, command: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run one variant at one seed in the project folder (what a W&B agent calls)."""
    template = _command(grid, command)
    groups = {g.id: g for g in variant_groups(grid)}
    group = groups.get(variant)
    if group is None:
        raise ExportError(f"no variant {variant!r} in the grid ({', '.join(groups)})")
    overrides = _with_seed(grid, group.overrides, seed)
    words = render_overrides(grid, overrides)
    run_id = run_slug(group.ablation, group.label, seed)
    line = _fill(
        template,
        {
            "overrides": " ".join(shlex.quote(w) for w in words),
            "seed": str(seed),
            "run_id": shlex.quote(run_id),
            "metrics_file": shlex.quote(f"{run_id}.metrics.json"),
        },
    )
    return subprocess.run(["/bin/sh", "-c", line], cwd=grid.project, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ablationkit.runs.exports GRID variant=ID seed=N [--cmd CMD]``."""
    import argparse

    from ablationkit.runs.execute import load_grid

    parser = argparse.ArgumentParser(prog="python -m ablationkit.runs.exports")
    parser.add_argument("grid")
    parser.add_argument("params", nargs="*", help="variant=ID seed=N (as W&B passes them)")
    parser.add_argument("--cmd", default=None)
    args = parser.parse_args(argv)
    params = dict(p.partition("=")[::2] for p in args.params)
    try:
        grid = load_grid(args.grid)
        if "variant" not in params:
            raise ExportError("give variant=ID (and seed=N)")
        seed = int(params.get("seed", grid.seeds[0] if grid.seeds else 0))
        return launch(grid, params["variant"], seed, args.cmd).returncode
    except (AblationKitError, ValueError) as exc:
        message = exc.one_line() if isinstance(exc, AblationKitError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
