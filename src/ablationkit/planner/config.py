"""``PlanConfig``: everything that decides a plan apart from the paper, in one typed object.

``plan``, ``aplan``, ``prepare_plan``, ``bench.Run.plan``, ``bench.dry_run``, the web app and
the CLI all take one of these, so an option is declared once and checked once: an unknown
name (``temprature=0.2``) or a bad value is an error before any paper is read, never a key
sent along in the request body. ``PlanConfig.build(config, **overrides)`` is the keyword
form notebooks use (``plan(paper, mode="reviewer", temperature=0.2)``): the flat names of
``generation`` and ``budget`` settings are accepted beside the top-level ones.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ablationkit.errors import AblationKitError, describe_validation
from ablationkit.lm.retry import DEFAULT_DEADLINE
from ablationkit.schema import Mode, parse_mode

# The reply's token budget: a plan of k=5 with its reasoning takes 800-1500 tokens; the rest
# is room for a verbose model, and the ceiling that stops one that repeats itself.
REPLY_TOKENS = 3000


def local_reply_tokens(k: int) -> int:
    """The reply budget of a plan of ``k`` on a model on this machine (the embedded one, a
    llama.cpp or Ollama server) when the user set none: the reasoning (at most 800
    characters) and ``k`` items of ~160 tokens. At ~10 tokens/s on a CPU the 3000 of a
    remote model's cap meant minutes of generation for a reply that loops or rambles."""
    return 200 + 160 * k


# The reading budget of a model on this machine: tokens of the paper's view it reads when
# the user set none. On a CPU reading is most of a plan's time (43-48 tokens/s for the 1.5B
# model on two cores, slower as the context grows), so beyond the method and abstract, a
# long paper is read in outline: related work goes, then the other sections are cut to their
# first and last paragraphs, then to their first (planner.budget). The method is never cut
# for it.
# Chosen with benchmarks/bench_quality.py --paper-tokens (README, "Plan quality").
LOCAL_PAPER_TOKENS = 2500
MIN_PAPER_TOKENS = 300


# An ensemble's plans: models x samples (each plan is a full model call; sixteen bounds the
# cost of one paper to what a user can mean).
MAX_PLANS = 16
# The temperature samples are drawn at when none is set: varied plans that still read the
# paper (the greedy default would give the same plan every time).
SAMPLE_TEMPERATURE = 0.7


def _member_list(value: Any) -> Any:
    """An ensemble's models from "a,b" or a list, stripped; anything else is left for the
    field's own validation to refuse."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return value
    members = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or any(c in item for c in "\r\n"):
            raise ValueError("ensemble: each model is a model id on one line")
        members.append(item.strip())
    return members


class PlanConfigError(AblationKitError):
    """A plan setting that does not exist or has a bad value: bad input, exit code 2."""

    exit_code = 2


class Generation(BaseModel):
    """Sampling settings sent to the model. Named fields only: a setting a server does not
    know is refused here, not passed on for the server to ignore or reject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=REPLY_TOKENS, ge=16, le=200_000)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)  # llama.cpp, vLLM, Ollama; OpenAI refuses it
    seed: int | None = None
    stop: list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)

    def request_params(self) -> dict[str, Any]:
        """The body parameters of a chat request: the settings that are set.

        Whole-number floats go as integers (``"temperature": 0``): the request hash keys the
        reply cache, and replies cached before this object existed were asked that way.
        """
        params: dict[str, Any] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            params[name] = value
        return params


