"""The LM planner: a paper in, a ranked and validated ablation plan out.

In the spirit of AblationBench's LM-Planner: one prompt with the paper's view for the mode,
reasoning first, then the k most important ablations. What we add: JSON-schema constrained
decoding where the backend has it, tolerant parsing, one repair round-trip that shows the
model its own error, near-duplicate merging, concrete values for REPLACE ablations, and a
context budget that never drops the method.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from typing import Any

from ablationkit.ablationbench.source import raw_source
from ablationkit.errors import AblationKitError
from ablationkit.fsutil import atomic_write_text, safe_name
from ablationkit.lm.client import LMClient, default_client
from ablationkit.lm.keys import redact
from ablationkit.lm.models import Model, resolve_model
from ablationkit.lm.repair import RepairFailed, acomplete_and_parse
from ablationkit.lm.retry import Deadline, RetryCallback, RetryEvent
from ablationkit.lm.routes import is_loopback
from ablationkit.lm.types import Completion, ModelError
from ablationkit.papers import Paper, load_paper, view
from ablationkit.planner.budget import FitResult, fit_to_budget
from ablationkit.planner.config import REPLY_TOKENS, PlanConfig
from ablationkit.planner.ensemble import acomplete_ensemble, context_window
from ablationkit.planner.guards import (
    PROMPT_EXAMPLE_JSON,
    PROMPT_EXAMPLE_JSON_NO_METRICS,
    RepetitionGuard,
    concrete_metrics,
    concrete_values,
    describe_setting,
    drop_restated,
    example_copy,
    is_index_or_indicator,
    is_symbol,
    placeholder,
    restated_share,
    salvage_reasoning,
    whole_sentences,
)
from ablationkit.planner.hints import PaperHints, Setting, extract_hints
from ablationkit.planner.ids import paper_id_for, title_slug
from ablationkit.planner.parse import ReplyParseError, merge_duplicates, parse_plan_reply
from ablationkit.planner.reference import (
    ReferencePlanRequest,
    ReferenceReplyError,
    paper_folder,
    prepare_reference_plan,
    reference_plan,
)
from ablationkit.planner.reported import (
    ReportedAblation,
    denies_ablations,
    render_reported,
    reported_ablations,
    unreported_hints,
    without_reported,
)
from ablationkit.schema import Ablation, Action, Mode, Plan, Timings, Usage

PLANNER_NAME = "lm-planner"
__all__ = [
    "PLANNER_NAME",
    "REPLY_TOKENS",
    "PlanConfig",
    "PlanError",
    "PlanProgress",
    "PlanRequest",
    "acomplete_plan",
    "aplan",
    "complete_plan",
    "paper_id_for",
    "plan",
    "plan_schema",
    "prepare_plan",
    "render_messages",
]


class PlanError(AblationKitError):
    """No usable plan: the raw reply is saved and its path is in the message."""

    exit_code = 4

    def __init__(self, message: str, *, raw_path: Path | None = None, where: str | None = None):
        self.raw_path = raw_path
        if raw_path is not None:
            message = f"{message} (raw reply saved to {raw_path})"
        super().__init__(message, where=where)


# The reasoning's length in the reply schema: 3 to 6 sentences about the paper.
REASONING_CHARS = 800


def _text(limit: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": limit}


def plan_schema(k: int, *, metrics: bool = True) -> dict[str, Any]:
    """JSON schema of a reply; "reasoning" comes first so the model thinks before listing.

    Lengths are bounded so that a small model that starts repeating itself is forced on to
    the next field instead of filling its token budget inside one string: the reasoning
    gets 800 characters (3 to 6 sentences about the paper), an ablated part 200.
    ``metrics=False``: the items have no "metrics" (``PlanRequest.model_writes_metrics``).
    """
    return {
        "type": "object",
        "properties": {
            "reasoning": _text(REASONING_CHARS),
            "ablations": _items(k, metrics),
        },
        "required": ["reasoning", "ablations"],
    }


def _items_schema(n: int, *, metrics: bool = True) -> dict[str, Any]:
    """JSON schema of a follow-up reply: just ``n`` more ablations (no reasoning to pay for)."""
    return {
        "type": "object",
        "properties": {
            "ablations": _items(n, metrics),
        },
        "required": ["ablations"],
    }


def _items(n: int, metrics: bool) -> dict[str, Any]:
    # exactly n: a runtime that enforces the schema (the embedded model's grammar) cannot end
    # the list early. The 1.5B model ended 9 of 25 distinct first replies of the 2026-12-03
    # benchmark runs short of k (2 to 4 items), and the follow-up call that asked for the
    # rest took 25 to 47 s on iSklearn.
    return {"type": "array", "items": _ablation_schema(metrics), "minItems": n, "maxItems": n}


def _ablation_schema(metrics: bool = True) -> dict[str, Any]:
    text = _text
    properties: dict[str, Any] = {
        "name": text(120),
        "ablated_part": text(200),
        "action": {"type": "string", "enum": ["REMOVE", "REPLACE", "ADD"]},
        "replacement": {
            "anyOf": [{"type": "array", "items": text(120), "maxItems": 6}, {"type": "null"}]
        },
    }
    if metrics:
        properties["metrics"] = {"type": "array", "items": text(60), "maxItems": 6}
    return {"type": "object", "properties": properties, "required": list(properties)}


@lru_cache(maxsize=32)
def _compiled(name: str, override: str | None, mtime: float) -> Any:
    """A compiled template, compiled once per file version (a batch renders thousands)."""
    from jinja2 import Environment, StrictUndefined

    # Prompts are plain text, not HTML: nothing to escape.
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    if override is not None:
        text = Path(override).read_text(encoding="utf-8")
    else:
        text = resources.files("ablationkit.planner").joinpath("prompts", name).read_text("utf-8")
    return env.from_string(text)


def _template(name: str, override: Path | None) -> Any:
    if override is None:
        return _compiled(name, None, 0.0)
    return _compiled(name, str(override), Path(override).stat().st_mtime)


def render_messages(
    paper: Paper,
    mode: Mode,
    k: int,
    *,
    paper_text: str,
    hints: str,
    prompt_file: Path | None = None,
    reported: str = "",
    model_writes_metrics: bool = True,
) -> list[dict[str, str]]:
    """System and user messages from the jinja2 templates (``prompt_file`` replaces the
    user template; it sees ``title``, ``abstract``, ``paper``, ``k``, ``mode``, ``hints``
    and ``reported``: in reviewer mode, the ablations the paper already reports, one
    "- description (where)" line each, from ``planner.reported``). ``model_writes_metrics``
    False: the format asks for no "metrics" (``PlanRequest.model_writes_metrics``)."""
    values = {
        "title": paper.title,
        "abstract": paper.abstract,
        "paper": paper_text,
        "k": k,
        "mode": mode,
        "hints": hints,
        "reported": reported,
    }
    # the example ablation is rendered from the one object the copy detector reads
    example = PROMPT_EXAMPLE_JSON if model_writes_metrics else PROMPT_EXAMPLE_JSON_NO_METRICS
    system = (
        _template("system.j2", None)
        .render(**values, example=example, model_writes_metrics=model_writes_metrics)
        .strip()
    )
    user = _template(f"{mode}.j2", prompt_file).render(**values).strip()
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _names_setting(ablation: Ablation, setting: Setting) -> bool:
    """Whether the item's name or part names ``setting`` (by its name, or "= value")."""
    if is_index_or_indicator(setting):
        return False  # an index or a mask indicator is never a hyper-parameter to sweep
    part = f"{ablation.name} {ablation.ablated_part}".lower()
    name = setting.name.strip("\\").lower()
    if len(name) > 1 and re.search(rf"\b{re.escape(name)}\b", part):
        return True
    return f"= {setting.value}" in part or f"={setting.value}" in part


