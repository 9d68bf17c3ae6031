"""Plan quality per model and mode: P/R/F1, validity, grounding and time, on the shared papers
and the bundled sample.

    python benchmarks/bench_quality.py [--model local] [--model M ...] [--strategy S ...]
        [--modes author reviewer] [--papers ID ...] [--dataset D ...] [--k 5]
        [--samples N] [--paper-tokens N ...]
        [--judge offline] [--baseline-plans DIR] [--run-dir DIR] [--json OUT]
        [--api-base URL] [--details]

Every model (and ``--strategy``, ``--paper-tokens``) x mode x dataset is one run
directory, ``RUN/<model>/<strategy>[-read<N>]/<mode>/<dataset>``, planned and judged by
``ablationkit.bench.Run`` (what ``bench plan`` and ``bench judge`` do): a rerun with the
same ``--run-dir`` skips every plan and verdict it has, so it calls no model. Figures come
from ``ablationkit.bench.quality``:

- P/R/F1 (macro over papers, 95% bootstrap intervals; a failed paper counts as 0). In
  reviewer mode only reviewers' requests are right answers; on papers whose ground truth is
  what they report, a match is a *repeat* of a reported ablation and is counted as such;
- validity: schema-valid plans written of those asked, items of k, items copying the prompt's
  example, placeholder or vague replacements (``planner.guards``), metrics found in the paper,
  ablated parts grounded in the method section;
- seconds per paper split into load / prompt / generation, and (local models) prompt tokens
  per second in the plans against the raw runtime's, timed in this process
  (``measure_raw_prompt_rate``; kept in ``RUN/<model>/raw-runtime.json`` and timed again
  only when this invocation planned something with that model).

``--baseline-plans benchmarks/data/plans`` judges the embedded model's stored plans from before
the planner's guard rails beside the new ones, in the same run and under the same judge.

Defaults: the embedded model (``local``), both modes, ``--judge offline`` (the validated judge),
the papers of ``$ABLATIONKIT_SHARED/papers`` (default ``../shared/papers``) and ``sample``.
``--api-base`` is the server of every non-local model and LM judge.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ablationkit.bench import Run, load_dataset, read_run
from ablationkit.bench.datasets import Instance
from ablationkit.bench.quality import (
    PaperText,
    RawRate,
    VariantFigures,
    figures_json,
    instance_text,
    instances_for,
    measure_raw_prompt_rate,
    variant_figures,
)
from ablationkit.bench.store import RunRecord, file_stem
from ablationkit.errors import AblationKitError
from ablationkit.fsutil import atomic_write_text, load_json
from ablationkit.judge.factory import make_judge
from ablationkit.lm.models import resolve_model
from ablationkit.schema import MODES, Mode

REPO = Path(__file__).resolve().parents[1]


def default_datasets() -> list[str]:
    """The shared papers (when they are here) and the bundled sample."""
    shared = Path(os.environ.get("ABLATIONKIT_SHARED", REPO.parent / "shared")) / "papers"
    return [str(shared), "sample"] if shared.is_dir() else ["sample"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", action="append", help="repeatable (default: local)")
    parser.add_argument(
        "--strategy", action="append", help="planner strategy, repeatable (default: its own)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--papers", nargs="+", help="paper ids to plan (default: all)")
    parser.add_argument("--dataset", action="append", help="repeatable (default: shared, sample)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1, help="plans per paper, merged")
    parser.add_argument(
        "--paper-tokens",
        type=int,
        nargs="+",
        help="reading budgets to compare, one variant each (0: the whole paper; default: "
        "the planner's own)",
    )
    parser.add_argument("--judge", default="offline", help="default: the validated offline judge")
    parser.add_argument(
        "--baseline-plans",
        type=Path,
        help="plan JSON files (<paper>-<mode>.json, as benchmarks/data/plans) judged beside the "
        "new plans in the same run: 'today' against the planner now, under one judge",
    )
    parser.add_argument("--run-dir", type=Path, help="reuse or resume this run (rerun: no cost)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--api-base", help="server of the non-local models and LM judges")
    parser.add_argument("--concurrency", type=int, default=4, help="remote models (local: 1)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--details", action="store_true", help="list every flagged item")
    return parser.parse_args(argv)


def dataset_names(datasets: Sequence[str]) -> dict[str, str]:
    """A directory name per dataset ("sample", "papers", ...), made unique."""
    names: dict[str, str] = {}
    for dataset in datasets:
        base = file_stem(Path(dataset).name or dataset)
        name, n = base, 1
        while name in names.values():
            n += 1
            name = f"{base}-{n}"
        names[dataset] = name
    return names


def selected(datasets: Sequence[str], papers: Sequence[str] | None) -> dict[str, list[Instance]]:
    """Each dataset's instances, only the ``papers`` asked for; an id in none is an error."""
    chosen = {dataset: load_dataset(dataset) for dataset in datasets}
    if papers:
        known = {i.id for instances in chosen.values() for i in instances}
        unknown = sorted(set(papers) - known)
        if unknown:
            raise AblationKitError(f"unknown paper ids: {', '.join(unknown)}")
        chosen = {d: [i for i in found if i.id in papers] for d, found in chosen.items()}
    return chosen


