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
_NAMED_SETTING = re.compile(
    r"\b(?P<name>learning rate|batch size|dropout(?: rate)?|temperature|margin|weight decay|"
    r"momentum|warm-?up(?: steps)?|hidden (?:size|dimension)|embedding (?:size|dimension)|"
    r"number of (?:layers|heads|iterations|steps|epochs|frames|candidates|clusters|experts|"
    r"samples|tokens|neighbou?rs)|window size|kernel size|rank|mask(?:ing)? ratio|"
    r"top-?k|beam size)\b(?: \w+){0,3}? (?:of|=|is|to|set to|as)\s+"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE]-?[0-9]+)?)\b",
    re.I,
)
_ALTERNATIVE = re.compile(
    r"\b(instead|rather than|in contrast to|as opposed to|replac\w+|"
    r"alternatively|compared (?:to|with)|we (?:use|adopt|choose)|unlike|tends to)\b",
    re.I,
)
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


# Acronyms match case-sensitively, words in any case; a cheap substring test on the
# lower-cased text decides which of these patterns are worth running at all.
_METRIC_PATTERNS = [
    (
        m,
        m.lower(),
        re.compile(rf"(?<![\w-]){re.escape(m)}(?!\w)", 0 if m.isupper() or len(m) <= 3 else re.I),
    )
    for m in METRIC_NAMES
]


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


def extract_hints(text: str, *, max_settings: int = 8, max_alternatives: int = 4) -> PaperHints:
    settings: list[Setting] = []
    seen: set[str] = set()
    for match in [*_MATH_SETTING.finditer(text), *_NAMED_SETTING.finditer(text)]:
        name = _clean_name(match.group("name"))
        key = name.lower().strip("\\")
        if key in seen or len(settings) >= max_settings:
            continue
        seen.add(key)
        is_math = match.re is _MATH_SETTING
        settings.append(
            Setting(name, match.group("value"), _meaning(text, match) if is_math else None)
        )
    alternatives: list[str] = []
    for paragraph in re.split(r"\n\s*\n|:\s*\n", text):
        if len(alternatives) >= max_alternatives:
            break
        paragraph = paragraph.strip()
        if paragraph.startswith(("#", "[", "|", "\\begin")) or "\\begin{" in paragraph:
            continue  # headings, figure placeholders, tables and display math
        flat = " ".join(paragraph.split())
        if not _ALTERNATIVE.search(flat):
            continue  # one search per paragraph; sentences only where a cue is
        for sentence in re.split(r"(?<=[.!?])\s+", flat):
            if (
                _ALTERNATIVE.search(sentence)
                and 6 <= len(sentence.split()) <= 40
                and len(alternatives) < max_alternatives
            ):
                alternatives.append(sentence)
    counts: Counter[str] = Counter()
    lowered = text.lower()
    for metric, needle, pattern in _METRIC_PATTERNS:
        if needle in lowered and (found := len(pattern.findall(text))):
            counts[metric] = found
    metrics = [m for m, _ in counts.most_common(6)]
    return PaperHints(settings, alternatives, metrics)
