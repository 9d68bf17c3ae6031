"""A GGUF file's metadata, and counting tokens with its tokenizer, without loading the model.

Why: fitting a paper into the embedded model's context needs its token counts, and a dry run
must not start a model to get them. The weights file carries everything: its context length
and its tokenizer (vocabulary, BPE merges and the pre-tokenizer's name). Reading that is a
fraction of a second; loading the model to ask its ``/tokenize`` takes seconds and gigabytes.

``BpeCounter`` counts byte-level BPE tokens (``tokenizer.ggml.model == "gpt2"``: Qwen, SmolLM,
Llama 3, …) the way llama.cpp splits and merges them. Python's ``re`` has no ``\\p{L}`` or
``\\p{N}``, so they are built from ``\\w``, ``\\d`` and the BMP's other numeric characters;
on the bundled models' tokenizers and real papers the counts match llama.cpp's to within a
fraction of a percent (``tests/test_models.py`` checks recorded counts).
"""

from __future__ import annotations

import mmap
import re
import struct
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ablationkit.lm.types import ModelUnavailableError

_MAGIC = b"GGUF"
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


class _Reader:
    """Little-endian GGUF values from a memory map; every length is checked against the file
    (a damaged or hostile file is one error, never a huge allocation)."""

    def __init__(self, data: mmap.mmap | bytes, where: Path) -> None:
        self.data, self.pos, self.where = data, 0, where

    def _take(self, size: int) -> int:
        start = self.pos
        if size < 0 or start + size > len(self.data):
            raise ModelUnavailableError(
                "damaged GGUF file (a value runs past its end)", where=self.where
            )
        self.pos = start + size
        return start

    def scalar(self, code: str) -> Any:
        fmt = "<" + code
        return struct.unpack_from(fmt, self.data, self._take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        size = self.scalar("Q")
        start = self._take(size)
        return bytes(self.data[start : start + size]).decode("utf-8", "replace")

    def _strings(self, count: int) -> list[str]:
        """A string array (a vocabulary: 150,000 of them) without a call per string."""
        data, pos, end = self.data, self.pos, len(self.data)
        unpack = struct.Struct("<Q").unpack_from
        out: list[str] = []
        for _ in range(count):
            if pos + 8 > end:
                break
            (size,) = unpack(data, pos)
            pos += 8
            if pos + size > end:
                break
            out.append(data[pos : pos + size].decode("utf-8", "replace"))
            pos += size
        else:
            self.pos = pos
            return out
        raise ModelUnavailableError(
            "damaged GGUF file (a value runs past its end)", where=self.where
        )

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.scalar("I"), self.scalar("Q")
            if item in _SCALARS:
                fmt = f"<{count}{_SCALARS[item]}"
                return list(struct.unpack_from(fmt, self.data, self._take(struct.calcsize(fmt))))
            if count > len(self.data):  # each item takes at least a byte
                raise ModelUnavailableError("damaged GGUF file (array too long)", where=self.where)
            if item == _STRING:
                return self._strings(count)
            return [self.value(item) for _ in range(count)]
        raise ModelUnavailableError(f"damaged GGUF file (value type {kind})", where=self.where)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Every key-value pair of a GGUF file's header (no tensor is read)."""
    path = Path(path)
    try:
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            if data[:4] != _MAGIC:
                raise ModelUnavailableError("not a GGUF file", where=path)
            reader = _Reader(data, path)
            reader.pos = 4
            version = reader.scalar("I")
            if version < 2:
                raise ModelUnavailableError(f"GGUF version {version} is too old", where=path)
            reader.scalar("Q")  # tensor count
            pairs = reader.scalar("Q")
            metadata: dict[str, Any] = {}
            for _ in range(pairs):
                key = reader.string()
                metadata[key] = reader.value(reader.scalar("I"))
            return metadata
    except (OSError, ValueError, struct.error) as exc:
        raise ModelUnavailableError(f"cannot read the GGUF file ({exc})", where=path) from None


def context_length(metadata: dict[str, Any]) -> int | None:
    """The context the model was trained for (``<architecture>.context_length``)."""
    value = metadata.get(f"{metadata.get('general.architecture')}.context_length")
    return int(value) if isinstance(value, int) and value > 0 else None


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-in for each byte (what byte-level BPE vocabularies hold)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


@lru_cache(maxsize=1)
def _classes() -> dict[str, str]:
    """``\\p{L}``, ``\\p{N}`` and the classes built from them, for Python's ``re``.

    ``\\w`` is letters, numbers and ``_``; without ``\\d`` and ``_`` it is letters plus the
    numeric characters that are not decimal digits (², ½, Ⅻ), which are listed (from the BMP:
    beyond it they are vanishingly rare in papers) and moved over to the numbers.
    """
    others = "".join(
        re.escape(chr(c))
        for c in range(0x80, 0x10000)
        if chr(c).isnumeric() and not chr(c).isdecimal()
    )
    return {
        "L": rf"[^\W\d_{others}]",
        "N": rf"(?:\d|[{others}])",
        # [^\s\p{L}\p{N}] and [^\r\n\p{L}\p{N}]: outside \w, or the underscore
        "P": r"(?:[^\s\w]|_)",
        "Q": r"(?:[^\r\n\w]|_)",
    }


# llama.cpp's pre-tokenizer expressions (llama-vocab.cpp), applied one after the other, with
# {L} = \p{L}, {N} = \p{N}, {P} = [^\s\p{L}\p{N}], {Q} = [^\r\n\p{L}\p{N}].
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?{L}+| ?{N}+| ?{P}+|\s+(?!\S)"
_QWEN2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|{Q}?{L}+|{N}"
    r"| ?{P}+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE: dict[str, list[str]] = {
    "gpt2": [_GPT2],
    "smollm": [r"{N}", _GPT2],
    "starcoder": [r"{N}", _GPT2],
    "refact": [r"{N}", _GPT2],
    "qwen2": [_QWEN2],
    "stablelm2": [_QWEN2],
    "llama-bpe": [_QWEN2.replace("|{N}", "|{N}{1,3}")],
}