def progress(label: str) -> Callable[[str, int, int, float], None]:
    """A plan stage's progress, one line per finished paper on stderr."""

    def report(paper_id: str, finished: int, total: int, cost: float) -> None:
        if paper_id:
            print(f"  {label}: {paper_id} ({finished}/{total})", file=sys.stderr, flush=True)

    return report


def variant_dir(strategy: str | None, reading: int | None) -> str:
    """A variant's run folder: its strategy, and its reading budget when one was chosen."""
    name = strategy or "default"
    return name if reading is None else f"{name}-read{reading or 'all'}"


def variant_label(model: str, strategy: str | None, reading: int | None) -> str:
    parts = [strategy] if strategy else []
    if reading is not None:
        parts.append(f"reads {reading} paper tokens" if reading else "reads the whole paper")
    return f"{model} ({', '.join(parts)})" if parts else model


def run_variant(
    args: argparse.Namespace,
    root: Path,
    model: str,
    strategy: str | None,
    reading: int | None,
    mode: Mode,
    datasets: dict[str, list[Instance]],
    names: dict[str, str],
    api_base: str | None,
    concurrency: int,
) -> tuple[list[RunRecord], str, int]:
    """Plan and judge one model (and strategy) in one mode on every dataset: its judged runs,
    the judge's name and how many plans this invocation made."""
    records: list[RunRecord] = []
    judge_name, planned = args.judge, 0
    overrides: dict[str, Any] = {"strategy": strategy} if strategy else {}
    if args.samples > 1:  # an ensemble of samples (planner.ensemble)
        overrides["samples"] = args.samples
    if reading is not None:
        overrides["paper_tokens"] = reading
    for dataset, instances in datasets.items():
        ids = [i.id for i in instances_for(instances, mode)]
        if not ids:
            continue
        label = f"{model} {mode} {names[dataset]}"
        run = Run(
            root / variant_dir(strategy, reading) / mode / names[dataset], concurrency=concurrency
        )
        try:
            report = run.plan(
                dataset,
                ids=ids,
                mode=mode,
                model=model,
                api_base=api_base,
                k=args.k,
                progress=progress(f"plan {label}"),
                **overrides,
            )
            planned += len(report.done)
            for paper_id, error in report.failed.items():
                print(f"  plan failed: {_named(paper_id, error)}", file=sys.stderr)
            judge = make_judge([args.judge], run.client, args.api_base)
            judge_name = judge.name
            verdicts = run.judge(judge, k=args.k)
            for paper_id, error in verdicts.failed.items():
                print(f"  judge failed: {_named(paper_id, error)}", file=sys.stderr)
        finally:
            run.client.close()
        records.append(read_run(run.dir))
    return records, judge_name, planned