class Budget(BaseModel):
    """How much of the model's context the prompt may fill. The reply's share is
    ``generation.max_tokens``; ``reserve`` is kept free for the chat template's own tokens
    and the error of an estimated count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_context: int | None = Field(default=None, ge=1000)  # None: the model's context window
    reserve: int = Field(default=64, ge=0)
    # tokens of the paper a model on this machine reads (``PlanConfig.paper_tokens_for``):
    # None: LOCAL_PAPER_TOKENS there and everything that fits elsewhere; 0: everything
    paper_tokens: int | None = Field(default=None, ge=0)

    @field_validator("paper_tokens")
    @classmethod
    def _readable(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < MIN_PAPER_TOKENS:
            raise ValueError(
                f"paper_tokens {value} is too few to read a method: 0 (all) or at least "
                f"{MIN_PAPER_TOKENS}"
            )
        return value


class PlanConfig(BaseModel):
    """How to plan: the mode, how many ablations, with which model and settings.

    ``strategy`` and ``protocol`` name how the plan is made and which prompt and reply format
    are used (single: one model call with one repair round-trip; decomposed: see
    ``planner.decomposed``); a run records them and refuses to mix others in later.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "author"
    k: int = Field(default=5, ge=1, le=50)
    model: str = Field(default="local", min_length=1, max_length=500)
    api_base: str | None = None
    # single: one call for the whole plan; decomposed: components, then ablations from the
    # paper's facts (planner.decomposed; the ablationkit protocol only)
    strategy: Literal["single", "decomposed"] = "single"
    # ablationkit: our prompts, views and post-processing; ablationbench: the reference's
    # planner exactly (raw source files, its reply format, nothing merged, added or cut; k
    # defaults to 5 in author and 2 in reviewer mode, as there)
    protocol: Literal["ablationkit", "ablationbench"] = "ablationkit"
    # ablationbench protocol: the reference's own YAML prompt file (prompts: {system, user})
    planner_config: Path | None = None
    # what the model reads of the paper: our parsed view of the mode (fitted to the context),
    # or the reference's input, every source file of the paper's folder unparsed and whole
    # (the ablationbench protocol always reads that)
    source: Literal["parsed", "raw"] = "parsed"
    generation: Generation = Generation()
    budget: Budget = Budget()
    # seconds one attempt may wait on a server (None: the client's, see lm.client)
    timeout: float | None = Field(default=None, gt=0)
    # seconds all of a paper's model calls may take, retries and repair included (None: no limit)
    deadline: float | None = Field(default=DEFAULT_DEADLINE, gt=0)
    # an \input the paper cannot read is an error, not a warning
    strict: bool = False
    # a jinja2 template replacing the user prompt (sees title, abstract, paper, k, mode, hints)
    prompt_file: Path | None = None
    # several plans merged into one (planner.ensemble): the models to plan with ("a,b" or a
    # list; `model` is the first unless it is one of them). The paper is prepared once, fitted
    # to the smallest context window among them.
    ensemble: list[str] | None = Field(default=None, max_length=MAX_PLANS)
    # plans per model, each with its own seed (the base seed + i, so the reply cache keeps
    # them apart); more than one sample at temperature SAMPLE_TEMPERATURE unless temperature
    # is set, and a temperature set to 0 is refused (every sample would be the same plan)
    samples: int = Field(default=1, ge=1, le=MAX_PLANS)

    @model_validator(mode="before")
    @classmethod
    def _ensemble_model(cls, data: Any) -> Any:
        """With an ensemble and no ``model``, ``model`` is its first member (the model whose
        tokenizer counts the prompt, and whose id a batch run resolves)."""
        if isinstance(data, dict) and data.get("ensemble") and "model" not in data:
            members = _member_list(data["ensemble"])
            if members:
                data = {**data, "model": members[0]}
        return data

    @field_validator("ensemble", mode="before")
    @classmethod
    def _ensemble_list(cls, value: Any) -> Any:
        return None if value is None else _member_list(value)

    @model_validator(mode="after")
    def _ensemble(self) -> PlanConfig:
        """An ensemble is of two or more plans of our protocol (the reference's planner merges
        nothing), sixteen at most, and sampling means a temperature above 0."""
        if self.ensemble is not None:
            if len(set(self.ensemble)) < len(self.ensemble):
                raise ValueError("ensemble lists a model twice (use samples for more plans)")
            if self.model not in self.ensemble:
                raise ValueError(f"model {self.model!r} is not one of the ensemble's models")
            if len(self.ensemble) < 2 and self.samples < 2:
                raise ValueError("an ensemble needs two or more models, or samples > 1")
        if self.plans > MAX_PLANS:
            raise ValueError(
                f"{len(self.members)} models x {self.samples} samples is {self.plans} plans; "
                f"at most {MAX_PLANS}"
            )
        if self.plans > 1 and self.protocol != "ablationkit":
            raise ValueError("ensemble and samples work with protocol 'ablationkit' only")
        if self.samples > 1 and self.sample_temperature == 0:
            raise ValueError(
                f"samples > 1 needs a temperature above 0 (unset: {SAMPLE_TEMPERATURE})"
            )
        return self

    @property
    def members(self) -> list[str]:
        """The models an ensemble plans with (the one model without an ensemble)."""
        return list(self.ensemble) if self.ensemble else [self.model]

    @property
    def plans(self) -> int:
        """How many plans one paper's plan is made of (1: no ensemble)."""
        return len(self.members) * self.samples

    @property
    def sample_temperature(self) -> float:
        """The temperature a sample is drawn at: the one set, else ``SAMPLE_TEMPERATURE``
        with more than one sample (else the greedy default)."""
        if "temperature" in self.generation.model_fields_set or self.samples < 2:
            return self.generation.temperature
        return SAMPLE_TEMPERATURE

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        return parse_mode(value)

    @model_validator(mode="before")
    @classmethod
    def _reference_k(cls, data: Any) -> Any:
        """Under the ablationbench protocol an unset k is the reference's for the mode (see
        ``reference_k``); with no mode given (a batch of instances in their own modes) it stays
        unset, and the batch sets it per instance."""
        if (
            isinstance(data, dict)
            and data.get("protocol") == "ablationbench"
            and "k" not in data
            and data.get("mode") is not None
        ):
            data = {**data, "k": reference_k(parse_mode(data["mode"]))}
        return data

    @model_validator(mode="after")
    def _decomposed(self) -> PlanConfig:
        """The decomposed strategy writes its own prompts from our parsed view: the reference's
        protocol and a replacement user prompt cannot apply to it."""
        if self.strategy == "decomposed":
            if self.protocol != "ablationkit":
                raise ValueError("strategy 'decomposed' works with protocol 'ablationkit' only")
            if self.prompt_file is not None:
                raise ValueError(
                    "prompt_file replaces the single strategy's prompt; strategy 'decomposed' "
                    "writes its own"
                )
        return self

    def for_mode(self, mode: Mode) -> PlanConfig:
        """This configuration for an instance of ``mode`` (a batch plans each in its own),
        with the reference's k for that mode when the ablationbench protocol's k was not set."""
        update: dict[str, Any] = {"mode": mode}
        if self.protocol == "ablationbench" and "k" not in self.model_fields_set:
            update["k"] = reference_k(mode)
        return self.model_copy(update=update)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\r\n"):
            raise ValueError("must be a model id on one line")
        return value.strip()

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from ablationkit.lm.routes import check_api_base

        return check_api_base(value)  # ModelConfigError: one line, exit code 2

    @classmethod
    def build(cls, config: PlanConfig | None = None, /, **overrides: Any) -> PlanConfig:
        """``config`` (default: the defaults) with ``overrides`` applied and validated.

        Overrides are top-level fields (``mode``, ``k``, ``model``, …) or the flat names of
        ``generation`` and ``budget`` fields (``temperature``, ``max_context``, …).
        ``PlanConfigError`` names an unknown setting (with the closest known one) or the
        first bad value.
        """
        if config is not None and not isinstance(config, PlanConfig):
            raise PlanConfigError(
                f"expected a PlanConfig, got {config!r}: give settings by name "
                "(plan(paper, mode='reviewer', k=3, model='local'))"
            )
        base = config if config is not None else cls()
        if not overrides:
            return base
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {"generation": {}, "budget": {}}
        for name, value in overrides.items():
            if name in cls.model_fields:
                top[name] = value
            elif name in Generation.model_fields:
                nested["generation"][name] = value
            elif name in Budget.model_fields:
                nested["budget"][name] = value
            else:
                raise PlanConfigError(_unknown(name))
        data = base.model_dump(exclude_unset=True)
        for part, values in nested.items():
            if values:
                data[part] = {**getattr(base, part).model_dump(exclude_unset=True), **values}
        if "ensemble" in top and "model" not in top:
            data.pop("model", None)  # a new ensemble: its first model, not the old one
        data.update(top)
        return cls.validated(data)

    @classmethod
    def validated(cls, data: dict[str, Any]) -> PlanConfig:
        """``model_validate`` with its error as one line (``PlanConfigError``)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PlanConfigError(describe_validation(exc, "plan setting ")) from None

    @property
    def reply_tokens(self) -> int:
        return self.generation.max_tokens

    def reply_tokens_for(self, local: bool, items: int | None = None) -> int:
        """``max_tokens`` of a plan's call for ``items`` ablations (default ``k``): the
        user's ``generation.max_tokens`` when set, else ``local_reply_tokens`` for a model on
        this machine and ``REPLY_TOKENS`` (the hard cap) for a remote one."""
        if local and "max_tokens" not in self.generation.model_fields_set:
            wanted = self.k if items is None else items
            return min(local_reply_tokens(wanted), self.generation.max_tokens)
        return self.generation.max_tokens

    def paper_tokens_for(self, local: bool) -> int | None:
        """The reading budget: how many tokens of the paper's view the model reads (None: all
        that fits its context). The user's ``budget.paper_tokens`` when set (0: all), else
        ``LOCAL_PAPER_TOKENS`` for a model on this machine."""
        chosen = self.budget.paper_tokens
        if chosen is None:
            return LOCAL_PAPER_TOKENS if local else None
        return chosen or None

    def request_params(self) -> dict[str, Any]:
        return self.generation.request_params()


def reference_k(mode: Mode) -> int:
    """AblationBench's number of ablations per plan: 5 in author mode, 2 in reviewer mode."""
    return 2 if mode == "reviewer" else 5


def known_settings() -> list[str]:
    """Every name ``PlanConfig.build`` accepts."""
    return sorted({*PlanConfig.model_fields, *Generation.model_fields, *Budget.model_fields})


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, known_settings(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown plan setting {name!r}{hint}; known: {', '.join(known_settings())}"


__all__ = [
    "MAX_PLANS",
    "REPLY_TOKENS",
    "SAMPLE_TEMPERATURE",
    "Budget",
    "Generation",
    "PlanConfig",
    "PlanConfigError",
    "known_settings",
    "local_reply_tokens",
    "reference_k",
]
