"""Responders for ``FakeLLMServer``: reply to each request by what it asks for."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def plan_or_verdict(
    plan: dict[str, Any], verdict: dict[str, Any]
) -> Callable[[dict[str, Any]], str]:
    """Answer planner requests with ``plan`` and judge requests with ``verdict``.

    The two are told apart by the JSON schema the request sends (a judge's has ``matches``),
    so one fake server can stand in for both stages of a benchmark run.
    """
    plan_text, verdict_text = json.dumps(plan), json.dumps(verdict)

    def respond(body: dict[str, Any]) -> str:
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        return verdict_text if "matches" in schema.get("properties", {}) else plan_text

    return respond
