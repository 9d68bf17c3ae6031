"""Facts pulled from the paper's text that make REPLACE ablations concrete.

Small models tend to propose only REMOVE ablations. Telling them the paper's own
hyper-parameter values and the alternatives it names ("instead of X", "rather than Y") lets
them propose sweeps and swaps, and lets the planner fill in values when a model forgets them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# The labels of the facts the prompt lists: a small model sometimes "ablates" a label itself
# ("the design choice stated in the paper"); planner.guards flags an item that names one.
SETTINGS_LABEL = "Hyper-parameters and their values in the paper"
CHOICE_LABEL = "Design choice stated in the paper"
METRICS_LABEL = "Metrics mentioned"
HINT_LABELS: tuple[str, ...] = (SETTINGS_LABEL, CHOICE_LABEL, METRICS_LABEL)

_MATH_SETTING = re.compile(
    r"\$\s*(?P<name>\\?[A-Za-z][A-Za-z_{}\\]{0,20}?(?:_\{?[A-Za-z0-9,]{1,8}\}?)?)\s*=\s*"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE]-?[0-9]+)?|10\^\{?-?[0-9]+\}?)\s*\$"
)
# Hyper-parameters named in words ("a batch size of 64"), and the cues of a sentence stating
# a design choice ("rather than", "instead"). Each alternative starts with a lower-case letter:
# _SCAN files them under their first letter.
_SETTING_NAMES = (
    "learning rate",
    "batch size",
    "dropout(?: rate)?",
    "temperature",
    "margin",
    "weight decay",
    "momentum",
    "warm-?up(?: steps)?",
    "hidden (?:size|dimension)",
    "embedding (?:size|dimension)",
    "number of (?:layers|heads|iterations|steps|epochs|frames|candidates|clusters|experts|"
    "samples|tokens|neighbou?rs)",
    "window size",
    "kernel size",
    "rank",
    "mask(?:ing)? ratio",
    "top-?k",
    "beam size",
)
# matched where _SCAN found a setting's name: the name, up to three words, a verb, a number
_NAMED_SETTING = re.compile(
    r"(?P<name>" + "|".join(_SETTING_NAMES) + r")\b(?: \w+){0,3}? (?:of|=|is|to|set to|as)\s+"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE]-?[0-9]+)?)\b",
    re.I,
)
_CUES = (
    "instead",
    r"rather\s+than",
    r"in\s+contrast\s+to",
    r"as\s+opposed\s+to",
    r"replac\w+",
    "alternatively",
    r"compared\s+(?:to|with)",
    r"we\s+(?:use|adopt|choose)",
    "unlike",
    r"tends\s+to",
)
# on one sentence, once its paragraph has a cue
_ALTERNATIVE = re.compile(r"\b(?:" + "|".join(_CUES) + r")\b", re.I)
# In the method only: where a paper lists the options of a component ("The concave family
# includes cosine, square, cubic, and exponential"; "other architectures are possible,
# including LSTM and transformers"; "we compare the basic variant of the contrastive loss
# with alternative variants"), which are the replacements its own ablations test. In an
# introduction the same words list applications and prior work, hence method only.
_METHOD_CUES = (
    *_CUES,
    r"includ(?:es|ing)",
    r"such\s+as",
    r"we\s+(?:compare|consider)",
    r"(?:are|is)\s+possible",
    r"alternatives?",
    r"variants?",
)
_METHOD_ALTERNATIVE = re.compile(r"\b(?:" + "|".join(_METHOD_CUES) + r")\b", re.I)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|:\s*\n")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")

METRIC_NAMES = (
    "accuracy",
    "top-1",
    "top-5",
    "F1",
    "precision",
    "recall",
    "AUROC",
    "AUC",
    "AUPRC",
    "mAP",
    "IoU",
    "mIoU",
    "BLEU",
    "ROUGE",
    "METEOR",
    "CIDEr",
    "perplexity",
    "NLL",
    "FID",
    "IS",
    "KID",
    "PSNR",
    "SSIM",
    "LPIPS",
    "FVD",
    "MSE",
    "RMSE",
    "MAE",
    "R^2",
    "NDCG",
    "MRR",
    "Hit@",
    "Recall@",
    "success rate",
    "reward",
    "return",
    "WER",
    "CER",
    "exact match",
    "EM",
    "pass@1",
    "latency",
    "throughput",
    "speed-up",
    "memory",
    "FLOPs",
    "energy",
)


# Acronyms ("IS", "EM", "FID") and short names ("mAP", "F1") match case-sensitively, so that
# "is" and "them" are not metrics; longer names ("accuracy", "mIoU") in any case.
_CASE_SENSITIVE = frozenset(m for m in METRIC_NAMES if m.isupper() or len(m) <= 3)
_METRIC_BY_KEY = {(m if m in _CASE_SENSITIVE else m.lower()): m for m in METRIC_NAMES}
_ACRONYMS = frozenset(m for m in METRIC_NAMES if m.isupper())


def _scan_pattern() -> re.Pattern[str]:
    """One alternation over metric names, setting names and design-choice cues, filed under
    their exact first character (a case-insensitive one under both cases) so ``re`` checks
    each word start against a few dozen first letters, not a hundred alternatives. A name
    starts a word; a metric name ends one, but ``Hit@`` and ``Recall@`` end with their cut-off
    (``Hit@10``). Longer metric names first: ``Recall@`` before ``recall``."""
    by_first: dict[str, list[str]] = {}

    def add(first: str, rest: str, insensitive: bool) -> None:
        for char in {first.lower(), first.upper()} if insensitive else {first}:
            by_first.setdefault(char, []).append(f"(?i:{rest})" if insensitive else rest)

    for metric in sorted(METRIC_NAMES, key=len, reverse=True):
        end = "" if metric.endswith("@") else r"(?!\w)"
        add(metric[0], re.escape(metric[1:]) + end, metric not in _CASE_SENSITIVE)
    for name in (*_SETTING_NAMES, *_CUES):
        add(name[0], name[1:] + r"\b", True)
    branches = (f"{re.escape(c)}(?:{'|'.join(rests)})" for c, rests in sorted(by_first.items()))
    return re.compile(r"(?<!\w)(?:" + "|".join(branches) + ")")


_SCAN = _scan_pattern()
_SETTING_NAME = re.compile("|".join(_SETTING_NAMES), re.I)
_SHOUT_STRIP = ".,;:!?()[]{}\"'"


def _shouted(text: str, start: int, end: int) -> bool:
    """True when the acronym at ``text[start:end]`` is a word of text in capitals ("WHAT IS
    NEEDED", a PDF's running header): its neighbours on the line are capitalised words that
    are not metric names themselves ("FID IS LPIPS" is a list of metrics)."""
    line_start = text.rfind("\n", max(0, start - 40), start) + 1
    before = text[max(line_start, start - 40) : start].split()
    line_end = text.find("\n", end, end + 40)
    after = text[end : line_end if line_end >= 0 else end + 40].split()
    neighbours = [w.strip(_SHOUT_STRIP) for w in before[-1:] + after[:1]]
    return bool(neighbours) and all(
        w.isalpha() and w.isupper() and w not in _ACRONYMS for w in neighbours
    )


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    # what a bare symbol is, from the sentence that defines it ("the temporal bandwidth",
    # "which trades relevance against diversity", "the number of candidate frames")
    meaning: str | None = None

    def sweep(self) -> list[str]:
        """Values around the paper's value: half and double (bounded for fractions)."""
        try:
            number = float(self.value)
        except ValueError:
            return []
        if number == 0:
            return []
        if number.is_integer() and "." not in self.value and "e" not in self.value.lower():
            low, high = max(1, int(number) // 2), int(number) * 2
            return [str(low), str(high)] if low != int(number) else [str(high)]
        if 0 < number < 1:
            return [_fmt(number / 2), _fmt(min(number * 2, 0.99))]
        return [_fmt(number / 2), _fmt(number * 2)]


def _fmt(number: float) -> str:
    return f"{number:.4g}"


@dataclass
class PaperHints:
    settings: list[Setting]
    alternatives: list[str]
    metrics: list[str]

    def render(self) -> str:
        lines = []
        if self.settings:
            lines.append(
                f"- {SETTINGS_LABEL}: "
                + "; ".join(
                    f"{s.name} = {s.value}" + (f" ({s.meaning})" if s.meaning else "")
                    for s in self.settings
                )
            )
        for sentence in self.alternatives:
            lines.append(f"- {CHOICE_LABEL}: {sentence}")
        if self.metrics:
            lines.append(f"- {METRICS_LABEL}: " + ", ".join(self.metrics))
        return "\n".join(lines)


def _clean_name(name: str) -> str:
    return " ".join(name.split())


# Words that end the noun phrase before a symbol ("we set the margin $c = 0.2$"), and verbs
# that describe it after its value ("$\\sigma = 0.05$ sets the temporal bandwidth").
_BREAK = frozenset(
    "we set sets use uses used using with choose chose is are was were be and or where which "
    "then that to by for in on at as first sample samples keep keeps let if when do whose "
    "denote each every".split()
)
_TAIL = frozenset("is are was set to as of equal fixed be with we use = a an the".split())
_VERBS = "sets|controls|weights|balances|trades|determines|scales|governs|defines|bounds|limits"
_DEFINED_AFTER = re.compile(
    rf"^\s*(?P<verb>{_VERBS})\s+(?P<rest>[A-Za-z][A-Za-z -]{{2,80}}?)(?=[.;:,$]|\s+and\b|$)"
)
_COUNTED = re.compile(r"^\s*(?P<noun>(?:[a-z][a-z-]+\s+){0,2}[a-z][a-z-]+s)\b")


def _noun_phrase(words: list[str]) -> list[str]:
    """The words at the end of ``words`` up to the first break word (verbs, prepositions
    that start a clause), or [] when they name nothing."""
    phrase: list[str] = []
    for word in reversed(words):
        if word.lower() in _BREAK or not re.fullmatch(r"[A-Za-z][A-Za-z-]*", word):
            break
        phrase.insert(0, word)
    return phrase if any(len(w) >= 3 for w in phrase) else []


def _joined(words: list[str]) -> str:
    while words and words[0].lower() in {"the", "a", "an", "of", "our", "its"}:
        words = words[1:]
    return " ".join(words[-6:]).lower()


def _meaning(text: str, match: re.Match[str]) -> str | None:
    """What the symbol of a ``$name = value$`` match is, from the text around it: an
    explicit definition ("$c$ is the margin of ..."), a count ("$N_c = 256$ candidate
    frames"), the noun phrase before it ("the temperature $\\tau = 2$") or the verb after
    it ("... sets the temporal bandwidth"). None when the sentence does not say."""
    name = match.group("name")
    defined = re.search(
        rf"\$\s*{re.escape(name)}\s*\$\s*(?:is|denotes|represents)\s+"
        r"(?P<what>(?:the|a|an)\s+[A-Za-z][A-Za-z -]{2,60}?)(?=[.;:,$(]|\s+and\b)",
        text,
    )
    if defined:
        return " ".join(defined.group("what").split()[:9])
    after = text[match.end() : match.end() + 160]
    value = match.group("value")
    counted = _COUNTED.match(after)
    if value.isdigit() and counted and counted.group("noun").split()[-1] not in _BREAK:
        return f"the number of {counted.group('noun')}"
    window = max(0, match.start() - 200)  # the sentence before it, bounded
    start = max(text.rfind(".", window, match.start()), text.rfind("\n\n", window, match.start()))
    before = text[max(start + 1, window) : match.start()]
    words = re.split(r"[,;:(]|\$[^$]*\$", before)[-1].split()
    while words and words[-1].lower() in _TAIL:
        words.pop()
    phrase = _noun_phrase(words)
    if phrase:
        rest = words[: len(words) - len(phrase)]
        if rest and rest[-1].lower() == "whose":  # "a loss whose margin is $c = 0.2$"
            owner = _noun_phrase(rest[:-1])
            if owner:
                return f"the {_joined(phrase)} of the {_joined(owner)}"
        return f"the {_joined(phrase)}"
    described = _DEFINED_AFTER.match(after)
    if described:
        rest = " ".join(described.group("rest").split()[:8])
        return f"which {described.group('verb')} {rest}"
    return None


def _choices(
    text: str, cues: list[tuple[int, int]], limit: int, cue: re.Pattern[str] = _ALTERNATIVE
) -> list[str]:
    """The sentences with a cue, from the paragraphs (blank-line or colon-line separated) in
    which ``cues`` found one, up to ``limit``; headings, figure placeholders, tables and
    display math are no paragraphs of prose. Paragraph breaks are found only as far as the
    last paragraph read."""
    choices: list[str] = []
    breaks = _PARAGRAPH_BREAK.finditer(text)
    brk = next(breaks, None)
    start, done = 0, 0  # the current paragraph's start; paragraphs before ``done`` are read
    for cue_start, cue_end in cues:
        if len(choices) >= limit:
            break
        if cue_start < done:
            continue
        while brk is not None and brk.end() <= cue_start:
            start, brk = brk.end(), next(breaks, None)
        end = brk.start() if brk is not None else len(text)
        if cue_end > end:
            continue  # "compared\n\nto": the cue straddles a paragraph break
        done = end
        paragraph = text[start:end].strip()
        if paragraph.startswith(("#", "[", "|", "\\begin")) or "\\begin{" in paragraph:
            continue
        for sentence in _SENTENCE_BREAK.split(" ".join(paragraph.split())):
            if cue.search(sentence) and 6 <= len(sentence.split()) <= 40 and len(choices) < limit:
                choices.append(sentence)
    return choices


_WEAK_CUE = re.compile(
    r"\b(?:we\s+(?:use|adopt|choose)|tends\s+to|replac\w+|compared\s+(?:to|with))\b", re.I
)
_LIST_JOINT = re.compile(r",\s|\s(?:and|or)\s")


def _naming_score(sentence: str) -> int:
    """How much a method sentence names alternatives: a strong cue ("includes", "instead",
    "other … are possible") over a weak one ("we use", "replaced with"), then the commas and
    "and"/"or" of a list. CoLES's method has seven cue sentences; "other architectures are
    possible, including LSTM and transformers", the replacements of its encoder ablation,
    was the seventh."""
    strong = bool(_METHOD_ALTERNATIVE.search(_WEAK_CUE.sub(" ", sentence)))
    return 10 * strong + len(_LIST_JOINT.findall(sentence))


def extract_hints(
    text: str,
    *,
    method_text: str = "",
    max_settings: int = 8,
    max_alternatives: int = 4,
) -> PaperHints:
    """The paper's settings, design-choice sentences and metrics, in one pass of ``_SCAN``
    over the text (plus one of ``_MATH_SETTING``, which skips straight to each ``$``): the
    planner runs this on every paper, within a per-paper CPU budget of a few milliseconds
    (one regex per metric name took 7 ms on a 13 KB paper, issue 15). A setting, metric or
    cue is checked in full only where its name starts a word.

    ``method_text`` (the method sections, also part of ``text``) gives the design-choice
    sentences first, with the wider ``_METHOD_CUES``: taken in reading order from the whole
    text, the four sentences were an introduction's ("Unlike text, images are not
    sequential") while MaskGIT's method lists the mask schedules its ablation compares."""
    counts: dict[str, int] = {}
    named: list[re.Match[str]] = []
    cues: list[tuple[int, int]] = []
    named_end = 0  # a setting's phrase is not searched for another setting
    for hit in _SCAN.finditer(text):
        start, end = hit.span()
        word = hit.group()
        metric = _METRIC_BY_KEY.get(word) or _METRIC_BY_KEY.get(word.lower())
        if metric is not None:
            if start and text[start - 1] == "-":
                continue  # "non-recall", "pre-FID"
            if metric in _ACRONYMS and _shouted(text, start, end):
                continue
            counts[metric] = counts.get(metric, 0) + 1
        elif _SETTING_NAME.fullmatch(word):
            if start >= named_end and (match := _NAMED_SETTING.match(text, start)):
                named.append(match)
                named_end = match.end()
        else:
            cues.append((start, end))
    settings: list[Setting] = []
    seen: set[str] = set()
    for match in [*_MATH_SETTING.finditer(text), *named]:
        if len(settings) >= max_settings:
            break
        name = _clean_name(match.group("name"))
        key = name.lower().strip("\\")
        if key in seen:
            continue
        seen.add(key)
        is_math = match.re is _MATH_SETTING
        settings.append(
            Setting(name, match.group("value"), _meaning(text, match) if is_math else None)
        )
    # ties in the order of METRIC_NAMES
    ranked = Counter({m: counts[m] for m in METRIC_NAMES if m in counts})
    metrics = [m for m, _ in ranked.most_common(6)]
    method_cues = [m.span() for m in _METHOD_ALTERNATIVE.finditer(method_text)]
    found = _choices(method_text, method_cues, len(method_cues), _METHOD_ALTERNATIVE)
    best = sorted(range(len(found)), key=lambda i: -_naming_score(found[i]))[:max_alternatives]
    choices = [found[i] for i in sorted(best)]  # in reading order
    for sentence in _choices(text, cues, max_alternatives):
        if len(choices) < max_alternatives and sentence not in choices:
            choices.append(sentence)
    return PaperHints(settings, choices, metrics)