def _matching_setting(ablation: Ablation, hints: PaperHints) -> Setting | None:
    return next((s for s in hints.settings if _names_setting(ablation, s)), None)


_NUMBER_VALUE = re.compile(r"[-+]?[\d.eE]+%?")
_MEANING_FILLER = frozenset("the a an of which that sets is are number value".split())


def _varies(ablation: Ablation, setting: Setting) -> bool:
    """Whether a planned item already changes ``setting``: it names it, or it lists numbers
    for a part that says what the setting is (half its words at least: "the number of
    frames" for K, "decoding iterations" for "T, the total number of iterations")."""
    if _names_setting(ablation, setting):
        return True
    numbers = any(_NUMBER_VALUE.fullmatch(str(r).strip()) for r in ablation.replacement or [])
    if not numbers or not setting.meaning:
        return False
    meaning = set(re.findall(r"[a-z]+", setting.meaning.lower())) - _MEANING_FILLER
    words = set(re.findall(r"[a-z]+", f"{ablation.name} {ablation.ablated_part}".lower()))
    return 2 * len(meaning & words) >= len(meaning) > 0  # "decoding iterations" for T


def complete_ablations(ablations: list[Ablation], hints: PaperHints, k: int) -> list[Ablation]:
    """Make REPLACE/ADD ablations concrete, and sweep a stated hyper-parameter.

    A REPLACE without values gets the sweep around the paper's own value when its part names
    one of the paper's hyper-parameters. Papers' own ablations very often sweep a
    hyper-parameter, and small models rarely propose it: unless a planned item already
    varies it (and k >= 3), the lowest-ranked ablation gives way to a sweep of the first
    value the paper states whose quantity a reader can tell ("c, the margin of the
    contrastive loss, 0.2 in the paper": a bare symbol the paper never defines is not swept,
    nor is an index or an indicator). The reasoning says so (see ``plan``).

    Until 2026-12-03 any numbers in any item stopped the sweep: MaskGIT's "mask ratio 15%,
    20%, 25%" (BERT's ratio, which MaskGIT does not use) kept out the sweep of its T = 8
    decoding steps, one of the paper's own two ablations.
    """
    ablations = tidy_ablations(ablations, hints)
    if k < 3:
        return ablations
    candidates = [(s, part) for s in hints.settings if s.sweep() and (part := describe_setting(s))]
    if not candidates:
        return ablations
    setting, part = candidates[0]
    if any(_varies(a, setting) for a in ablations):
        return ablations
    quantity = setting.name
    if is_symbol(setting.name) and setting.meaning and setting.meaning.startswith("the "):
        quantity = f"{setting.meaning} ({setting.name})"
    sweep = Ablation(
        name=f"Sensitivity to {quantity}",
        ablated_part=part,
        action=Action.REPLACE,
        replacement=setting.sweep(),
        metrics=hints.metrics[:3],
    )
    if len(ablations) < k:
        return [*ablations, sweep]
    return [*ablations[:-1], sweep] if len(ablations) > 1 else [*ablations, sweep][:k]


