"""AblationKit: plan, judge and benchmark ablation studies for machine-learning papers.

The public API is imported lazily so that ``import ablationkit`` (and the CLI) start fast;
``from ablationkit import Plan, parse_trajectory`` works as usual.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Ablation": "ablationkit.schema",
    "Action": "ablationkit.schema",
    "Plan": "ablationkit.schema",
    "Usage": "ablationkit.schema",
    "Timings": "ablationkit.schema",
    "AblationKitError": "ablationkit.errors",
    "FormatError": "ablationkit.errors",
    "TrajectoryFormatError": "ablationkit.errors",
    "render_trajectory": "ablationkit.trajectory",
    "parse_trajectory": "ablationkit.trajectory",
    "repair_mojibake": "ablationkit.text_repair",
    "load_plan": "ablationkit.plan_io",
    "parse_plan_text": "ablationkit.plan_io",
    "dump_plan": "ablationkit.plan_io",
    "detect_format": "ablationkit.plan_io",
    "convert_files": "ablationkit.plan_io",
    "Paper": "ablationkit.papers",
    "load_paper": "ablationkit.papers",
    "author_view": "ablationkit.papers",
    "reviewer_view": "ablationkit.papers",
    "sample_paper_path": "ablationkit.papers",
    "plan": "ablationkit.planner",
    "aplan": "ablationkit.planner",
    "PlanConfig": "ablationkit.planner",
    "PlanError": "ablationkit.planner",
    "save_plan": "ablationkit.plan_io",
    "Mode": "ablationkit.schema",
    "Model": "ablationkit.lm.models",
    "resolve_model": "ablationkit.lm.models",
    "LMClient": "ablationkit.lm",
    "complete": "ablationkit.lm",
    "acomplete": "ablationkit.lm",
    "Completion": "ablationkit.lm",
    "read_run": "ablationkit.bench.store",
    "RunRecord": "ablationkit.bench.store",
    "Judgement": "ablationkit.schema",
    "Match": "ablationkit.schema",
    "LMJudge": "ablationkit.judge",
    "MajorityJudge": "ablationkit.judge",
    "EmbeddingJudge": "ablationkit.judge.embedding",
    "AblationBenchJudge": "ablationkit.judge",
    "make_judge": "ablationkit.judge",
    "Run": "ablationkit.bench",
    "load_dataset": "ablationkit.bench",
    "build_site": "ablationkit.site",
    "import_run": "ablationkit.ablationbench.runs",
    "export_run": "ablationkit.ablationbench.runs",
    "score_run": "ablationkit.ablationbench.runs",
}

__all__ = [
    "Ablation",
    "AblationBenchJudge",
    "AblationKitError",
    "Action",
    "Completion",
    "EmbeddingJudge",
    "FormatError",
    "Judgement",
    "LMClient",
    "LMJudge",
    "MajorityJudge",
    "Match",
    "Mode",
    "Model",
    "Paper",
    "Plan",
    "PlanConfig",
    "PlanError",
    "Run",
    "RunRecord",
    "Timings",
    "TrajectoryFormatError",
    "Usage",
    "__version__",
    "acomplete",
    "aplan",
    "author_view",
    "build_site",
    "complete",
    "convert_files",
    "detect_format",
    "dump_plan",
    "export_run",
    "import_run",
    "load_dataset",
    "load_paper",
    "load_plan",
    "make_judge",
    "parse_plan_text",
    "parse_trajectory",
    "plan",
    "read_run",
    "render_trajectory",
    "repair_mojibake",
    "resolve_model",
    "reviewer_view",
    "sample_paper_path",
    "save_plan",
    "score_run",
]

if TYPE_CHECKING:
    from ablationkit.ablationbench.runs import export_run, import_run, score_run
    from ablationkit.bench import Run, load_dataset
    from ablationkit.bench.store import RunRecord, read_run
    from ablationkit.errors import AblationKitError, FormatError, TrajectoryFormatError
    from ablationkit.judge import AblationBenchJudge, LMJudge, MajorityJudge, make_judge
    from ablationkit.judge.embedding import EmbeddingJudge
    from ablationkit.lm import Completion, LMClient, acomplete, complete
    from ablationkit.lm.models import Model, resolve_model
    from ablationkit.papers import (
        Paper,
        author_view,
        load_paper,
        reviewer_view,
        sample_paper_path,
    )
    from ablationkit.plan_io import (
        convert_files,
        detect_format,
        dump_plan,
        load_plan,
        parse_plan_text,
        save_plan,
    )
    from ablationkit.planner import PlanConfig, PlanError, aplan, plan
    from ablationkit.schema import Ablation, Action, Judgement, Match, Mode, Plan, Timings, Usage
    from ablationkit.site import build_site
    from ablationkit.text_repair import repair_mojibake
    from ablationkit.trajectory import parse_trajectory, render_trajectory


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ablationkit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
