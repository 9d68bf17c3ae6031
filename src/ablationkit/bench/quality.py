"""Plan validity and quality statistics: what ``benchmarks/bench_quality.py`` prints.

A judge's P/R/F1 says how many planned ablations match the paper's own; it does not say
whether a plan is usable at all. These figures do, per plan and summed over a benchmark:

* **validity**: was a schema-valid plan written, with the k items asked for; does an item
  copy the prompt's example or carry a placeholder replacement (both detected by
  ``ablationkit.planner.guards``, the planner's own checks, so the benchmark counts exactly
  what the planner is meant to prevent);
* **grounding**: do the metrics occur in the paper's text, and do the words naming each
  ablated part occur in the method section (a model that invents a "fusion encoder" fails
  this, whatever the judge says);
* **scores**: macro P/R/F1 pooled over the papers of several runs (a run is one dataset in
  one mode), with bootstrap intervals over papers; a paper whose plan or verdict failed
  counts as 0, as in ``bench score``. In reviewer mode only reviewers' requests are right
  answers: where a paper's targets are the ablations it reports, a match is a *repeat* of
  one (a "missing" ablation the paper has), counted apart (``Repeats``);
* **time**: seconds per paper split into load / prompt / generation, and prompt tokens per
  second against the raw runtime's, timed in the same process (``measure_raw_prompt_rate``).

The word matching is deliberately simple and explainable (casefolded words, plural and
abbreviation tolerant, Greek letters by name), so a figure can be checked by reading the
paper: every miss is listed with the words that were not found.
"""

from __future__ import annotations

import re
import statistics
import time
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ablationkit.bench.datasets import Instance
from ablationkit.bench.store import RunRecord
from ablationkit.errors import AblationKitError
from ablationkit.judge.metrics import PaperResult, PaperScore, bootstrap_ci, macro_prf
from ablationkit.papers.model import Paper
from ablationkit.planner.guards import example_copy, placeholder
from ablationkit.schema import Ablation, Mode, Plan

# ---------------------------------------------------------------------------- words

# Abbreviations that are not prefixes of the word they stand for.
ABBREVIATIONS: Mapping[str, str] = {
    "avg": "average",
    "no": "number",
    "num": "number",
    "nb": "number",
    "approx": "approximate",
}
_NON_WORD = re.compile(r"[^0-9a-z]+")
_POSSESSIVE = re.compile(r"['\u2019]s\b")
_PARENTHESES = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_NUMBER = re.compile(r"^\d+$")
_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*\b")
# A word of a metric may stand for a longer word it begins ("acc" for "accuracy"), if it has
# at least this many letters: shorter prefixes ("a", "m") would be found in any text.
MIN_PREFIX = 3


def _plain(text: str) -> str:
    """``text`` casefolded, accents stripped, Greek letters spelled out ("β" -> " beta ") so
    that a LaTeX ``$\\beta$`` and a Unicode β are the same word; "'s" dropped."""
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", _POSSESSIVE.sub("", text)):
        if unicodedata.combining(char):
            continue
        if "\u0370" <= char <= "\u03ff":
            name = unicodedata.name(char, "")
            if name.startswith("GREEK") and "LETTER" in name:
                out.append(f" {name.rsplit(' ', 1)[-1].lower()} ")
                continue
        out.append(char)
    return "".join(out).casefold()