def tidy_ablations(ablations: list[Ablation], hints: PaperHints) -> list[Ablation]:
    """What the planner fixes without asking the model again: placeholder values dropped
    beside concrete ones (``["GRU", "None"]`` -> ``["GRU"]``), a REPLACE of one of the
    paper's hyper-parameters given the sweep around its value, placeholder metrics ("None",
    a bare "return") dropped and empty metrics filled with the paper's. What is left
    unusable is for ``guard_problem``."""
    for ablation in ablations:
        if ablation.action != "REMOVE" and not isinstance(ablation.replacement, dict):
            values = list(ablation.replacement or [])
            concrete = concrete_values(values)
            if concrete and len(concrete) < len(values):
                ablation.replacement = concrete
            elif not concrete:
                setting = _matching_setting(ablation, hints)
                if setting and setting.sweep():
                    ablation.replacement = setting.sweep()
        metrics = concrete_metrics(ablation.metrics)
        if len(metrics) < len(ablation.metrics):
            ablation.metrics = metrics
        if not ablation.metrics and hints.metrics:
            ablation.metrics = hints.metrics[:3]
    return ablations


def guard_problem(ablation: Ablation, paper_text: str) -> str | None:
    """Why a planned item cannot be used as it is: it copies the prompt's example, or it
    carries a placeholder (see ``planner.guards``); None when it is fine."""
    copied = example_copy(ablation, paper_text)
    if copied is not None:
        return f'it copies "{copied}" from the format example, not from this paper'
    return placeholder(ablation)


@dataclass
class PlanProgress:
    """Callbacks for a progress display; every one is optional.

    ``on_token`` gets the reply as it streams; ``on_retry`` hears when a call is tried again
    (a ``RetryEvent``), after which what was streamed is void and the display starts over.
    """

    on_stage: Callable[[str], None] | None = None
    on_token: Callable[[str], None] | None = None
    on_paper: Callable[[Paper], None] | None = None
    on_retry: RetryCallback | None = None
    notes: list[str] = field(default_factory=list)

    def stage(self, message: str) -> None:
        self.notes.append(message)
        if self.on_stage:
            self.on_stage(message)

    def retry(self, event: RetryEvent) -> None:
        self.notes.append(f"retrying {event.model}: {event.reason}")
        if self.on_retry:
            self.on_retry(event)


@dataclass
class PlanRequest:
    """Everything a plan needs before its model call, built by ``prepare_plan``: a batch
    runner prepares papers ahead while earlier requests are in flight, and a dry run stops
    here. ``prompt_tokens`` is the prompt as the model counts it (``Model.count_tokens``)."""

    paper_id: str
    config: PlanConfig
    model: Model
    messages: list[dict[str, str]]
    hints: PaperHints
    prompt_tokens: int
    dropped: list[str]
    load_seconds: float
    # the ablationbench protocol's request (its messages are ``messages``): no post-processing
    reference: ReferencePlanRequest | None = None
    # reviewer mode: the ablations the paper already reports (listed in the prompt; planned
    # items that repeat one are dropped)
    reported: list[ReportedAblation] = field(default_factory=list)
    # False: the model writes no "metrics" per item; the planner gives each item the metrics
    # found in the paper (``tidy_ablations``). For a model on this machine whose paper names
    # its metrics: the 1.5B model copied the whole "Metrics mentioned" list into every item,
    # 18 tokens each, about 9 s of generation per plan.
    model_writes_metrics: bool = True

    @property
    def mode(self) -> Mode:
        return self.config.mode

    @property
    def k(self) -> int:
        return self.config.k