def _compile(expression: str) -> re.Pattern[str]:
    classes = _classes()
    for name, value in classes.items():
        expression = expression.replace("{" + name + "}", value)
    return re.compile(expression)


class BpeCounter:
    """Counts the tokens of a byte-level BPE vocabulary (see the module docstring)."""

    def __init__(self, tokens: list[str], merges: list[str], pre: str) -> None:
        self.vocab = set(tokens)
        self.ranks: dict[tuple[str, str], int] = {}
        for rank, merge in enumerate(merges):
            left, _, right = merge.partition(" ")
            self.ranks.setdefault((left, right), rank)
        self.patterns = [_compile(e) for e in _PRE.get(pre, _PRE["gpt2"])]
        self.bytes = _byte_chars()
        self._words: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        pieces = [text]
        for pattern in self.patterns:
            pieces = [part for piece in pieces for part in _split(pattern, piece)]
        return sum(self._word(piece) for piece in pieces)

    def _word(self, piece: str) -> int:
        cached = self._words.get(piece)
        if cached is not None:
            return cached
        word = "".join(self.bytes[b] for b in piece.encode("utf-8"))
        count = 1 if word in self.vocab else self._merge(word)
        if len(self._words) < 200_000:
            self._words[piece] = count
        return count

    def _merge(self, word: str) -> int:
        parts = list(word)
        ranks = self.ranks
        while len(parts) > 1:
            best, best_rank = -1, sys.maxsize
            for i in range(len(parts) - 1):
                rank = ranks.get((parts[i], parts[i + 1]))
                if rank is not None and rank < best_rank:
                    best, best_rank = i, rank
            if best < 0:
                break
            left, right = parts[best], parts[best + 1]
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        # a part the vocabulary lacks is spelled in byte tokens, one per byte
        return sum(1 if part in self.vocab else len(part) for part in parts)


def _split(pattern: re.Pattern[str], text: str) -> list[str]:
    """``text`` cut at ``pattern``'s matches, the text between them kept as pieces too."""
    pieces: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        if match.start() > last:
            pieces.append(text[last : match.start()])
        if match.end() > match.start():
            pieces.append(match.group())
        last = match.end()
    if last < len(text):
        pieces.append(text[last:])
    return pieces


def utf8_bytes(text: str) -> int:
    """An upper bound on any byte-level or byte-fallback tokenizer's count: every token
    covers at least one byte. For tokenizers this module cannot run (SentencePiece)."""
    return len(text.encode("utf-8")) + 1


def token_counter(metadata: dict[str, Any]) -> tuple[Callable[[str], int], str]:
    """A counter for the GGUF's tokenizer and what it is: ``"gguf-bpe"`` (counted with the
    file's own vocabulary) or ``"utf8-bytes"`` (an upper bound, for other tokenizers)."""
    tokens = metadata.get("tokenizer.ggml.tokens")
    merges = metadata.get("tokenizer.ggml.merges")
    if metadata.get("tokenizer.ggml.model") == "gpt2" and tokens and merges:
        pre = str(metadata.get("tokenizer.ggml.pre") or "gpt2")
        return BpeCounter(tokens, merges, pre), "gguf-bpe"
    return utf8_bytes, "utf8-bytes"