def stem(word: str) -> str:
    """A crude stem: singular ("accuracies" -> "accuracy", "heads" -> "head", "losses" ->
    "loss"), then "-ing", "-ed" and a final "e" cut where four letters remain ("sampling",
    "sampled", "samples" -> "sampl"). Applied to both sides of every comparison, so it only
    has to be consistent, not linguistically right."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


# Function words and words that name no component: they carry no evidence of grounding.
_STOPWORDS = """
    a an the of in on at to for from by with without into onto over under between
    and or nor but vs versus via per as is are be been being was were it its this that these
    those their our we they which who whose what when where how than then there here such
    each every all any both either neither no not only other another same more most less
    least very much many few some one ones used use using uses based paper proposed
    pre non re co""".split()
# Words that say what kind of thing a part is, not which one ("the number of heads", "the
# hyper-parameter m_i", "the diversity term"): the distinctive words must be grounded.
_GENERIC_WORDS = """
    hyper parameter hyperparameter value setting number amount choice type kind term step stage
    procedure process strategy component part design variant version""".split()
STOPWORDS = frozenset(stem(w) for w in _STOPWORDS)
GENERIC_WORDS = frozenset(stem(w) for w in _GENERIC_WORDS)


def words(text: str) -> list[str]:
    """The words of ``text``: casefolded, split at anything not a letter or digit
    ("top-1" -> "top", "1"), each stemmed (``stem``)."""
    return [stem(w) for w in _NON_WORD.split(_plain(text)) if w]


def content_words(text: str) -> list[str]:
    """The words of ``text`` that name which part is meant: no function words, no words that
    only say what kind of part it is ("number", "term"), no bare numbers (a value is not a
    part), nothing in parentheses ("(10 min)", "(the paper's value)") unless that is all."""

    def named(chunk: str) -> list[str]:
        return [
            w
            for w in words(chunk)
            if w not in STOPWORDS and w not in GENERIC_WORDS and not _NUMBER.match(w)
        ]

    return named(_PARENTHESES.sub(" ", text)) or named(text)


class WordIndex:
    """Where each word occurs in a text, for phrase and word look-ups in one pass; and the
    text's acronyms as written (upper case), which case-folding would confuse with words
    ("IS", the Inception Score, is not "is")."""

    def __init__(self, text: str) -> None:
        self.words = words(text)
        self.positions: dict[str, list[int]] = {}
        for position, word in enumerate(self.words):
            self.positions.setdefault(word, []).append(position)
        self._sorted = sorted(self.positions)
        self.acronyms = frozenset(_ACRONYM.findall(text))
        self._initials = "".join(w[0] for w in self.words)

    def __len__(self) -> int:
        return len(self.words)

    def find(self, word: str, *, abbreviated: bool = False) -> list[int]:
        """Positions of ``word`` (already stemmed); with ``abbreviated``, also of the
        words it is an abbreviation of ("acc" -> "accuracy", "avg" -> "average")."""
        found = list(self.positions.get(word, ()))
        if abbreviated and word in ABBREVIATIONS:
            found += self.positions.get(stem(ABBREVIATIONS[word]), [])
        if abbreviated and len(word) >= MIN_PREFIX and word.isalpha():
            start = bisect_left(self._sorted, word)
            for other in self._sorted[start:]:
                if not other.startswith(word):
                    break
                if other != word:
                    found += self.positions[other]
        return sorted(found)

    def contains(self, word: str, *, abbreviated: bool = False) -> bool:
        return bool(self.find(word, abbreviated=abbreviated))

    def near(self, terms: Sequence[str], window: int, *, abbreviated: bool = False) -> bool:
        """Whether every word of ``terms`` occurs within one stretch of ``window`` words."""
        unique = list(dict.fromkeys(terms))
        if not unique:
            return False
        hits = sorted(
            (position, i)
            for i, term in enumerate(unique)
            for position in self.find(term, abbreviated=abbreviated)
        )
        counts: dict[int, int] = {}
        left = 0
        for position, i in hits:  # a sliding window over the hits in text order
            counts[i] = counts.get(i, 0) + 1
            while position - hits[left][0] >= window:
                j = hits[left][1]
                counts[j] -= 1
                if not counts[j]:
                    del counts[j]
                left += 1
            if len(counts) == len(unique):
                return True
        return False

    def spelled_out(self, acronym: str) -> bool:
        """Whether consecutive content words of the text have ``acronym``'s letters as their
        initials ("NLL": "negative log-likelihood"); three letters at least, since two would
        be found by chance."""
        letters = acronym.casefold()
        if len(letters) < 3 or not letters.isalpha():
            return False
        for match in re.finditer(f"(?={re.escape(letters)})", self._initials):
            run = self.words[match.start() : match.start() + len(letters)]
            if not any(w in STOPWORDS for w in run):
                return True
        return False


def metric_terms(metric: str) -> list[str]:
    """The words of a metric that must occur in the paper: parentheses ("FID (lower is
    better)", "accuracy (%)") and function words left out, unless nothing else is left."""
    outside = _PARENTHESES.sub(" ", metric)
    terms = [w for w in words(outside) if w not in STOPWORDS]
    return terms or [w for w in words(metric) if w not in STOPWORDS]