def prepare_plan(
    paper: Paper | str | Path,
    config: PlanConfig | None = None,
    *,
    client: LMClient | None = None,
    paper_id: str | None = None,
    method_section: list[str] | str | None = None,
    progress: PlanProgress | None = None,
    resolved_model: Model | None = None,
    title: str | None = None,
    abstract: str | None = None,
    **overrides: Any,
) -> PlanRequest:
    """The CPU half of ``plan``: load the paper, take its view, extract hints and fit it into
    the model's context. No model is called or started: tokens are counted with
    ``Model.count_tokens``. Arguments as for ``plan``; ``client`` only lends its
    ``api_base``, and ``resolved_model`` spares a batch resolving the same model per paper.
    """
    config = PlanConfig.build(config, **overrides)
    progress = progress or PlanProgress()
    # a bad model id or api_base fails here, before the paper is read
    api_base = config.api_base or (client.api_base if client is not None else None)
    model = resolved_model or resolve_model(config.model, api_base)
    # an ensemble's paper is prepared once, for the smallest context among its models
    window = config.budget.max_context or context_window(config, model, api_base)
    started = time.perf_counter()
    if config.protocol == "ablationbench":
        return _prepare_reference(
            paper,
            config,
            model,
            paper_id=paper_id,
            title=title,
            abstract=abstract,
            progress=progress,
            started=started,
        )
    raw_text = None
    if config.source == "raw":
        if isinstance(paper, Paper):
            raise AblationKitError("source='raw' reads the paper's files: give its path")
        raw = raw_source(paper_folder(paper))
        raw_text = raw.text
        for warning in raw.warnings:
            progress.stage(f"warning: {warning}")
    if not isinstance(paper, Paper):
        path = Path(paper)
        progress.stage(f"loading {path}")
        paper = load_paper(path, method_section=method_section, strict=config.strict)
        paper_id = paper_id or paper_id_for(path, paper.title)  # the title when it names best
    if progress.on_paper:
        progress.on_paper(paper)
    paper_id = paper_id or title_slug(paper.title) or "paper"
    mode, k = config.mode, config.k
    paper_view = view(paper, mode)
    method_text = "\n\n".join(s.text for s in paper_view.walk() if s.role == "method")
    hints = extract_hints(paper_view.to_markdown(), method_text=method_text)
    # from the whole paper, before fitting: an ablation in a section cut for the context is
    # still reported
    reported = reported_ablations(paper_view) if mode == "reviewer" else []
    count = model.count_tokens
    local = on_this_machine(model)
    writes_metrics = not (hints.metrics and local)
    # the same prompt around the paper, measured empty here and filled once the paper fits
    prompt = partial(
        render_messages,
        mode=mode,
        k=k,
        hints=hints.render(),
        prompt_file=config.prompt_file,
        reported=render_reported(reported),
        model_writes_metrics=writes_metrics,
    )
    template_only = prompt(paper_view, paper_text="")
    template_tokens = sum(count(m["content"]) for m in template_only)
    reply_tokens = config.reply_tokens_for(local)
    budget = window - template_tokens - config.budget.reserve - reply_tokens
    if budget < 500:
        raise AblationKitError(
            f"the context of {model.id} ({window} tokens) is too small for a plan with "
            f"{reply_tokens} reply tokens; use a larger --max-context, fewer "
            "max_tokens or another model"
        )
    if raw_text is not None:  # the reference's input: whole, unfitted; say when it is too long
        fitted = FitResult(paper=paper_view, tokens=count(raw_text), dropped=[])
        if fitted.tokens > budget:
            progress.stage(
                f"warning: the raw source is {fitted.tokens} tokens, over the {budget} the "
                f"context of {model.id} leaves for the paper; sent whole"
            )
        paper_text = raw_text
    else:
        fitted, why = _fit_paper(paper_view, config, model, budget)
        if fitted.dropped:
            progress.stage(f"{why}: dropped " + " | ".join(fitted.dropped))
        paper_text = fitted.paper.to_markdown()
    messages = prompt(fitted.paper, paper_text=paper_text)
    prompt_tokens = fitted.tokens + template_tokens
    progress.stage(f"prompt: {prompt_tokens} tokens to {model.id}")
    return PlanRequest(
        paper_id=paper_id,
        config=config,
        model=model,
        messages=messages,
        hints=hints,
        prompt_tokens=prompt_tokens,
        dropped=fitted.dropped,
        load_seconds=time.perf_counter() - started,
        reported=reported,
        model_writes_metrics=writes_metrics,
    )


def _fit_paper(
    paper_view: Paper, config: PlanConfig, model: Model, budget: int
) -> tuple[FitResult, str]:
    """The view fitted to the reading budget (which never cuts the method) and always to the
    context's ``budget``, and which of the two cut it."""
    count = model.count_tokens
    reading = config.paper_tokens_for(on_this_machine(model))
    if reading is not None and reading < budget:
        fitted = fit_to_budget(paper_view, reading, count, cut_method=False)
        if fitted.tokens <= budget:
            why = (
                f"reading budget ({reading} tokens of the paper for a model on this machine; "
                "--paper-tokens 0 reads it all)"
            )
            return fitted, why
    return fit_to_budget(paper_view, budget, count), "context budget"


def _prepare_reference(
    paper: Paper | str | Path,
    config: PlanConfig,
    model: Model,
    *,
    paper_id: str | None,
    title: str | None,
    abstract: str | None,
    progress: PlanProgress,
    started: float,
) -> PlanRequest:
    """The ablationbench protocol's request: the paper's folder as raw source files, sent
    whole (the reference fits nothing into the context: we say so when it will not fit)."""
    if isinstance(paper, Paper):
        raise AblationKitError(
            "the ablationbench protocol reads the paper's source files: give its path, "
            "not a loaded Paper"
        )
    path = Path(paper)
    paper_id = paper_id or paper_id_for(path, title)
    progress.stage(f"loading the source files of {path}")
    reference = prepare_reference_plan(
        path,
        paper_id=paper_id,
        mode=config.mode,
        k=config.k,
        title=title,
        abstract=abstract,
        planner_config=config.planner_config,
    )
    for warning in reference.warnings:
        progress.stage(f"warning: {warning}")
    tokens = sum(model.count_tokens(m["content"]) for m in reference.messages)
    window = config.budget.max_context or model.context_window
    if tokens + config.reply_tokens > window:
        progress.stage(
            f"warning: the raw source is {tokens} tokens, more than {model.id}'s context of "
            f"{window} leaves for the reply; sent whole, as the reference does"
        )
    progress.stage(f"prompt: {tokens} tokens to {model.id} (ablationbench protocol)")
    return PlanRequest(
        paper_id=paper_id,
        config=config,
        model=model,
        messages=reference.messages,
        hints=extract_hints(""),
        prompt_tokens=tokens,
        dropped=[],
        load_seconds=time.perf_counter() - started,
        reference=reference,
    )


