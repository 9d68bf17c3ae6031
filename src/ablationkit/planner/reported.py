"""What a paper already ablates, so that a reviewer-mode plan never proposes it again.

Reviewer mode asks for the ablations a submission is *missing*. A small model reading a long
paper easily misses the ablations it does report: the embedded 1.5B model wrote "the paper
does not report any ablation studies" about a paper whose §3.3 is titled "Ablations", then
proposed one of them. So the planner finds them itself, from the paper's structure and
without a model call:

- section titles: "Ablation study", "Analysis", "Sensitivity to X", "Effect of X",
  "Without X", "Component analysis"; the subsections and run-in paragraph headings of such a
  section ("Mask scheduling.", "Comparing configuration spaces");
- captions (``[Table 2: …]`` as every loader writes them) that say ablation, "w/o",
  "without", "effect of", "varying", "comparison of", "vs.", and every caption of an
  ablation section;
- sentences of the experiments, ablation and appendix sections: "we ablate X", "removing X",
  "replacing X with Y", "X instead of Y", "we vary X", "the effect of X", "K ∈ {8, 16, 32}".

``reported_ablations`` lists them (the paper's words, and where), the reviewer prompt shows
the list, and ``drop_reported`` removes planned items that repeat one of them, by a cheap
lexical test (stemmed content words shared with a reported description). Everything here is
linear in the paper's length: every pattern is a bounded run of one character class, with no
nested repetition, so a megabyte paper cannot make a regex backtrack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice

from ablationkit.papers.model import Paper, Section
from ablationkit.papers.roles import system_names
from ablationkit.planner.hints import PaperHints
from ablationkit.schema import Ablation, Action

__all__ = [
    "ReportedAblation",
    "correct_reasoning",
    "drop_reported",
    "matching_reported",
    "render_reported",
    "reported_ablations",
    "unreported_hints",
    "without_reported",
]

# How many reported items a paper may yield (a thesis with a hundred tables still gives the
# prompt a readable list), and how many words one description keeps.
MAX_REPORTED = 40
MAX_DESCRIPTION_WORDS = 16
# The prompt shows at most this many (the filter uses all of them).
PROMPT_REPORTED = 20
# Cue matches read per pattern and section: a paper's ablation section has tens.
MAX_CUES = 100


@dataclass(frozen=True)
class ReportedAblation:
    """One ablation the paper reports: what it varies in the paper's words (``description``,
    shown in the prompt), where (a section or a caption), the sentence or caption it was read
    from (``context``, matched against but never shown) and the paper's system names
    (``paper_names``: every item of the paper names them, so they tell no two apart)."""

    description: str
    where: str
    context: str = ""
    paper_names: tuple[str, ...] = ()

    def render(self) -> str:
        return f"{self.description} ({self.where})"


# --- words ----------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    """a an the of to in on for and or with without w o by from its it their this that these
    those is are was were be been being as at into per each all any both our we us they them
    i e g eg ie vs versus via than then also only not no more less most least very much many
    such which while when where who whose how what why can could may might will would should
    has have had do does did so if but over under between among across within using use used
    uses one two three four five six seven eight nine ten first second third other others
    another same some several various different new original default proposed full instead
    whether either neither up down out about above below after before again further here
    there case cases e.g i.e""".split()
)
# Words that say "an ablation" or "a part of the method" but not which part: two items
# sharing only these share nothing.
_GENERIC = frozenset(
    """model models method methods module modules performance approach approaches framework
    frameworks system systems network networks component components part parts ablation
    ablations ablate ablated ablating ablative study studies studied effect effects impact
    impacts influence role importance contribution contributions analysis analyses result
    results experiment experiments experimental paper work setting settings setup setups
    value values choice choices option options alternative alternatives variant variants
    version versions strategy strategies type types kind kinds number numbers version design
    remove removed removing removal replace replaced replacing replacement add added adding
    addition vary varied varying variation sweep sweeps swept compare compared comparing
    comparison comparisons evaluate evaluated evaluation test tested testing baseline
    baselines score scores accuracy quality metric metrics table tables figure figures fig
    section sections appendix shown show shows report reported reports simple simpler
    complex standard typical whole entire overall final main key better worse best worst
    gain gains cost costs point points improve improves improved improvement degrade
    degrades drop drops sensitivity sensitive hyperparameter hyperparameters parameter
    parameters procedure process step steps stage stages technique techniques mechanism
    mechanisms function functions term terms""".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,40}|[0-9]{1,12}(?:\.[0-9]{1,12})?")
_SUFFIXES = (
    "izations", "isations", "ization", "isation", "ational", "ations", "ation", "atives",
    "ative", "ising", "ised", "ises", "ise", "ities",
    "ity", "ings", "ing", "ness", "ments", "ment", "ives", "ive", "ers", "er", "ies", "ied",
    "es", "ed", "ly", "al", "s",
)  # fmt: skip


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A crude English stem: enough that "scheduling", "schedule" and "schedules" meet, and
    "regularisation" meets "regularization" and "regularised" (two passes of suffixes)."""
    word = word.lower()
    if len(word) > 5:
        word = word.replace("iz", "is")  # "regularization", not "size"
    for _ in range(2):
        for suffix in _SUFFIXES:
            least = 4 if suffix in ("ed", "er", "ise") else 3
            if word.endswith(suffix) and len(word) - len(suffix) >= least:
                if suffix == "s" and word.endswith(("ss", "us", "is")):
                    continue
                if suffix == "es" and not word.endswith(("sses", "xes", "ches", "shes", "zes")):
                    continue
                word = word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
                break
        else:
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeious":
        word = word[:-1]  # "embedd(ing)" meets "embed"
    return word