def metric_in_text(metric: str, paper: WordIndex) -> bool:
    """Whether ``metric`` occurs in the paper.

    All its words within a few words of each other, case ignored ("top-1 acc." in "... top-1
    accuracy ...", "accuracies" for "accuracy"); a word may abbreviate the paper's ("acc." ->
    "accuracy"). A metric written as one acronym ("IS", "NLL") counts where the paper writes it
    in capitals, or spells it out ("negative log-likelihood"); a metric of several words counts
    where the paper writes its initials ("Frechet Inception Distance" -> "FID").
    """
    bare = _PARENTHESES.sub(" ", metric).strip() or metric.strip()
    if _ACRONYM.fullmatch(bare):
        if bare in paper.acronyms or paper.spelled_out(bare):
            return True
        if stem(bare.casefold()) in STOPWORDS:  # "IS" is not the word "is"
            return False
    terms = metric_terms(metric)
    if not terms:
        return False
    if paper.near(terms, window=3 * len(terms) + 2, abbreviated=True):
        return True
    initials = "".join(t[0] for t in terms if t[0].isalpha())
    return len(terms) >= 2 and len(initials) == len(terms) and initials.upper() in paper.acronyms


@dataclass(frozen=True)
class Grounding:
    """Which content words of an ablated part occur in the method section."""

    part: str
    found: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def fraction(self) -> float:
        total = len(self.found) + len(self.missing)
        return len(self.found) / total if total else 0.0


# An ablated part is grounded when at least this share of its content words occur in the
# method section. Not all of them: a paper's own wording of a part ("hard-negative mining",
# "total cutoff time") may use a word its method text does not; but an invented part ("the 8
# attention heads of the fusion encoder" in a paper with attention and an encoder but no
# fusion and no heads) misses half of its distinctive words.
GROUNDED_FRACTION = 2 / 3


def grounding(part: str, method: WordIndex) -> Grounding:
    """The content words of ``part`` found in (and missing from) the method section; a word
    may abbreviate one of the method's."""
    terms = list(dict.fromkeys(content_words(part)))
    found = tuple(t for t in terms if method.contains(t, abbreviated=True))
    return Grounding(part, found, tuple(t for t in terms if t not in found))


def is_grounded(result: Grounding, threshold: float = GROUNDED_FRACTION) -> bool:
    """At least ``threshold`` of the part's content words occur in the method section (a
    part with no content words, "the 8", is not grounded)."""
    return bool(result.found) and result.fraction >= threshold - 1e-9


# ---------------------------------------------------------------------------- papers


