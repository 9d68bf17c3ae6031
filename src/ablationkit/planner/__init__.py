"""The LM planner: ``plan(paper, PlanConfig(...))`` (or ``plan(paper, mode=..., k=...)``)
-> ``Plan``."""

from ablationkit.planner.config import Budget, Generation, PlanConfig, PlanConfigError
from ablationkit.planner.core import (
    PlanError,
    PlanProgress,
    PlanRequest,
    acomplete_plan,
    aplan,
    complete_plan,
    plan,
    plan_schema,
    prepare_plan,
    render_messages,
)
from ablationkit.planner.ensemble import merge_plans
from ablationkit.planner.hints import PaperHints, extract_hints
from ablationkit.planner.ids import paper_id_for
from ablationkit.planner.parse import ReplyParseError, merge_duplicates, parse_plan_reply

__all__ = [
    "Budget",
    "Generation",
    "PaperHints",
    "PlanConfig",
    "PlanConfigError",
    "PlanError",
    "PlanProgress",
    "PlanRequest",
    "ReplyParseError",
    "acomplete_plan",
    "aplan",
    "complete_plan",
    "extract_hints",
    "merge_duplicates",
    "merge_plans",
    "paper_id_for",
    "parse_plan_reply",
    "plan",
    "plan_schema",
    "prepare_plan",
    "render_messages",
]