def baseline_variant(
    args: argparse.Namespace,
    root: Path,
    mode: Mode,
    datasets: dict[str, list[Instance]],
    names: dict[str, str],
) -> list[RunRecord]:
    """Stored plans (``--baseline-plans``) written into runs of their own and judged by the
    same judge as the new plans. A paper without a stored plan counts as failed (0), as a
    new plan that failed would."""
    from ablationkit.bench.store import PlanStageConfig, RunStore
    from ablationkit.schema import Plan

    records: list[RunRecord] = []
    source: Path = args.baseline_plans
    for dataset, instances in datasets.items():
        chosen = instances_for(instances, mode)
        if not chosen:
            continue
        directory = root / "baseline" / mode / names[dataset]
        store = RunStore(directory)
        store.record_stage(
            "plan",
            PlanStageConfig(
                dataset=dataset,
                model="baseline",
                mode=mode,
                k=args.k,
                ids=[i.id for i in chosen],
                imported_from=str(source.resolve()),
            ),
        )
        missing = {}
        for instance in chosen:
            path = source / f"{instance.id}-{mode}.json"
            if not path.is_file():
                missing[instance.id] = f"no stored plan {path.name} in {source}"
                continue
            plan = Plan.model_validate_json(path.read_bytes())
            store.write_plan(plan.model_copy(update={"paper_id": instance.id, "mode": mode}))
        store.record_failures("plan", missing)
        run = Run(directory, concurrency=1)
        try:
            run.judge(make_judge([args.judge], run.client, args.api_base), k=args.k)
        finally:
            run.client.close()
        records.append(read_run(run.dir))
    return records


def raw_rate(root: Path, model: str, planned: int) -> RawRate:
    """The raw runtime's prompt rate for a local model: timed now if this invocation planned
    with it (or it was never timed), else the figure timed with the plans it has."""
    path = root / "raw-runtime.json"
    if planned == 0 and path.is_file():
        try:
            data = load_json(path.read_bytes())
            return RawRate(tokens=int(data["tokens"]), rates=[float(r) for r in data["rates"]])
        except (ValueError, KeyError, TypeError):  # damaged: timed again, and rewritten
            pass
    from ablationkit.lm.local import embedded_server

    print(f"  timing the raw runtime of {model} ...", file=sys.stderr, flush=True)
    rate = measure_raw_prompt_rate(embedded_server(model).raw_chat)
    atomic_write_text(path, json.dumps({"tokens": rate.tokens, "rates": rate.rates}))
    return rate


def _ci(figures: Any, key: str) -> str:
    low, high = figures.ci95.get(key, (0.0, 0.0))
    return f"{getattr(figures, key):.3f} [{low:.3f}, {high:.3f}]"


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "0/0"


def _named(paper_id: str, error: str) -> str:
    """``error`` prefixed with the paper's id, unless it already starts with it."""
    return error if error.startswith(f"{paper_id}:") else f"{paper_id}: {error}"


def _papers(n: int) -> str:
    return f"{n} paper" if n == 1 else f"{n} papers"