async def _acomplete_reference(
    request: PlanRequest, client: LMClient, raw_dir: Path | None, progress: PlanProgress
) -> Plan:
    """One call and the reply's lines as the plan; an unparseable reply fails the paper."""
    assert request.reference is not None
    config, reference = request.config, request.reference
    begun = time.perf_counter()
    reply = await client.acomplete(
        request.messages,
        request.model,
        on_token=progress.on_token,
        on_retry=progress.retry,
        timeout=config.timeout,
        deadline=Deadline(config.deadline) if config.deadline else None,
        temperature=reference.temperature,
        top_p=reference.top_p,
        max_tokens=config.generation.max_tokens,
    )
    try:
        result = reference_plan(
            reference,
            reply.text,
            model=request.model.id,
            usage=reply.as_usage(),
            generation_s=round(reply.latency, 3),
        )
    except ReferenceReplyError as exc:
        raw_path = _save_raw(raw_dir, request.paper_id, request.mode, [reply])
        raise PlanError(
            f"{request.model.id}: {exc.message}", raw_path=raw_path, where=request.paper_id
        ) from None
    if result.timings is not None:
        result.timings.total_s = round(request.load_seconds + time.perf_counter() - begun, 3)
    return result


def complete_plan(
    request: PlanRequest,
    *,
    client: LMClient | None = None,
    raw_dir: Path | None = None,
    progress: PlanProgress | None = None,
) -> Plan:
    """The I/O half of ``plan``: the model call (one repair round-trip if needed) and the
    plan built from its reply."""
    client = client or default_client()
    result = client.run_sync(
        acomplete_plan(request, client=client, raw_dir=raw_dir, progress=progress)
    )
    client.flush()
    return result


async def acomplete_plan(
    request: PlanRequest,
    *,
    client: LMClient | None = None,
    raw_dir: Path | None = None,
    progress: PlanProgress | None = None,
) -> Plan:
    """``complete_plan`` as a coroutine: a batch runner awaits many on one event loop.

    The request's ``config.timeout`` bounds each attempt on an HTTP server (None: the
    client's); ``config.deadline`` is the seconds this paper's model calls may take in all,
    repair included (None: no limit), after which it fails with "no reply within …"."""
    progress = progress or PlanProgress()
    client = client or default_client()
    if request.config.plans > 1:  # ensemble / samples: member plans of this request, merged
        return await acomplete_ensemble(request, client=client, raw_dir=raw_dir, progress=progress)
    if request.reference is not None:
        return await _acomplete_reference(request, client, raw_dir, progress)
    if request.config.strategy == "decomposed":
        from ablationkit.planner.decomposed import acomplete_decomposed  # imports this module

        return await acomplete_decomposed(
            request, client=client, raw_dir=raw_dir, progress=progress
        )
    model, k = request.model, request.k
    begun = time.perf_counter()  # total_s is load + this, not time spent queued in a batch
    call = PlanCall.for_request(request, progress)
    try:
        (reasoning, ablations), replies = await acomplete_and_parse(
            client,
            request.messages,
            model,
            _parse,
            instruction='Reply again with only the JSON object {"reasoning": ..., '
            '"ablations": [...]} in the required format.',
            on_repair=call.on_repair,
            schema=plan_schema(k, metrics=request.model_writes_metrics),
            **call.kwargs(),
        )
    except RepairFailed as failure:
        raw_path = _save_raw(raw_dir, request.paper_id, request.mode, failure.replies)
        raise PlanError(
            f"{model.id} gave no usable plan: {failure.message}",
            raw_path=raw_path,
            where=request.paper_id,
        ) from None
    ablations = merge_duplicates(ablations)[:k]
    reasoning = whole_sentences(reasoning, REASONING_CHARS)
    reasoning = note_restated_reasoning(reasoning, request, progress)
    # reviewer mode: what the paper already reports goes before the guard decides to ask for
    # the missing items, and again after (on what that call returned)
    proposed = ablations
    reasoning, ablations = without_reported(reasoning, ablations, request.reported, progress.stage)
    kept_ids = {id(a) for a in ablations}
    reported_repeats = [a for a in proposed if id(a) not in kept_ids]
    looped = replies[-1].finish_reason == RepetitionGuard.FINISH_REASON and not ablations
    if looped:
        progress.stage(
            "warning: the reply kept repeating one sentence: stopped; its reasoning is kept "
            "(each sentence once) and the ablations are asked for alone"
        )
    reasoning, ablations, more = await guard_ablations(
        request,
        client,
        call,
        reasoning=reasoning,
        ablations=ablations,
        last=replies[-1],
        shown=json.dumps({"reasoning": reasoning}, ensure_ascii=False) if looped else None,
        already_reported=reported_repeats,
    )
    replies = [*replies, *more]
    if looped and not ablations:
        raise PlanError(
            f"{model.id} gave no usable plan: the reply kept repeating one sentence and the "
            "follow-up gave no usable ablation",
            raw_path=_save_raw(raw_dir, request.paper_id, request.mode, replies),
            where=request.paper_id,
        )
    reasoning, ablations = without_reported(reasoning, ablations, request.reported, progress.stage)
    before = {id(a) for a in ablations}
    ablations = complete_ablations(ablations, unreported_hints(request.hints, request.reported), k)
    added = [a for a in ablations if id(a) not in before]
    if added:
        reasoning = (
            f"{reasoning}\n\n(Added by the planner: a sweep of {added[0].ablated_part}, a "
            "hyper-parameter value stated in the paper that no proposed ablation "
            "varied.)"
        ).strip()
    if len(ablations) < k:
        progress.stage(f"warning: the plan has {len(ablations)} of the {k} ablations asked for")
    return Plan(
        planner=PLANNER_NAME,
        model=model.id,
        paper_id=request.paper_id,
        mode=request.mode,
        reasoning=reasoning,
        ablations=ablations,
        usage=Usage.total(r.as_usage() for r in replies),
        timings=reply_timings(request, replies, begun),
    )


