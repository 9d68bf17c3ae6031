"""Facts pulled from the paper's text that make REPLACE ablations concrete.

Small models tend to propose only REMOVE ablations. Telling them the paper's own
hyper-parameter values and the alternatives it names ("instead of X", "rather than Y") lets
them propose sweeps and swaps, and lets the planner fill in values when a model forgets them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

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
                "- Hyper-parameters and their values in the paper: "
                + "; ".join(f"{s.name} = {s.value}" for s in self.settings)
            )
        for sentence in self.alternatives:
            lines.append(f"- Design choice stated in the paper: {sentence}")
        if self.metrics:
            lines.append("- Metrics mentioned: " + ", ".join(self.metrics))
        return "\n".join(lines)


def _clean_name(name: str) -> str:
    return " ".join(name.split())


def extract_hints(text: str, *, max_settings: int = 8, max_alternatives: int = 4) -> PaperHints:
    settings: list[Setting] = []
    seen: set[str] = set()
    for match in [*_MATH_SETTING.finditer(text), *_NAMED_SETTING.finditer(text)]:
        name = _clean_name(match.group("name"))
        key = name.lower().strip("\\")
        if key in seen or len(settings) >= max_settings:
            continue
        seen.add(key)
        settings.append(Setting(name, match.group("value")))
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
