"""Judges from the command line's words: ``--judge`` specs and a protocol.

``protocol="ablationkit"`` (ours): each spec is a model (``lm:`` optional) judged with our
index-matching prompt, or ``embedding[@threshold]``, the offline judge; several make a majority
over index pairs. ``protocol="ablationbench"``: each spec is a model judged as the reference's LM
judge does (``AblationBenchJudge``, with ``config``, the reference's YAML prompts, if given);
several make the reference's majority over the judges' lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

from ablationkit.errors import AblationKitError
from ablationkit.judge.base import Judge
from ablationkit.judge.lm_judge import LMJudge, MajorityJudge
from ablationkit.lm.client import LMClient
from ablationkit.lm.routes import check_api_base

if TYPE_CHECKING:
    from ablationkit.ablationbench.config import PromptConfig

JudgeProtocol = Literal["ablationkit", "ablationbench"]
# the validated offline judge (``judge.offline``): the default wherever no judge is named
OFFLINE = "offline"
PROTOCOLS: tuple[str, ...] = get_args(JudgeProtocol)


def _is_embedding(spec: str) -> bool:
    return spec == "embedding" or spec.startswith("embedding@")


def _is_offline(spec: str) -> bool:
    return spec == OFFLINE or _is_embedding(spec)


def make_judge(
    specs: Sequence[str],
    client: LMClient,
    api_base: str | None = None,
    *,
    protocol: str = "ablationkit",
    config: PromptConfig | None = None,
    seed: int = 0,
) -> Judge:
    """``["lm:openai/gpt-4o"]`` -> an LM judge; several -> their majority; ``["offline"]`` ->
    the validated offline judge; ``["embedding"]`` -> the cosine-only embedding judge. Under
    ``protocol="ablationbench"`` the reference's judges;
    in a majority the i-th judge draws with ``seed + i`` (the reference's judges draw apart)."""
    if protocol not in PROTOCOLS:
        raise AblationKitError(
            f"unknown judge protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})"
        )
    if not specs:
        raise AblationKitError("give at least one judge (--judge MODEL, or --judge embedding)")
    if api_base:
        check_api_base(api_base)  # malformed: one error now, not one per paper
    if protocol == "ablationbench":
        return _reference_judge(specs, client, api_base, config, seed)
    if config is not None:
        raise AblationKitError("a judge config is read only under the ablationbench protocol")
    judges: list[Judge] = []
    for spec in specs:
        if spec == OFFLINE:
            from ablationkit.judge.offline import OfflineJudge

            judges.append(OfflineJudge())
        elif _is_embedding(spec):
            from ablationkit.judge.embedding import EmbeddingJudge

            threshold = _threshold(spec)
            judges.append(EmbeddingJudge(threshold=threshold))
        else:
            judges.append(LMJudge(spec.removeprefix("lm:"), client=client, api_base=api_base))
    return judges[0] if len(judges) == 1 else MajorityJudge(judges)


def _threshold(spec: str) -> float | None:
    if "@" not in spec:
        return None
    text = spec.partition("@")[2]
    try:
        return float(text)
    except ValueError:
        raise AblationKitError(
            f"judge {spec!r}: the threshold {text!r} is not a number (e.g. embedding@0.6)"
        ) from None


def _reference_judge(
    specs: Sequence[str],
    client: LMClient,
    api_base: str | None,
    config: PromptConfig | None,
    seed: int,
) -> Judge:
    from ablationkit.judge.reference import AblationBenchJudge, ReferenceMajorityJudge

    for spec in specs:
        if _is_offline(spec):
            raise AblationKitError(
                f"judge {spec!r}: the offline and embedding judges have no ablationbench protocol "
                "(the reference's judges are models)"
            )
    judges: list[Judge] = [
        AblationBenchJudge(
            spec.removeprefix("lm:"),
            client=client,
            api_base=api_base,
            prompts=config,
            seed=seed + i,
        )
        for i, spec in enumerate(specs)
    ]
    return judges[0] if len(judges) == 1 else ReferenceMajorityJudge(judges)