_GENERIC_STEMS = frozenset(stem(w) for w in _GENERIC)
_STOP_STEMS = frozenset(stem(w) for w in _STOPWORDS)


# A one-letter word is a symbol ("K", "T", "p = 1") when upper-case or followed by "=" / "∈".
_SYMBOL_NEXT = re.compile(r"\s{0,3}(?:=|∈|\\in\b)")


def content_stems(text: str, extra_generic: Iterable[str] = ()) -> frozenset[str]:
    """The stems of ``text``'s content words: stopwords, generic words ("model", "module",
    "performance", "ablation") and ``extra_generic`` stems removed. Symbols are kept
    (``$k`` for "K"), and numbers other than the digits 0-9 ("K = 16" meets "{8, 16, 32}";
    a "1" or a "5" is in every other sentence)."""
    generic = _GENERIC_STEMS | frozenset(extra_generic)
    stems: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word[0].isdigit():
            if "." in word or len(word) > 1:
                stems.add(word)
            continue
        if len(word) == 1:
            upper = word.isupper() and word not in "AI"
            if upper or _SYMBOL_NEXT.match(text, match.end()):
                stems.add("$" + word.lower())
            continue
        lowered = word.lower()
        if lowered in _STOPWORDS:
            continue
        stemmed = stem(lowered)
        if stemmed not in generic and stemmed not in _STOP_STEMS:
            stems.add(stemmed)
    return frozenset(stems)


# --- extraction -----------------------------------------------------------------------------

