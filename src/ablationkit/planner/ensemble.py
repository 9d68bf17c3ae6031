"""Ensemble planning (``ensemble=[M1, M2, …]`` and/or ``samples=n``): several plans, one answer.

One plan of a small model is noisy: which components it picks, and in which order, changes
with the sample. An ablation that several plans propose independently is more likely to be
one the paper's authors ran (or a reviewer would ask for). So the paper is prepared ONCE
(``prepare_plan``, fitted to the smallest context window among the models), every member
plan is the normal strategy's plan of that request with its own model or seed, run
concurrently on the same client, and the members' items are merged:

* **Same ablation?** The offline judge's pair model (``judge.offline``: P(same component) x
  P(compatible change), over the MiniLM features of ``judge.pair_features``) scores every
  pair of items, symmetrised (the model reads a planned item against a target); a pair is
  the same ablation when the score reaches the judge's fitted threshold. Without the
  embedding model installed, a lexical rule stands in (shared stems of the ablated parts
  and a compatible action) and the reasoning says so.
* **Clusters.** Items are taken best-ranked first (every plan's first item, then every
  plan's second, …); an item joins the cluster whose first item (its seed) it matches best,
  unless that cluster already holds an item of the same plan (two items of one plan are two
  ablations by that plan's own account); else it seeds a new cluster.
* **Ranking.** Clusters are ordered by votes (how many plans proposed the ablation), then by
  the mean rank the plans gave it; the top k are kept.
* **Representative.** Each cluster's item is the one of the plan that ranked it best, except
  that a concrete item beats one with a vague or placeholder change (``guards.placeholder``).

The reasoning says which plans agreed on each item ("3 of 4 plans (qwen, gpt-4o, sample 2)
proposed …") and gives each plan's first sentence. Usage, prompt and generation seconds are
the members' sums (what the ensemble cost); ``load_s`` is the one preparation and ``total_s``
the wall time of the whole (members run concurrently). A member that fails is named in the
reasoning and the others are merged; if every member fails, ``PlanError``.

Why samples get their own seed (the base seed + i): identical requests would hit the reply
cache and return one plan n times; a seed makes each sample its own request. Why a
temperature: at 0 (greedy) every sample is the same plan, so samples draw at
``SAMPLE_TEMPERATURE`` unless one is set (``PlanConfig`` refuses samples at 0).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ablationkit.errors import AblationKitError
from ablationkit.fsutil import safe_name
from ablationkit.lm.client import LMClient
from ablationkit.lm.models import Model, resolve_model
from ablationkit.lm.retry import RetryEvent
from ablationkit.planner.config import PlanConfig
from ablationkit.planner.guards import placeholder
from ablationkit.schema import Ablation, Plan, Timings, Usage

if TYPE_CHECKING:
    from ablationkit.planner.core import PlanProgress, PlanRequest

# The lexical fallback: two items are the same ablation when this share of the smaller
# item's stemmed part-and-name words is shared and the actions are compatible.
LEXICAL_THRESHOLD = 0.6
FIRST_SENTENCE_CHARS = 240


@dataclass(frozen=True)
class Member:
    """One plan of an ensemble: its label in the reasoning, its model and its settings."""

    label: str
    model: str
    config: PlanConfig


def members_of(config: PlanConfig) -> list[Member]:
    """The member plans of ``config``: every model of the ensemble, ``samples`` times each.

    A member's config is the ensemble's without the ensemble (so it plans as the normal
    strategy does); a sample gets seed = base seed (0 unset) + its index and the sampling
    temperature (``PlanConfig.sample_temperature``).
    """
    models, samples = config.members, config.samples
    base_seed = config.generation.seed or 0
    members = []
    for model in models:
        for i in range(samples):
            generation = config.generation
            if samples > 1:
                generation = generation.model_copy(
                    update={"seed": base_seed + i, "temperature": config.sample_temperature}
                )
            if samples == 1:
                label = model
            elif len(models) == 1:
                label = f"sample {i + 1}"
            else:
                label = f"{model} sample {i + 1}"
            member_config = config.model_copy(
                update={"model": model, "ensemble": None, "samples": 1, "generation": generation}
            )
            members.append(Member(label=label, model=model, config=member_config))
    return members


def ensemble_name(config: PlanConfig) -> str:
    """The merged plan's ``model``: ``ensemble(m1,m2)``, ``ensemble(local;samples=3)``."""
    samples = f";samples={config.samples}" if config.samples > 1 else ""
    return f"ensemble({','.join(config.members)}{samples})"


def context_window(config: PlanConfig, model: Model, api_base: str | None) -> int:
    """The context window a prompt must fit in: ``model``'s, or with an ensemble the
    smallest of its models' (the paper is prepared once for all of them)."""
    window = model.context_window
    for name in config.members if config.plans > 1 else []:
        if name != model.id:
            window = min(window, resolve_model(name, api_base).context_window)
    return window


# ---------------------------------------------------------------------- similarity


@dataclass
class Similarity:
    """Symmetric "same ablation" scores of every pair of items, the threshold a match must
    reach, and how they were computed (said in the reasoning)."""

    scores: Any  # numpy array, n x n
    threshold: float
    how: str
    lexical: bool = False