@dataclass
class PaperText:
    """A paper's texts as the checks need them: the loaded paper (what the planner reads:
    the example-copy check), everything it says (``text`` and the raw ``source``: metrics)
    and its method section (grounding)."""

    text: str
    method_text: str
    source: str = ""
    index: WordIndex = field(init=False, repr=False)
    method_index: WordIndex = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = WordIndex(f"{self.text}\n\n{self.source}" if self.source else self.text)
        self.method_index = WordIndex(self.method_text)

    @classmethod
    def of(cls, paper: Paper, *, source: str = "") -> PaperText:
        """From a loaded paper, and optionally its raw ``source`` (the LaTeX files): a
        loaded paper leaves tables out, and a paper's metrics are often named only in its
        tables' headers. The method section is every section whose role is "method" (with its
        headings); a paper without one is grounded against its whole text, since no part of it
        can be told apart as the method."""
        method = [
            f"{section.heading}\n{section.text}"
            for section in paper.walk()
            if section.role == "method"
        ]
        text = paper.to_markdown()
        return cls(text=text, method_text="\n\n".join(method) or text, source=source)


def instance_text(instance: Instance) -> PaperText:
    """The texts of a dataset instance's paper: loaded as the planner loads it, plus the raw
    source of a paper folder (``ablationbench.source.raw_source``, confined to the folder;
    left out if it cannot be read, since the loaded paper is then all there is)."""
    from ablationkit.ablationbench.source import raw_source

    paper = instance.load()
    source = ""
    if instance.path and Path(instance.path).is_dir():
        try:
            source = raw_source(instance.checked_path()).text
        except AblationKitError:
            source = ""
    return PaperText.of(paper, source=source)


# ---------------------------------------------------------------------------- validity


@dataclass
class PlanCheck:
    """One paper's plan, checked. ``written``: a schema-valid plan exists (``error`` says why
    not); every list names the items that failed a check, and why."""

    paper_id: str
    mode: Mode
    asked: int
    written: bool = False
    error: str | None = None
    items: int = 0
    copied: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    metrics: int = 0
    metrics_found: int = 0
    metrics_missing: list[str] = field(default_factory=list)
    parts: int = 0
    parts_grounded: int = 0
    parts_ungrounded: list[str] = field(default_factory=list)


def check_plan(
    plan: Plan | None,
    paper: PaperText,
    *,
    paper_id: str,
    mode: Mode,
    k: int,
    error: str | None = None,
) -> PlanCheck:
    """Check one plan against its paper (``plan`` None: it failed, ``error`` says why).

    Metrics are counted once per plan (case-insensitive): a model that repeats one metric
    list on every item is judged on that list, not five times over.
    """
    check = PlanCheck(paper_id=paper_id, mode=mode, asked=k, error=error)
    if plan is None:
        check.error = error or "no plan"
        return check
    check.written, check.items = True, len(plan.ablations)
    metrics: dict[str, str] = {}
    for ablation in plan.ablations:
        _check_item(check, ablation, paper)
        for metric in ablation.metrics:
            metrics.setdefault(" ".join(str(metric).split()).casefold(), str(metric))
    check.metrics = len(metrics)
    for metric in metrics.values():
        if metric_in_text(metric, paper.index):
            check.metrics_found += 1
        else:
            check.metrics_missing.append(metric)
    return check


def _check_item(check: PlanCheck, ablation: Ablation, paper: PaperText) -> None:
    """Add one item's copy, placeholder and grounding checks to ``check``."""
    copied = example_copy(ablation, paper.text)
    if copied:
        check.copied.append(f"{ablation.name}: {copied}")
    vague = placeholder(ablation)
    if vague:
        check.placeholders.append(f"{ablation.name}: {vague}")
    check.parts += 1
    result = grounding(ablation.ablated_part, paper.method_index)
    if is_grounded(result):
        check.parts_grounded += 1
    else:
        missing = ", ".join(result.missing) or "no content words"
        check.parts_ungrounded.append(f"{ablation.ablated_part} (not in the method: {missing})")