# Headings that make a section an ablation region (its sentences, captions, subsections and
# run-in paragraph headings are all taken as reported ablations), on normalised words.
_ABLATION_TITLE = re.compile(
    r"\b(?:ablat\w{0,12}|sensitivity|analys[ie]s|component\w{0,3} (?:analysis|study)|"
    r"design (?:choices?|decisions?|space)|model variants?|what matters|"
    r"contribution of (?:each|the|individual))\b"
)
# Headings that name what they vary: "Effect of the margin", "Without warm-up".
_TITLE_OBJECT = re.compile(
    r"^(?:the )?(?:effects?|impacts?|influence|importance|role|choice|sensitivity|analysis|"
    r"ablations?|study|contribution|benefits?|necessity)"
    r"(?: study| analysis)? (?:of|to|on) (?P<x>.{2,200})$"
    r"|^(?:without|w o|removing|replacing|varying|comparing|alternatives? to|"
    r"on the (?:effect|role|choice) of) (?P<y>.{2,200})$"
)
# "[Table 2: …]", as every loader writes a caption; one level of brackets inside (citations).
_CAPTION = re.compile(
    r"\[(?P<kind>Table|Figure|Fig\.|Algorithm) (?P<num>[^\s:\]]{1,12}): "
    r"(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]{0,200}\]){1,2000})\]"
)
_CAPTION_CUE = re.compile(
    r"\b(?:ablat\w{0,12}|w/o|without|effects? of|impacts? of|influence of|varying|"
    r"vary|varied|sensitivity|comparisons? (?:of|between|among)|choices? of|"
    r"different (?:values|numbers|choices|settings|sizes|types)|vs\.?|versus)(?!\w)",
    re.IGNORECASE,
)
# Captions of the main results: the method against others ("comparison with the baselines",
# "between VQGAN and ours"), unless they say ablation.
_CAPTION_MAIN_RESULTS = re.compile(
    r"\bcomparisons? (?:of [^.]{0,80}?)?(?:with|to|against)\b|\bstate[- ]of[- ]the[- ]art\b|"
    r"\bbaselines\b|\bours\b|\bour (?:proposed )?(?:method|model|approach|system)\b",
    re.IGNORECASE,
)
_CAPTION_ABLATION = re.compile(r"\bablat|\bw/o\b|\bwithout\b", re.IGNORECASE)
_CAPTION_LEAD = re.compile(
    r"^(?:[\w$^{}\\-]{1,20} ){0,2}?(?:ablation (?:results?|stud(?:y|ies)|experiments?)|"
    r"ablations?|comparisons?|effects?|impacts?|influence|choices?|sensitivity|"
    r"results?|analysis)(?: (?:on|of|between|among|for|to|with respect to))? (?:the )?",
    re.IGNORECASE,
)
_ABBREVIATION = re.compile(r"\b(?:vs|e\.g|i\.e|cf|fig|figs|eq|eqs|sec|tab|al|resp|approx)$", re.I)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
# Sentence cues: what follows is the varied component. Strong cues count in every results
# section, the others only inside an ablation region ("without" and "we compare" are
# everywhere in a paper). Each captured run is one bounded character class.
_PHRASE = r"(?P<x>[^,.;:!?()\[\]\n]{2,160})"
_STRONG_CUES = re.compile(
    r"\b(?:we (?:also |further |then |first |next )?(?:ablated?|removed?|dropped|disabled?|"
    r"vary|varied|sweep|swept|replaced?|swapped)|removing|ablating|replacing|swapping|"
    r"substituting|varying|w/o|(?:effects?|impacts?|influence|contributions?|sensitivity|"
    r"benefits?|importance) (?:of|to)|instead of)\s+" + _PHRASE,
    re.IGNORECASE,
)
_REGION_CUES = re.compile(
    r"\b(?:without(?! replacement)|dropping|disabling|discarding|excluding|omitting|"
    r"increas(?:e|es|ed|ing)|decreas(?:e|es|ed|ing)|reduc(?:e|es|ed|ing)|halving|doubling|"
    r"we (?:also |further |then |first |next )?(?:compared?|study|studied|examined?|"
    r"investigated?|analy[sz]ed?|evaluated?|tested)|compared (?:it |them )?(?:with|to|against)|"
    r"(?:alternatives?|options|variants|choices) (?:for|to|of))\s+" + _PHRASE,
    re.IGNORECASE,
)
# "the budget $K\in \{8, 16, 32\}$", "K ∈ {8, 16, 32}": a swept set of values. Found by
# the set itself; what it is a set of is read from the words before it (``_subject``).
_SWEEP = re.compile(r"(?:\\in\b|∈)\s{0,3}\\?\{\s{0,3}(?P<v>[0-9][0-9., %a-z-]{0,80})\\?\}")
# "A gate temperature of 0.25 or 1.0": values listed for a quantity (ablation regions only).
_VALUES = re.compile(
    r" (?:of|=|at|to|from|with) \$?"
    r"(?P<v>[0-9][0-9.]{0,10}(?:, [0-9][0-9.]{0,10}){0,8},? (?:or|and|to) [0-9][0-9.]{0,10})"
)
_SUBJECT_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,30}")
# A run-in heading at the start of a paragraph of an ablation region: "Mask scheduling. …"
_RUN_IN = re.compile(r"(?:^|\n\n)(?P<x>[A-Z][A-Za-z0-9 /-]{2,60})\.\s+(?=[A-Z])")
# Where a captured phrase ends: the verb after its noun phrase, or (except after "we
# compare", whose object runs on: "options for the sequence encoder") a preposition.
_PHRASE_END_VERB = (
    r"\s(?:costs?|gives?|leads?|results?|yields?|improves?|hurts?|reduces?|increases?|"
    r"decreases?|degrades?|makes?|made|is|are|was|were|has|have|had|shows?|showed|"
    r"performs?|achieves?|causes?|drops?|brings?|harms?|helps?|does|did|can|could|"
    r"would|will|may|might|since|because|which|that|while|whereas|so|but|than|when|if|"
    r"whether|changed?|changes|matters?|improved|worsened|helped|hurt|as shown|see)\b"
)
_PHRASE_END = re.compile(_PHRASE_END_VERB + r"|\s(?:on|to|in|at|for|across|under)\b", re.IGNORECASE)
_PHRASE_END_COMPARE = re.compile(_PHRASE_END_VERB, re.IGNORECASE)
_SPACES = re.compile(r"\s+")
# Words a description does not start with ("in total cutoff time", "A gate temperature").
_LEADING = frozenset("a an in of on to with by for from into at".split())
# A phrase that starts with a pronoun names nothing ("replacing it with Fashion MNIST").
_PRONOUN = re.compile(r"^(?:it|them|this|that|these|those|they|which|each|every|all)\b", re.I)
_CITATION = re.compile(r"\[[^\[\]\n]{0,200}\]")
_TEX_COMMAND = re.compile(
    r"\\(?:text\w{0,4}|mathrm|mathbf|mathit|mathcal|operatorname|emph)\s{0,3}\{([^{}\n]{0,80})\}"
)
_RESULTS_ROLES = frozenset({"experiments", "ablation", "appendix"})
_CONTEXT_CHARS = 400