class _BagOfWords:
    """A stand-in encoder for ``pair_features`` when MiniLM is missing: only the lexical
    features are used from its rows, so its vectors just need the right shape."""

    def encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        return np.zeros((len(texts), 1), dtype=np.float32)


def similarity(items: Sequence[Ablation], encoder: Any = None) -> Similarity:
    """Scores of every pair of ``items`` by the offline judge's pair model (``encoder``: the
    default MiniLM), or by the lexical rule when the embedding model is not installed."""
    import numpy as np

    from ablationkit.judge.pair_features import pair_features

    if encoder is None:
        from ablationkit.judge.embedding import default_encoder

        try:
            encoder = default_encoder()
        except AblationKitError as exc:
            features = pair_features(items, items, cast(Any, _BagOfWords()))
            scores = np.array([[_lexical_score(f) for f in row] for row in features])
            return Similarity(
                scores=np.maximum(scores, scores.T) if len(items) else scores,
                threshold=LEXICAL_THRESHOLD,
                how=(
                    f"word overlap of the ablated parts and a compatible action ({exc.message}; "
                    "with it the offline judge's pair model would decide)"
                ),
                lexical=True,
            )
    from ablationkit.judge.offline import packaged_model

    judge = packaged_model()
    features = pair_features(items, items, encoder)
    scores = np.array(judge.scores(features), dtype=float).reshape(len(items), len(items))
    return Similarity(
        scores=(scores + scores.T) / 2,
        threshold=judge.threshold,
        how=(
            "the offline judge's pair model (same component x compatible change, "
            f"score >= {judge.threshold:.2f})"
        ),
    )


def _lexical_score(features: dict[str, float]) -> float:
    compatible = features["same_action"] or features["remove_vs_replace"]
    if not compatible or features["numbers_conflict"]:
        return 0.0
    return features["part_contain"]


# ---------------------------------------------------------------------- merging


@dataclass
class _Entry:
    index: int  # into the flat item list
    member: int
    rank: int
    ablation: Ablation


@dataclass
class Cluster:
    """Items of different plans judged to be one ablation."""

    entries: list[_Entry] = field(default_factory=list)

    @property
    def votes(self) -> int:
        return len(self.entries)

    @property
    def mean_rank(self) -> float:
        return sum(e.rank for e in self.entries) / len(self.entries)

    @property
    def representative(self) -> _Entry:
        """The best-ranked concrete item (a vague or placeholder change only if all are)."""
        return min(self.entries, key=lambda e: (placeholder(e.ablation) is not None, e.rank))


def cluster_plans(plans: Sequence[Plan], sim: Similarity | None = None) -> list[Cluster]:
    """The items of ``plans`` clustered (see the module's docstring), ordered by votes and
    then by mean rank; ``sim`` defaults to ``similarity`` of the flat item list."""
    entries = [
        _Entry(index=0, member=m, rank=r, ablation=a)
        for m, p in enumerate(plans)
        for r, a in enumerate(p.ablations)
    ]
    for i, entry in enumerate(entries):
        entry.index = i
    if sim is None:
        sim = similarity([e.ablation for e in entries])
    clusters: list[Cluster] = []
    for entry in sorted(entries, key=lambda e: (e.rank, e.member)):
        best: Cluster | None = None
        best_score = sim.threshold
        for cluster in clusters:
            if any(e.member == entry.member for e in cluster.entries):
                continue  # never two items of one plan in one cluster
            score = float(sim.scores[entry.index, cluster.entries[0].index])
            if score >= best_score and (best is None or score > best_score):
                best, best_score = cluster, score
        if best is None:
            clusters.append(Cluster(entries=[entry]))
        else:
            best.entries.append(entry)
    order = {id(c): i for i, c in enumerate(clusters)}
    return sorted(clusters, key=lambda c: (-c.votes, c.mean_rank, order[id(c)]))


def first_sentence(text: str) -> str:
    """A reasoning's first sentence (cut at ``FIRST_SENTENCE_CHARS``)."""
    text = " ".join(text.split())
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])", text, maxsplit=1)[0]
    if len(sentence) > FIRST_SENTENCE_CHARS:
        sentence = sentence[: FIRST_SENTENCE_CHARS - 1].rstrip() + "…"
    return sentence