def reply_timings(request: PlanRequest, replies: Sequence[Completion], begun: float) -> Timings:
    """A plan's seconds: loading, then its replies' prompt and generation as the server
    timed them (llama.cpp reports both; other servers only the latency), and the total
    since ``begun`` plus loading (time queued in a batch is not the paper's)."""
    prompt_ms = sum(r.timings.get("prompt_ms", 0.0) for r in replies)
    generation_ms = sum(r.timings.get("predicted_ms", 0.0) for r in replies)
    latency = sum(r.latency for r in replies)
    # the tokens the runtime computed, of the same replies prompt_ms counts (None: a server
    # that does not say)
    counted = [r.timings["prompt_n"] for r in replies if "prompt_n" in r.timings]
    computed = int(sum(counted)) if replies and len(counted) == len(replies) else None
    return Timings(
        load_s=round(request.load_seconds, 3),
        prompt_computed=computed,
        prompt_s=round(prompt_ms / 1000, 3) if prompt_ms else None,
        generation_s=round(generation_ms / 1000, 3) if generation_ms else round(latency, 3),
        total_s=round(request.load_seconds + time.perf_counter() - begun, 3),
    )


def on_this_machine(model: Model) -> bool:
    """Whether ``model`` runs here (the embedded model, or a server on a loopback address):
    generation there is slow and paid in the user's time, so replies are budgeted tighter."""
    return model.local or is_loopback(model.base_url)


@dataclass
class PlanCall:
    """What every model call of one plan shares: its deadline, its request parameters (the
    reply budget: ``PlanConfig.reply_tokens_for``) and the guard that stops a reply looping
    on one sentence. Replies are streamed through that guard when someone watches them
    (``on_token``) and always on the embedded model, where a loop costs minutes; elsewhere
    they come whole, as before."""

    progress: PlanProgress
    timeout: float | None
    deadline: Deadline | None
    params: dict[str, Any]
    guard: RepetitionGuard | None
    local: bool

    @classmethod
    def for_request(cls, request: PlanRequest, progress: PlanProgress) -> PlanCall:
        config, model = request.config, request.model
        local = on_this_machine(model)
        watched = progress.on_token is not None or model.local
        return cls(
            progress=progress,
            timeout=config.timeout,
            deadline=Deadline(config.deadline) if config.deadline else None,
            params={**config.request_params(), "max_tokens": config.reply_tokens_for(local)},
            guard=RepetitionGuard(progress.on_token) if watched else None,
            local=local,
        )

    def on_repair(self, error: str) -> None:
        self.progress.stage(f"reply unusable ({error}); asking the model to repair it")
        if self.guard is not None:
            self.guard.reset()  # the repair is a new reply

    def on_retry(self, event: RetryEvent) -> None:
        if self.guard is not None:
            self.guard.reset()
        self.progress.retry(event)

    def kwargs(self, **params: Any) -> dict[str, Any]:
        """Keyword arguments of ``LMClient.acomplete`` (``params`` override the request's)."""
        if self.guard is not None:
            self.guard.reset()
        return {
            "on_token": self.guard if self.guard is not None else self.progress.on_token,
            "on_retry": self.on_retry,
            "timeout": self.timeout,
            "deadline": self.deadline,
            **{**self.params, **params},
        }


def _paper_text(request: PlanRequest) -> str:
    """What the model read of the paper: the user messages (the system message holds the
    format example, which an item must not count as the paper's wording)."""
    return "\n".join(str(m["content"]) for m in request.messages if m.get("role") == "user")


def _instruction_text(config: PlanConfig) -> str:
    """Our prompts without any paper in them: what a reasoning must not merely restate."""
    return _rendered_instructions(config.mode, config.k, config.prompt_file)


@lru_cache(maxsize=16)
def _rendered_instructions(mode: Mode, k: int, prompt_file: Path | None) -> str:
    # cached: the same for every paper of a batch (a prompt file edited mid-run is not seen
    # here, only by the prompts themselves)
    messages = render_messages(
        Paper(),
        mode,
        k,
        paper_text="",
        hints="",
        prompt_file=prompt_file,
        reported="-",  # the reviewer prompt's instructions about reported ablations too
    )
    return "\n".join(m["content"] for m in messages)