def _seconds(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def report_lines(
    figures: VariantFigures, raw: RawRate | None, *, details: bool = False
) -> list[str]:
    """The printed summary of one model in one mode."""
    v = figures.validity
    lines = [f"{figures.label}, {figures.mode} mode ({_papers(v.plans_asked)}, k {figures.k})"]
    scores = figures.scores
    target = "reviewers' requests" if figures.mode == "reviewer" else "reported ablations"
    if scores is not None:
        failed = f"; failed, counted 0: {', '.join(scores.failed)}" if scores.failed else ""
        lines.append(
            f"  vs {target} ({_papers(scores.papers)}): P {_ci(scores, 'precision')}  "
            f"R {_ci(scores, 'recall')}  F1 {_ci(scores, 'f1')}{failed}"
        )
    if figures.repeats is not None and figures.repeats.papers:
        r = figures.repeats
        on = [f"{paper} {n}" for paper, n in r.by_paper.items() if n]
        lines.append(
            f"  repeats of reported ablations: {r.repeated} of {r.items} items "
            f"on {_papers(r.papers)}" + (f" ({', '.join(on)})" if on else "")
        )
    lines.append(
        f"  plans {v.plans_written}/{v.plans_asked} schema-valid; items {v.items}/{v.items_asked}"
        f" ({v.short_plans} short plans); copied example {v.copied}; placeholders {v.placeholders}"
    )
    lines.append(
        f"  metrics in the paper {_share(v.metrics_found, v.metrics)}; "
        f"ablated parts in the method {_share(v.parts_grounded, v.parts)}"
    )
    mean = figures.time.mean
    lines.append(
        f"  seconds per paper: load {_seconds(mean['load_s'])}, prompt "
        f"{_seconds(mean['prompt_s'])}, generation {_seconds(mean['generation_s'])}, total "
        f"{_seconds(mean['total_s'])} (mean of {figures.time.plans} plans)"
    )
    if raw is not None:
        ours = figures.prompt_rate
        ratio = f" ({ours / raw.median:.2f}x)" if ours else ""
        lines.append(
            f"  prompt tokens/s: {ours:.1f} in the plans" if ours else "  prompt tokens/s: -"
        )
        lines[-1] += f", {raw.median:.1f} raw runtime{ratio}"
    for check in figures.checks:
        if check.error:
            lines.append(f"  no plan: {_named(check.paper_id, check.error)}")
        flagged = [("copied", check.copied), ("placeholder", check.placeholders)]
        if details:
            flagged += [
                ("metric not in paper", check.metrics_missing),
                ("not grounded", check.parts_ungrounded),
            ]
        for what, items in flagged:
            lines += [f"  {what}: {check.paper_id}: {item}" for item in items]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return benchmark(args)
    except AblationKitError as exc:
        print(f"bench_quality: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


def benchmark(args: argparse.Namespace) -> int:
    models = args.model or ["local"]
    strategies: list[str | None] = list(args.strategy or [None])
    readings: list[int | None] = list(args.paper_tokens or [None])
    datasets = selected(args.dataset or default_datasets(), args.papers)
    names = dataset_names(list(datasets))
    run_dir: Path = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    print(f"run directory {run_dir} (pass --run-dir {run_dir} to rerun at no cost)")
    texts: dict[str, PaperText] = {}

    def text_of(instance: Instance) -> PaperText:
        key = instance.path or instance.id
        if key not in texts:
            texts[key] = instance_text(instance)
        return texts[key]

    variants: list[VariantFigures] = []
    raw: dict[str, RawRate] = {}
    for model in models:
        local = resolve_model(model, args.api_base).local  # a bad id: one line, now
        api_base = None if local else args.api_base
        root = run_dir / file_stem(model)
        planned = 0
        results = []
        for strategy, reading in itertools.product(strategies, readings):
            for mode in args.modes:
                records, judge, made = run_variant(
                    args,
                    root,
                    model,
                    strategy,
                    reading,
                    mode,
                    datasets,
                    names,
                    api_base,
                    1 if local else args.concurrency,
                )
                planned += made
                label = variant_label(model, strategy, reading)
                results.append(
                    variant_figures(
                        records,
                        label=label,
                        model=model,
                        mode=mode,
                        judge=judge,
                        texts=text_of,
                        resamples=args.resamples,
                    )
                )
        if local:
            raw[model] = raw_rate(root, model, planned)
        variants += results
    if args.baseline_plans is not None:
        for mode in args.modes:
            records = baseline_variant(args, run_dir, mode, datasets, names)
            variants.insert(
                0,
                variant_figures(
                    records,
                    label=f"baseline ({args.baseline_plans.name})",
                    model="baseline",
                    mode=mode,
                    judge=variants[0].judge if variants else args.judge,
                    texts=text_of,
                    resamples=args.resamples,
                ),
            )
    print(f"judge {variants[-1].judge if variants else args.judge}")
    from ablationkit.judge.offline import describe_agreement

    print(describe_agreement(variants[-1].judge if variants else args.judge))
    for model, rate in raw.items():
        print(f"raw runtime {model}: {rate.tokens}-token prompt, {rate.median:.1f} tokens/s")
    for figures in variants:
        print("\n".join(report_lines(figures, raw.get(figures.model), details=args.details)))
    if args.json:
        data = {
            "run_dir": str(run_dir),
            "datasets": list(datasets),
            "k": args.k,
            "judge": variants[0].judge if variants else args.judge,
            "raw_runtime": {
                model: {"tokens": r.tokens, "rates": r.rates, "median": r.median}
                for model, r in raw.items()
            },
            "variants": [figures_json(figures) for figures in variants],
        }
        atomic_write_text(args.json, json.dumps(data, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
