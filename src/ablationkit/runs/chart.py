"""The results chart: each metric's change from the baseline per ablation, with error bars.

matplotlib is imported lazily (it is in the ``runs`` extra) and used through its object API
with the Agg canvas, never ``pyplot``: a notebook's own backend and figures are left alone, and
nothing needs a display. One panel per metric; a bar per ablation row, green where the change
is an improvement in the metric's own direction, red where it is worse; the error bar is the
row's std over seeds. Rows without numbers are named on the axis as "no result", not dropped.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from ablationkit.fsutil import atomic_write_bytes
from ablationkit.runs.results import ResultsTable

BETTER, WORSE, NEUTRAL = "#2e7d32", "#c62828", "#9e9e9e"
MAX_PANELS = 9  # more metrics than that: the first nine (the table has them all)
COLUMNS = 3  # panels per line of the figure


def draw_chart(table: ResultsTable, path: str | Path) -> Path | None:
    """Write the PNG to ``path``; None (with a warning) if matplotlib is missing or there is
    nothing to draw (no baseline, no metric)."""
    rows = [r for r in table.rows if not r.is_baseline]
    metrics = table.metrics[:MAX_PANELS]
    if table.baseline is None or not rows or not metrics:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: no chart (pip install 'ablationkit[runs]')",
            stacklevel=2,
        )
        return None
    import io

    columns = min(COLUMNS, len(metrics))
    lines = math.ceil(len(metrics) / columns)
    height = max(2.2, 0.45 * len(rows) + 1.2)
    figure = Figure(figsize=(4.2 * columns + 1.5, height * lines), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(lines, columns, squeeze=False)
    axes = [ax for line in grid for ax in line]
    for spare in axes[len(metrics) :]:
        spare.set_visible(False)
    first_column = {id(line[0]) for line in grid}
    labels = [r.label if len(r.label) <= 40 else r.label[:39] + "…" for r in rows]
    positions = list(range(len(rows)))
    for ax, metric in zip(axes, metrics, strict=False):
        diffs, errors, colours, names = [], [], [], []
        lower = table.lower_better[metric]
        for row, label in zip(rows, labels, strict=True):
            diff = row.diffs.get(metric)
            stat = row.stats.get(metric)
            if diff is None:
                diffs.append(0.0)
                errors.append(0.0)
                colours.append(NEUTRAL)
                names.append(f"{label} (no result)")
                continue
            diffs.append(diff)
            errors.append(stat.std if stat is not None and stat.std is not None else 0.0)
            better = diff < 0 if lower else diff > 0
            colours.append(NEUTRAL if diff == 0 else BETTER if better else WORSE)
            names.append(label)
        ax.barh(positions, diffs, xerr=errors, color=colours, capsize=3, height=0.6)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(positions, names if id(ax) in first_column else [""] * len(names))
        ax.invert_yaxis()
        direction = "lower is better" if lower else "higher is better"
        ax.set_title(f"Δ {metric} vs baseline\n({direction})", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(f"{table.paper_id}: change per ablation (± std over seeds)", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    target = Path(path)
    atomic_write_bytes(target, buffer.getvalue())
    return target