@dataclass
class ValidityCounts:
    """Validity figures summed over plans: how many plans were asked for and written, items
    asked for (k per paper) and written, and each check's count."""

    plans_asked: int = 0
    plans_written: int = 0
    items_asked: int = 0
    items: int = 0
    short_plans: int = 0
    copied: int = 0
    placeholders: int = 0
    metrics: int = 0
    metrics_found: int = 0
    parts: int = 0
    parts_grounded: int = 0

    @property
    def metrics_fraction(self) -> float | None:
        return self.metrics_found / self.metrics if self.metrics else None

    @property
    def grounded_fraction(self) -> float | None:
        return self.parts_grounded / self.parts if self.parts else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "metrics_fraction": self.metrics_fraction,
            "grounded_fraction": self.grounded_fraction,
        }


def count_validity(checks: Iterable[PlanCheck]) -> ValidityCounts:
    """The sums of ``checks``; a plan is short when it has fewer items than were asked for."""
    counts = ValidityCounts()
    for check in checks:
        counts.plans_asked += 1
        counts.items_asked += check.asked
        if not check.written:
            continue
        counts.plans_written += 1
        counts.items += check.items
        counts.short_plans += check.items < check.asked
        counts.copied += len(check.copied)
        counts.placeholders += len(check.placeholders)
        counts.metrics += check.metrics
        counts.metrics_found += check.metrics_found
        counts.parts += check.parts
        counts.parts_grounded += check.parts_grounded
    return counts


# ---------------------------------------------------------------------------- scores


@dataclass
class ScoreSummary:
    """Macro P/R/F1 over ``papers`` with 95% bootstrap intervals (papers resampled);
    ``failed`` lists the papers counted as 0 and why."""

    papers: int
    precision: float
    recall: float
    f1: float
    ci95: dict[str, tuple[float, float]]
    failed: dict[str, str]


def summarise_scores(
    scores: Sequence[PaperScore], *, resamples: int = 1000, seed: int = 0
) -> ScoreSummary:
    """Pool per-paper scores (of one model and mode, over several runs) into macro figures
    with bootstrap intervals (``judge.metrics.bootstrap_ci``, seeded)."""
    macro = macro_prf(scores)
    return ScoreSummary(
        papers=len(scores),
        precision=macro["precision"],
        recall=macro["recall"],
        f1=macro["f1"],
        ci95=bootstrap_ci(scores, macro_prf, resamples=resamples, seed=seed),
        failed={s.paper_id: s.error for s in scores if s.error is not None},
    )


def paper_score(result: PaperResult) -> PaperScore:
    """A ``PaperScore`` from a ``judge.metrics.PaperResult`` (``scores.json``'s per-paper
    row): the counts are copied and the figures recomputed from them."""
    return PaperScore(
        paper_id=result.paper_id,
        planned=result.planned,
        matched_planned=result.matched_planned,
        targets=result.targets,
        matched_targets=result.matched_targets,
        error=result.error,
    )


# ---------------------------------------------------------------------------- time


TIME_FIELDS = ("load_s", "prompt_s", "generation_s", "total_s")


@dataclass
class TimeSplit:
    """Seconds per paper, mean and median of each part over the plans that report it
    (``plans`` counted). Load is reading the paper and building the prompt; prompt is the
    model's processing of the prompt; generation is writing the reply (all calls summed)."""

    plans: int
    mean: dict[str, float | None]
    median: dict[str, float | None]


def time_split(plans: Iterable[Plan]) -> TimeSplit:
    """The load / prompt / generation / total split of ``plans``' own ``timings``."""
    values: dict[str, list[float]] = {name: [] for name in TIME_FIELDS}
    count = 0
    for plan in plans:
        count += 1
        if plan.timings is None:
            continue
        for name in TIME_FIELDS:
            value = getattr(plan.timings, name)
            if value is not None:
                values[name].append(value)
    return TimeSplit(
        plans=count,
        mean={n: statistics.fmean(v) if v else None for n, v in values.items()},
        median={n: statistics.median(v) if v else None for n, v in values.items()},
    )