def merge_plans(
    plans: Sequence[tuple[str, Plan]],
    k: int,
    *,
    failed: Sequence[tuple[str, str]] = (),
    sim: Similarity | None = None,
) -> tuple[str, list[Ablation]]:
    """The merged ``(reasoning, ablations)`` of labelled member plans: the top ``k``
    clusters' representatives, and a reasoning naming the plans that agreed on each."""
    labels = [label for label, _plan in plans]
    items = [a for _label, p in plans for a in p.ablations]
    if sim is None:
        sim = similarity(items)
    clusters = cluster_plans([p for _label, p in plans], sim)[:k]
    n = len(plans)
    lines = [
        f"Merged from {n} plan{'s' if n != 1 else ''} ({', '.join(labels)}); the same "
        f"ablation in several plans was recognised by {sim.how}. Items are ordered by how "
        "many plans proposed them, then by the rank the plans gave them."
    ]
    ablations = []
    for number, cluster in enumerate(clusters, 1):
        chosen = cluster.representative
        ablations.append(chosen.ablation.model_copy(deep=True))
        agreeing = [labels[e.member] for e in sorted(cluster.entries, key=lambda e: e.member)]
        worded = f"; worded as in {labels[chosen.member]}" if cluster.votes > 1 else ""
        lines.append(
            f'{number}. "{chosen.ablation.name}": {cluster.votes} of {n} plans '
            f"({', '.join(agreeing)}) proposed it{worded}."
        )
    for label, error in failed:
        lines.append(f"The plan of {label} failed and is not counted: {error}")
    reasons = [(label, first_sentence(p.reasoning)) for label, p in plans if p.reasoning.strip()]
    if reasons:
        lines.append("The plans' reasoning began:")
        lines.extend(f"- {label}: {sentence}" for label, sentence in reasons)
    return "\n".join(lines), ablations


# ---------------------------------------------------------------------- planning


async def acomplete_ensemble(
    request: PlanRequest,
    *,
    client: LMClient,
    raw_dir: Path | None,
    progress: PlanProgress,
) -> Plan:
    """The ensemble's plan of a prepared ``request`` (``core.PlanRequest``): every member
    planned concurrently on ``client``, then merged (``merge_plans``, in a thread: the
    encoder is CPU work). ``progress`` hears each member's stages, prefixed by its label."""
    from ablationkit.planner.core import PlanError, PlanProgress, acomplete_plan

    config = request.config
    members = members_of(config)
    api_base = config.api_base or client.api_base
    models: dict[str, Model] = {request.model.id: request.model}
    for member in members:
        if member.model not in models:
            models[member.model] = resolve_model(member.model, api_base)
    base_dir = Path(raw_dir) if raw_dir else Path(tempfile.gettempdir()) / "ablationkit-raw"
    begun = time.perf_counter()
    progress.stage(
        f"ensemble of {len(members)} plans: {', '.join(m.label for m in members)}"
        + (f" (temperature {config.sample_temperature})" if config.samples > 1 else "")
    )

    async def one(member: Member) -> Plan | AblationKitError:
        def stage(message: str, label: str = member.label) -> None:
            progress.stage(f"{label}: {message}")

        def retried(event: RetryEvent) -> None:
            progress.retry(event)

        member_progress = PlanProgress(on_stage=stage, on_retry=retried)
        member_request = replace(request, config=member.config, model=models[member.model])
        try:
            return await acomplete_plan(
                member_request,
                client=client,
                raw_dir=base_dir / "ensemble" / safe_name(member.label),
                progress=member_progress,
            )
        except AblationKitError as exc:
            return exc

    results = await asyncio.gather(*(one(m) for m in members))
    plans: list[tuple[str, Plan]] = []
    failed: list[tuple[str, str]] = []
    for member, result in zip(members, results, strict=True):
        if isinstance(result, Plan):
            plans.append((member.label, result))
        else:
            failed.append((member.label, result.message))
            progress.stage(f"warning: the plan of {member.label} failed: {result.message}")
    if not plans:
        listed = "; ".join(f"{label}: {error}" for label, error in failed)
        raise PlanError(
            f"every plan of the ensemble failed ({listed})"[:2000], where=request.paper_id
        )
    reasoning, ablations = await asyncio.to_thread(merge_plans, plans, config.k, failed=failed)
    if len(ablations) < config.k:
        progress.stage(
            f"warning: the plan has {len(ablations)} of the {config.k} ablations asked for"
        )
    member_plans = [p for _label, p in plans]
    return Plan(
        planner=member_plans[0].planner,
        model=ensemble_name(config),
        paper_id=request.paper_id,
        mode=request.mode,
        reasoning=reasoning,
        ablations=ablations,
        usage=Usage.total(p.usage for p in member_plans),
        timings=Timings(
            load_s=round(request.load_seconds, 3),
            prompt_s=_sum(p.timings.prompt_s if p.timings else None for p in member_plans),
            prompt_computed=_computed(member_plans),
            generation_s=_sum(p.timings.generation_s if p.timings else None for p in member_plans),
            total_s=round(request.load_seconds + time.perf_counter() - begun, 3),
        ),
    )


def _computed(plans: list[Plan]) -> int | None:
    """The prompt tokens the members' runtimes computed (the samples of one model share the
    whole prompt, so all but the first read it from the cache), None if any did not say."""
    counts = [p.timings.prompt_computed if p.timings else None for p in plans]
    return sum(c for c in counts if c is not None) if None not in counts else None


def _sum(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 3) if known else None


__all__ = [
    "LEXICAL_THRESHOLD",
    "Cluster",
    "Member",
    "Similarity",
    "acomplete_ensemble",
    "cluster_plans",
    "context_window",
    "ensemble_name",
    "first_sentence",
    "members_of",
    "merge_plans",
    "similarity",
]