def note_restated_reasoning(reasoning: str, request: PlanRequest, progress: PlanProgress) -> str:
    """``reasoning`` without the sentences that restate our instructions ("I will read the
    method section and list its components"; "The paper does report ablations, so never
    write that it reports none"), with a note saying so: the trace is about the paper. Such
    a reply is not asked again (its ablations may still be good)."""
    instructions = _instruction_text(request.config)
    mostly = restated_share(reasoning, instructions) >= 0.5
    kept, removed = drop_restated(reasoning, instructions, keep=denies_ablations)
    if not removed:
        return reasoning
    progress.stage(
        "warning: the reasoning mostly restates the planner's instructions"
        if mostly
        else f"warning: {removed} sentence(s) of the reasoning restated the instructions"
    )
    return (
        f"{kept}\n\n(Note from the planner: {removed} sentence(s) of this reasoning that "
        "restated the instructions the model was given, rather than discussing the paper, "
        "were removed.)"
    ).strip()


def _quoted(ablations: list[Ablation]) -> str:
    return "; ".join(f'"{a.name}"' for a in ablations)


def _follow_up_prompt(
    bad: list[tuple[Ablation, str]],
    kept: list[Ablation],
    wanted: int,
    k: int,
    given: int,
    already_reported: Sequence[Ablation] = (),
) -> str:
    lines = []
    if already_reported:
        lines.append(
            "The paper already reports these, so they are not missing: "
            f"{_quoted(list(already_reported))}. Do not propose them again."
        )
    if bad:
        lines.append("These ablations of your plan cannot be used:")
        lines.extend(f'- "{a.name}": {why}.' for a, why in bad)
    if given < k:
        lines.append(f"You gave {given} of the {k} ablations asked for.")
    if kept:
        lines.append(f"Keep these, and do not repeat them: {_quoted(kept)}.")
    lines.append(
        'Reply with only the JSON object {"ablations": [...]} holding '
        f"{wanted} new ablation{'s' if wanted > 1 else ''} of this paper, most important "
        "first. Each names a component of THIS paper as the paper names it (a module, loss "
        "term, training step, data choice or hyper-parameter); REPLACE and ADD list concrete "
        "alternatives or values taken from the paper, never None, N/A or a vague "
        '"simpler model".'
    )
    return "\n".join(lines)


async def _ask_for_more(
    request: PlanRequest,
    client: LMClient,
    call: PlanCall,
    shown: str,
    prompt: str,
    wanted: int,
) -> tuple[list[Ablation], list[Completion]]:
    """One follow-up call on the same conversation (its prefix is the plan's prompt, so the
    runtime's prompt cache spares re-reading the paper), bound by a schema for ``wanted``
    items. A failed call or an unusable reply leaves the plan as it is, with a warning."""
    messages = [
        *request.messages,
        {"role": "assistant", "content": shown},
        {"role": "user", "content": prompt},
    ]
    budget = request.config.reply_tokens_for(call.local, items=wanted)
    try:
        reply = await client.acomplete(
            messages,
            request.model,
            schema=_items_schema(wanted, metrics=request.model_writes_metrics),
            **call.kwargs(max_tokens=budget),
        )
    except ModelError as exc:
        call.progress.stage(f"warning: the follow-up request failed ({exc.message})")
        return [], []
    try:
        _reasoning, items = parse_plan_reply(reply.text)
    except ReplyParseError as exc:
        call.progress.stage(f"warning: the follow-up reply could not be used ({exc.message})")
        return [], [reply]
    return items, [reply]


def _repeats(ablation: Ablation, others: list[Ablation]) -> bool:
    """Whether ``ablation`` is a near-duplicate of one of ``others`` (``merge_duplicates``'
    rule, on copies: nothing is merged into the kept items)."""
    copies = [a.model_copy(deep=True) for a in [*others, ablation]]
    return len(merge_duplicates(copies)) <= len(others)