def plan_prompt_rate(plans: Iterable[Plan]) -> float | None:
    """Prompt tokens per second of the model as the plans measured it: the tokens the
    runtime computed over their prompt seconds, pooled (plans without a prompt time are left
    out; None if no plan has one). Plans made before ``Timings.prompt_computed`` count all
    their prompt tokens: a repair or follow-up call, or a batch's shared system prompt,
    reuses the runtime's cache, so those read fast (by 1.6x on the embedded model)."""
    tokens, seconds = 0, 0.0
    for plan in plans:
        timings = plan.timings
        if timings and timings.prompt_s and plan.usage:
            computed = timings.prompt_computed
            tokens += computed if computed is not None else plan.usage.prompt_tokens
            seconds += timings.prompt_s
    return tokens / seconds if seconds else None


FILLER = (
    "Ablation studies remove or replace one component of a method at a time to measure its "
    "contribution to the results, and report the change in the paper's own metrics. "
)


@dataclass
class RawRate:
    """The runtime's own prompt processing, timed without ablationkit: ``tokens`` per call,
    the ``rates`` of each timed call and their median."""

    tokens: int
    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def measure_raw_prompt_rate(
    raw_chat: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    repeats: int = 45,
    rounds: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> RawRate:
    """Prompt tokens per second of a raw runtime call (``EmbeddedServer.raw_chat``), as
    llama-bench's prompt-processing figure: a ~1,500-token prompt (``repeats`` fillers) and
    one generated token, so the time is the prompt's. Each round's prompt starts with its own
    tag, so no prompt is answered from the runtime's cache; a short warm-up call goes first.
    The server's own ``timings`` (``prompt_n`` / ``prompt_ms``) are used when the reply has
    them, else the wall time of the call."""

    def call(text: str) -> tuple[dict[str, Any], float]:
        started = clock()
        reply = raw_chat(
            {
                "messages": [{"role": "user", "content": text}],
                "max_tokens": 1,
                "temperature": 0,
                "cache_prompt": False,
            }
        )
        return reply, clock() - started

    call(f"Warm-up {time.time()}: say yes.")
    tokens, rates = 0, []
    for round_ in range(rounds):
        reply, wall = call(f"Round {round_} at {time.time()}. " + FILLER * repeats)
        timings = reply.get("timings") or {}
        counted = int(timings.get("prompt_n") or reply.get("usage", {}).get("prompt_tokens") or 0)
        seconds = float(timings.get("prompt_ms") or 0) / 1000 or wall
        tokens = max(tokens, counted)
        if counted and seconds > 0:
            rates.append(counted / seconds)
    if not rates:
        raise ValueError("the runtime reported no prompt tokens: no rate to measure")
    return RawRate(tokens=tokens, rates=rates)


# ---------------------------------------------------------------------------- one variant


def instances_for(instances: Iterable[Instance], mode: Mode) -> list[Instance]:
    """The instances to plan in ``mode``: all of them in reviewer mode, and in author mode
    all but the rows that are reviewer-mode in the dataset (their ground truth is what the
    reviewers asked for, which an author-mode plan is not asked to find)."""
    return [i for i in instances if mode == "reviewer" or i.mode != "reviewer"]


def asks_for_requests(instance: Instance) -> bool:
    """Whether the instance's targets are what reviewers asked for (it has reviews or a
    count of requests), not the ablations the paper reports. In reviewer mode only those are
    right answers; a match with a reported ablation is a repeat of it (a "missing" ablation
    the paper already has)."""
    return bool(instance.reviews) or instance.target_count is not None


@dataclass
class Repeats:
    """Reviewer-mode plans of papers whose targets are their reported ablations: how many
    planned items (of ``items``, within k) match a reported ablation, and on which papers."""

    papers: int = 0
    items: int = 0
    repeated: int = 0
    by_paper: dict[str, int] = field(default_factory=dict)


@dataclass
class VariantFigures:
    """Everything the quality benchmark reports for one model (and strategy) in one mode,
    pooled over its runs (one per dataset).

    ``scores``: macro P/R/F1 against the right answers: in author mode the paper's reported
    ablations; in reviewer mode the reviewers' requests (None when no paper has any), with
    ``repeats`` counting matches of reported ablations instead. ``prompt_rate``: prompt tokens
    per second measured by the plans (``plan_prompt_rate``).
    """

    label: str
    model: str
    mode: Mode
    judge: str
    k: int | None
    scores: ScoreSummary | None
    repeats: Repeats | None
    validity: ValidityCounts
    checks: list[PlanCheck]
    time: TimeSplit
    prompt_rate: float | None
    runs: list[str]


def variant_figures(
    records: Sequence[RunRecord],
    *,
    label: str,
    model: str,
    mode: Mode,
    judge: str,
    texts: Callable[[Instance], PaperText],
    resamples: int = 1000,
    seed: int = 0,
) -> VariantFigures:
    """The figures of one model in one mode from its judged runs (``read_run``).

    ``judge`` names the judge whose verdicts count (``Judge.name``); ``texts`` gives a
    paper's texts (``instance_text``, cached by the caller: every variant reads the same
    papers). Every paper the runs were asked to plan is counted: a failed plan is 0 in the
    scores and an unwritten plan in the validity counts.
    """
    scored: list[PaperScore] = []
    repeats = Repeats() if mode == "reviewer" else None
    checks: list[PlanCheck] = []
    plans: list[Plan] = []
    ks: set[int] = set()
    for record in records:
        instances = record.instances
        if instances is None:
            raise AblationKitError(
                "cannot read the run's dataset: " + "; ".join(record.warnings),
                where=record.path,
            )
        config = record.plan_config
        k = config.k if config and config.k else 5
        ks.add(k)
        per_paper = record.judge_scores(judge, resamples=0).per_paper
        failures = record.plan_failures()
        for paper_id, instance in instances.items():
            plan = record.plans.get(paper_id)
            checks.append(
                check_plan(
                    plan,
                    _text_or_blank(texts, instance),
                    paper_id=paper_id,
                    mode=mode,
                    k=k,
                    error=failures.get(paper_id),
                )
            )
            if plan is not None:
                plans.append(plan)
            if repeats is not None and not asks_for_requests(instance):
                repeats.papers += 1
                verdict = record.judgements.get(judge, {}).get(paper_id)
                if plan is not None:
                    repeats.items += min(k, len(plan.ablations))
                if verdict is not None and verdict.error is None:
                    count = len(verdict.matched_planned() & set(range(k)))
                    repeats.repeated += count
                    repeats.by_paper[paper_id] = count
                continue
            result = per_paper.get(paper_id)
            scored.append(
                paper_score(result)
                if result is not None
                else PaperScore.failure(paper_id, "not judged", k=k, targets=_targets(instance))
            )
    return VariantFigures(
        label=label,
        model=model,
        mode=mode,
        judge=judge,
        k=ks.pop() if len(ks) == 1 else None,
        scores=summarise_scores(scored, resamples=resamples, seed=seed) if scored else None,
        repeats=repeats,
        validity=count_validity(checks),
        checks=checks,
        time=time_split(plans),
        prompt_rate=plan_prompt_rate(plans),
        runs=[str(record.path) for record in records],
    )


def _text_or_blank(texts: Callable[[Instance], PaperText], instance: Instance) -> PaperText:
    """The paper's texts; blank if it cannot be loaded (then it has no plan either: the
    planner loads it the same way, and its failure is what the check reports)."""
    try:
        return texts(instance)
    except AblationKitError:
        return PaperText(text="", method_text="")


def _targets(instance: Instance) -> int:
    return len(instance.ground_truth) or instance.target_count or 0


def figures_json(figures: VariantFigures) -> dict[str, Any]:
    """``figures`` as plain JSON data (the benchmark's ``--json``), derived fractions
    included."""
    data = asdict(figures)
    data["validity"] = figures.validity.as_dict()
    return data