def _clean(text: str) -> str:
    """One line, math readable ("$K\\in \\{8, 16\\}$" -> "K ∈ {8, 16}"), citations out, at
    most ``MAX_DESCRIPTION_WORDS`` words."""
    text = _CITATION.sub("", text)
    text = _TEX_COMMAND.sub(r"\1", text)
    text = text.replace("\\in", "∈").replace("\\{", "{").replace("\\}", "}").replace("$", "")
    text = re.sub(r"\\([A-Za-z]{1,20})", r"\1", text)
    words = _SPACES.sub(" ", text).strip(" -–—,;:").split(" ")
    while len(words) > 1 and words[0].lower() in _LEADING:
        words = words[1:]
    if len(words) > MAX_DESCRIPTION_WORDS:
        words = [*words[:MAX_DESCRIPTION_WORDS], "…"]
    return " ".join(words)


def _phrase(text: str, ends: re.Pattern[str] = _PHRASE_END) -> str:
    """The noun phrase at the start of ``text``: up to the verb or preposition that ends it."""
    end = ends.search(text, 1)
    if end is not None:
        text = text[: end.start()]
    return _clean(text)


def _first_sentence(text: str) -> str:
    for match in re.finditer(r"\.\s+(?=[A-Z])", text):
        if not _ABBREVIATION.search(text, max(0, match.start() - 6), match.start()):
            return text[: match.start()]
    return text.rstrip(".")


def _sentence_around(text: str, start: int, end: int) -> str:
    """The sentence holding ``text[start:end]`` (at most ``_CONTEXT_CHARS`` either side)."""
    before = text[max(0, start - _CONTEXT_CHARS) : start]
    begins = 0
    for stop in _SENTENCE_END.finditer(before):
        begins = stop.end()
    head = before[begins:]
    after = _SENTENCE_END.search(text, end, end + _CONTEXT_CHARS)
    tail = text[end : after.start() if after else end + _CONTEXT_CHARS]
    return _SPACES.sub(" ", head + text[start:end] + tail).strip()


def _where(section: Section) -> str:
    return f"§{section.heading}" if section.number else f"“{section.title}”"