async def guard_ablations(
    request: PlanRequest,
    client: LMClient,
    call: PlanCall,
    *,
    reasoning: str,
    ablations: list[Ablation],
    last: Completion,
    shown: str | None = None,
    already_reported: Sequence[Ablation] = (),
) -> tuple[str, list[Ablation], list[Completion]]:
    """The guard rails on a parsed plan: ``(reasoning, ablations, extra replies)``.

    Items that copy the prompt's example or carry a placeholder (``guard_problem``), and the
    missing ones when the model stopped short of ``k`` on its own or by looping (not when it
    hit its token limit), are asked for again in ONE follow-up call on the conversation so
    far (``shown``: what the model is shown of its reply; a looped reply is shown de-looped);
    replacements take the places of the unusable items. Whatever is still unusable is
    dropped, and the reasoning says which and why. A plan stays short rather than padded
    with junk. ``already_reported``: reviewer-mode items dropped because the paper reports
    them; the follow-up names them so the model does not propose them again.
    """
    k, hints = request.k, request.hints
    paper_text = _paper_text(request)
    items = tidy_ablations(ablations, hints)
    problems = {id(a): why for a in items if (why := guard_problem(a, paper_text)) is not None}
    stopped_early = last.finish_reason != "length"  # a looped reply kept only its reasoning
    missing = max(0, k - len(items)) if stopped_early else 0
    if not problems and not missing:
        return reasoning, items, []
    bad = [(a, problems[id(a)]) for a in items if id(a) in problems]
    kept = [a for a in items if id(a) not in problems]
    wanted = len(bad) + missing
    call.progress.stage(
        f"asking the model again for {wanted} ablation{'s' if wanted > 1 else ''}"
        + (f" ({len(bad)} unusable)" if bad else "")
    )
    prompt = _follow_up_prompt(bad, kept, wanted, k, len(items), already_reported)
    shown = last.text if shown is None else shown  # the model's reply, as the conversation
    new, replies = await _ask_for_more(request, client, call, shown, prompt, wanted)
    dropped = list(bad)
    fresh: list[Ablation] = []
    for ablation in tidy_ablations(merge_duplicates(new), hints):
        why = guard_problem(ablation, paper_text)
        if why is not None:
            dropped.append((ablation, why))
        elif len(fresh) < wanted and not _repeats(ablation, [*kept, *fresh]):
            fresh.append(ablation)
    result: list[Ablation] = []
    for ablation in items:  # a replacement takes the place of the item it replaces
        if id(ablation) not in problems:
            result.append(ablation)
        elif fresh:
            result.append(fresh.pop(0))
    result = [*result, *fresh][:k]
    if dropped:
        listed = "; ".join(f'"{a.name}" — {why}' for a, why in dropped)
        reasoning = f"{reasoning}\n\n(Dropped by the planner: {listed}.)".strip()
        call.progress.stage(f"dropped {len(dropped)} unusable ablation(s): {listed}")
    return reasoning, result, replies


def plan(
    paper: Paper | str | Path,
    config: PlanConfig | None = None,
    *,
    client: LMClient | None = None,
    paper_id: str | None = None,
    method_section: list[str] | str | None = None,
    raw_dir: Path | None = None,
    progress: PlanProgress | None = None,
    **overrides: Any,
) -> Plan:
    """Plan the ``k`` most important ablations of a paper (author mode) or its ``k`` most
    important missing ablations (reviewer mode).

    ``paper`` is a loaded ``Paper`` or a path for ``load_paper`` (``method_section`` overrides
    its method section). How to plan is a ``PlanConfig``; keyword ``overrides`` change it by
    name, validated (``plan(paper, mode="reviewer", k=3, model="openai/gpt-4o",
    temperature=0.2)``; an unknown name is a ``PlanConfigError``). A reply that cannot be
    used gets one repair round-trip; if that fails too, ``PlanError`` names the file in
    ``raw_dir`` (default: a temporary folder) where the raw reply was saved.

    Without ``client`` the process's default client is used (one for all such calls; its
    ``usage`` has their totals): ``ablationkit.lm.default_client()``.
    """
    config = PlanConfig.build(config, **overrides)
    client = client or default_client()
    request = prepare_plan(
        paper,
        config,
        client=client,
        paper_id=paper_id,
        method_section=method_section,
        progress=progress,
    )
    return complete_plan(request, client=client, raw_dir=raw_dir, progress=progress)


async def aplan(
    paper: Paper | str | Path,
    config: PlanConfig | None = None,
    *,
    client: LMClient | None = None,
    paper_id: str | None = None,
    method_section: list[str] | str | None = None,
    raw_dir: Path | None = None,
    progress: PlanProgress | None = None,
    **overrides: Any,
) -> Plan:
    """``plan`` as a coroutine, for notebooks and async code: the paper is loaded in a thread,
    the model call awaited on the caller's loop. Arguments as for ``plan``."""
    config = PlanConfig.build(config, **overrides)
    client = client or default_client()
    request = await asyncio.to_thread(
        prepare_plan,
        paper,
        config,
        client=client,
        paper_id=paper_id,
        method_section=method_section,
        progress=progress,
    )
    return await acomplete_plan(request, client=client, raw_dir=raw_dir, progress=progress)


def _parse(reply: Completion) -> tuple[str, list[Ablation]]:
    try:
        return parse_plan_reply(reply.text)
    except ReplyParseError as exc:
        if reply.finish_reason == "length":
            raise ReplyParseError(
                f"{exc.message}; the reply hit the token limit after "
                f"{reply.usage.completion_tokens} tokens"
            ) from None
        if reply.finish_reason == RepetitionGuard.FINISH_REASON:
            salvaged = salvage_reasoning(reply.text)
            if salvaged is not None:  # it looped in its reasoning: keep that, ask for items
                return salvaged, []
            raise ReplyParseError(
                f"{exc.message}; the reply was stopped because it kept repeating one sentence"
            ) from None
        raise


def _save_raw(raw_dir: Path | None, paper_id: str, mode: Mode, replies: list[Completion]) -> Path:
    """The replies of a failed plan, as ``<paper_id>.<mode>.raw.txt`` (an author and a
    reviewer plan of one paper never overwrite each other's)."""
    directory = Path(raw_dir) if raw_dir else Path(tempfile.gettempdir()) / "ablationkit-raw"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{safe_name(paper_id)}.{mode}.raw.txt"
    # a server may echo the request's key into its reply: the saved copy never shows it
    text = redact("\n\n----- repair attempt -----\n\n".join(r.text for r in replies))
    atomic_write_text(path, text)
    return path