def _normalised(title: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", title.lower()))


def _is_ablation_title(title: str) -> bool:
    return bool(_ABLATION_TITLE.search(_normalised(title)))


def _title_object(title: str) -> str | None:
    """What a heading says it varies ("Effect of the margin" -> "the margin"), or None."""
    match = _TITLE_OBJECT.match(_normalised(title))
    if match is None:
        return None
    kept = len((match.group("x") or match.group("y")).split())
    words = _clean(title).split(" ")
    return " ".join(words[-kept:]) if kept < len(words) else None


def _captions(section: Section, *, region: bool) -> Iterator[ReportedAblation]:
    for match in _CAPTION.finditer(section.text):
        text = match.group("text")
        first = _first_sentence(text)
        if not region and not _CAPTION_CUE.search(first):
            continue
        if _CAPTION_MAIN_RESULTS.search(first) and not _CAPTION_ABLATION.search(first):
            continue  # the main results against other methods, not an ablation
        kind = "Fig." if match.group("kind").startswith("Fig") else match.group("kind")
        description = _clean(_CAPTION_LEAD.sub("", first, count=1))
        if description:
            yield ReportedAblation(
                description, f"{kind} {match.group('num')} caption", text[:_CONTEXT_CHARS]
            )


def _from_cue(text: str, match: re.Match[str]) -> str:
    cue = text[match.start() : match.start("x")].lower().strip()
    phrase = match.group("x")
    if cue == "instead of":
        # "Training the scorer on CLIP similarity instead of distilled answer likelihood"
        before = re.split(r"[.;:!?()\[\]\n]", text[max(0, match.start() - 120) : match.start()])
        return f"{_clean(before[-1])} instead of {_phrase(phrase)}"
    if cue.startswith(("replacing", "swapping", "substituting", "we replace", "we swap")):
        # keep "X with Y": the replacement is part of what was reported
        return _clean(re.split(r"\s(?:costs?|gives?|leads?|yields?|is|was)\b", phrase)[0])
    if "compare" in cue or cue.startswith(("alternative", "option", "variant", "choice")):
        return _phrase(phrase, _PHRASE_END_COMPARE)
    return _phrase(phrase)


def _subject(text: str, end: int, words: int) -> str:
    """The last ``words`` words before ``end`` in the same clause: what a set of values
    ("K ∈ {8, 16, 32}", "a gate temperature of 0.25 or 1.0") is a set of."""
    clause = re.split(r"[,.;:!?()\[\]\n]", text[max(0, end - 80) : end])[-1]
    return _clean(" ".join(_SUBJECT_WORDS.findall(clause)[-words:]))


def _sentences(section: Section, *, region: bool) -> Iterator[ReportedAblation]:
    """Cue phrases of one section's text (captions taken out), in reading order; at most
    ``MAX_CUES`` per pattern, so a hostile section of cue words costs no more than a paper."""
    text = _CAPTION.sub(" ", section.text)
    where = _where(section)
    found: list[tuple[int, int, str]] = []
    for pattern in (_STRONG_CUES, _REGION_CUES) if region else (_STRONG_CUES,):
        for match in islice(pattern.finditer(text), MAX_CUES):
            found.append((match.start(), match.end(), _from_cue(text, match)))
    for match in islice(_SWEEP.finditer(text), MAX_CUES):
        subject = _subject(text, match.start(), 4)
        if subject:
            values = _clean(match.group("v"))
            found.append((match.start(), match.end(), f"{subject} ∈ {{{values}}}"))
    if region:
        for match in islice(_VALUES.finditer(text), MAX_CUES):
            subject = _subject(text, match.start(), 4)
            if subject:
                found.append((match.start(), match.end(), f"{subject} = {match.group('v')}"))
        for match in islice(_RUN_IN.finditer(text), MAX_CUES):
            if len(match.group("x").split()) <= 6:
                found.append((match.start("x"), match.end("x"), _clean(match.group("x"))))
    for start, end, description in sorted(found, key=lambda item: item[0]):
        if _PRONOUN.match(description):
            continue
        yield ReportedAblation(description, where, _sentence_around(text, start, end))


def _walk(
    sections: Sequence[Section], *, region: bool, results: bool
) -> Iterator[ReportedAblation]:
    for section in sections:
        titled = section.role == "ablation" or _is_ablation_title(section.title)
        inner = region or titled
        scan = results or section.role in _RESULTS_ROLES or inner
        named = _title_object(section.title)
        if named and scan:
            yield ReportedAblation(named, _where(section), section.title)
        elif region and not titled:
            # a subsection of an ablation section names what it varies
            subject = re.sub(r"^(?:comparing|alternatives?|on)\s+", "", section.title, flags=re.I)
            yield ReportedAblation(_clean(subject), _where(section), section.title)
        yield from _captions(section, region=inner)
        if scan:
            yield from _sentences(section, region=inner)
        yield from _walk(section.children, region=inner, results=results)


def reported_ablations(paper: Paper) -> list[ReportedAblation]:
    """The ablations ``paper`` already reports, in reading order, without duplicates.

    Read from the section tree and its roles (``papers.roles``): titles, captions and the
    sentences of the experiments, ablation and appendix sections (of every section when the
    roles found none of those). No model call; linear in the paper's length; at most
    ``MAX_REPORTED`` items.
    """
    names = tuple(system_names(paper.title))
    ignore = _name_stems(names)
    has_results = any(s.role in _RESULTS_ROLES for s in paper.walk())
    found: list[ReportedAblation] = []
    seen: set[frozenset[str]] = set()
    for item in _walk(paper.sections, region=False, results=not has_results):
        stems = content_stems(item.description, ignore)
        if not stems or stems in seen:
            continue
        seen.add(stems)
        found.append(
            ReportedAblation(item.description, item.where, item.context, paper_names=names)
        )
        if len(found) >= MAX_REPORTED:
            break
    return found


@lru_cache(maxsize=256)
def _name_stems(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(stem(w.lower()) for name in names for w in _WORD.findall(name))


def render_reported(reported: Sequence[ReportedAblation], limit: int = PROMPT_REPORTED) -> str:
    """The prompt's list: one "- description (where)" line per item."""
    lines = [f"- {item.render()}" for item in reported[:limit]]
    if len(reported) > limit:
        lines.append(f"- … and {len(reported) - limit} more in the paper's experiments")
    return "\n".join(lines)


# --- matching -------------------------------------------------------------------------------


def _replacement_text(ablation: Ablation) -> str:
    replacement = ablation.replacement
    if isinstance(replacement, dict):
        return " ".join(f"{key} {value}" for key, value in replacement.items())
    return " ".join(str(value) for value in replacement or [])


def matching_reported(
    ablation: Ablation, reported: Sequence[ReportedAblation]
) -> ReportedAblation | None:
    """The reported ablation that ``ablation`` repeats, or None.

    ``ablation``'s component (its name and ablated part, as content stems) must share a stem
    with the reported item's description or context, and then one of: a second shared stem;
    a component of at most two stems ("warm-up", "GRU encoder"); a description wholly
    inside the component ("the diversity term" in "diversity regularisation of the DPP");
    a replacement value that shares a stem too ("DPP" → "uniform sampling" against
    "Replacing the DPP with uniform sampling"). Tuned on the shared papers: ``python
    benchmarks/bench_reported.py`` prints recall and precision.
    """
    best: tuple[float, ReportedAblation] | None = None
    cache: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = {}
    for item in reported:
        if item.paper_names not in cache:
            ignore = _name_stems(item.paper_names)
            part = content_stems(f"{ablation.name} {ablation.ablated_part}", ignore)
            cache[item.paper_names] = (part, content_stems(_replacement_text(ablation), ignore))
        part, replacement = cache[item.paper_names]
        ignore = _name_stems(item.paper_names)
        described = content_stems(item.description, ignore)
        if not part & described:
            continue
        # the description is what the paper says it varied; its sentence is weaker evidence
        score = len(part & described) + 0.5 * len(
            part & (content_stems(item.context, ignore) - described)
        )
        theirs = described | content_stems(item.context, ignore)
        if (
            score >= 2 or len(part) <= 2 or described <= part or (replacement - part) & theirs
        ) and (best is None or score > best[0]):
            best = (score, item)
    return best[1] if best else None


def drop_reported(
    ablations: Sequence[Ablation], reported: Sequence[ReportedAblation]
) -> tuple[list[Ablation], list[str]]:
    """``ablations`` without those that repeat a reported one, and one note per dropped item.

    Pure, so that the planner can run it before deciding whether the plan is short and the
    model should be asked for more (and again on what that second call returns).
    """
    kept: list[Ablation] = []
    notes: list[str] = []
    for ablation in ablations:
        match = matching_reported(ablation, reported)
        if match is None:
            kept.append(ablation)
        else:
            notes.append(
                f"dropped {ablation.name!r}: the paper already reports it "
                f"({match.description}, {match.where})"
            )
    return kept, notes


# "the paper does not report any ablation studies", "no ablations are reported": the claim
# the 1.5B model made about a paper with a section titled "Ablations".
_NONE_CLAIM = re.compile(
    r"\b(?:no|not|n't|never|lacks?|absence of|without any)\b[^.!?\n]{0,60}?\bablations?\b",
    re.IGNORECASE,
)
# A claim that *some* ablations are missing, named or listed: "lacks an ablation of the
# margin", "does not report the following ablations:", "no ablations such as ...".
_MISSING_SOME = re.compile(
    r"\b(?:lacks?|missing|absence of|no|not)\b[^.!?\n]{0,20}\bablations?"
    r"(?: (?:of|on|for|to|such as|like|including)\b|\s*:)"
    r"|\b(?:lacks?|missing|absence of|no|not)\b[^.!?\n]{0,40}\b(?:following|these|those|some|"
    r"certain|specific|several|other|further|additional|important|key|crucial|"
    r"necessary)\b[^.!?\n]{0,20}\bablations?\b",
    re.IGNORECASE,
)


_CORRECTION = "(Correction by the planner: the paper does report ablations:"


def denies_ablations(sentence: str) -> bool:
    """Whether ``sentence`` claims the paper reports no ablations: a claim about the paper
    (to be corrected where it is wrong), not a restated instruction to be removed."""
    return any(
        not _MISSING_SOME.search(sentence, m.start(), m.end() + 30)
        for m in _NONE_CLAIM.finditer(sentence)
    )


def correct_reasoning(reasoning: str, reported: Sequence[ReportedAblation]) -> str:
    """``reasoning`` with a correction when it claims the paper reports no ablations although
    ``reported`` is not empty. "Lacks an ablation of the margin" is a fair claim and stays.
    Corrected once: a corrected reasoning is returned as it is."""
    if not reported or _CORRECTION in reasoning or not denies_ablations(reasoning):
        return reasoning
    listed = "; ".join(item.description for item in reported[:5])
    return (f"{reasoning}\n\n{_CORRECTION} {listed}.)").strip()


def without_reported(
    reasoning: str,
    ablations: Sequence[Ablation],
    reported: Sequence[ReportedAblation],
    warn: Callable[[str], None] | None = None,
) -> tuple[str, list[Ablation]]:
    """The planner's reviewer-mode step: ``drop_reported`` on ``ablations``, its notes
    appended to ``reasoning`` (and passed to ``warn``, a progress display's stage), and a
    reasoning that claims the paper reports no ablations corrected. Safe to run again on a
    plan it already cleaned (after a follow-up call added items)."""
    if not reported:
        return reasoning, list(ablations)
    kept, notes = drop_reported(ablations, reported)
    if notes:
        listed = "; ".join(notes)
        reasoning = f"{reasoning}\n\n(Dropped by the planner, already in the paper: {listed}.)"
        if warn is not None:
            warn(f"warning: {listed}")
    return correct_reasoning(reasoning.strip(), reported), kept


def unreported_hints(hints: PaperHints, reported: Sequence[ReportedAblation]) -> PaperHints:
    """``hints`` without the hyper-parameters whose sweep the paper already reports, so that
    the sweep the planner adds when no item varies a value (``complete_ablations``) is not
    one the reviewer-mode filter would have to drop ("K ∈ {8, 16, 32}" in KESTREL)."""
    if not reported:
        return hints
    settings = []
    for setting in hints.settings:
        meaning = getattr(setting, "meaning", None)  # what a bare symbol is, when known
        sweep = Ablation(
            name=f"Sensitivity to {setting.name}",
            ablated_part=f"{setting.name}, {meaning or ''}, {setting.value} in the paper",
            action=Action.REPLACE,
            replacement=setting.sweep() or None,
        )
        if matching_reported(sweep, reported) is None:
            settings.append(setting)
    return replace(hints, settings=settings)
