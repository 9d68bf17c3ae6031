"""The embedded model's runtime settings, swept once and picked by measurement; and
ablationkit's path against the best raw figures of the same run.

    python benchmarks/bench_local_tuning.py [--model local] [--rounds 2] [--prompt-tokens 1500]
                                            [--tokens 64] [--only NAME,NAME]

Each measurement is one fresh process (so the OpenMP wait policy, read once per process, can
vary too): it loads the model, then times one request of ``--prompt-tokens`` prompt tokens
(a unique first line, so nothing comes from the prompt cache) and ``--tokens`` generated
tokens (``ignore_eos``). Configurations run round-robin, the order rotated every round, so
the noise of a shared machine hits them alike; the figures are medians over rounds.

* ``raw ...`` rows are llama-bench-style figures: xllamacpp's in-process call (no HTTP, no
  ablationkit), rated by the runtime's own timings (prompt and generation tokens/s).
* ``ablationkit`` is the path a user gets: ``LMClient`` on ``local`` with the defaults of
  ``ablationkit.lm.local`` (streamed over loopback HTTP by ablationkit's client), rated by the
  client's clock: prompt tokens / time to the first token, and the other tokens / the time
  after it. Its ratio to the best raw row is the figure of merit (goal >= 0.9x).

The load average and each child's CPU share (CPU seconds / wall seconds, over the timed
request) are printed: on a machine shared with other work they say how much of it the
figures had. "per CPU-s" divides a rate by that share: what a setting does with the CPU it
got, steadier than wall-clock rates when the share varies (spinning threads count as busy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

FILLER = (
    "Ablation studies remove or replace one component of a method at a time to measure "
    "its contribution to the results reported in the paper. "
)


@dataclass(frozen=True)
class Setting:
    """One runtime configuration (``threads`` 0: ablationkit's automatic choice)."""

    name: str
    threads: int = 1
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: str = "auto"
    cache_type: str = "f16"
    wait: str = "default"  # libgomp's default (spin, then sleep) or "passive"
    path: str = "raw"  # "raw" (in-process xllamacpp) or "ablationkit"


SWEEP = [
    Setting("t1"),
    Setting("t2", threads=2),
    Setting("t2-passive", threads=2, wait="passive"),
    Setting("t1-ub128", n_batch=128, n_ubatch=128),
    Setting("t1-ub256", n_batch=256, n_ubatch=256),
    Setting("t1-ub2048", n_ubatch=2048),
    Setting("t1-fa-off", flash_attn="off"),
    Setting("t1-kv-q8", flash_attn="on", cache_type="q8_0"),
    Setting("ablationkit", threads=0, path="ablationkit"),
]


def _prompt(model: str, tokens: int) -> list[dict[str, str]]:
    """Messages of about ``tokens`` prompt tokens (counted with the model's own tokenizer),
    opened by a unique line so that no earlier request's KV cache applies."""
    from ablationkit.lm.gguf import read_metadata, token_counter
    from ablationkit.lm.local import weights_for

    count, _ = token_counter(read_metadata(weights_for(model)))
    body = ""
    while count(body) < tokens - 40:
        body += FILLER
    tag = f"Measurement {time.time_ns()}."
    return [
        {"role": "system", "content": f"{tag} You summarise texts."},
        {"role": "user", "content": body + "Summarise this text in detail."},
    ]


def _raw(setting: Setting, model: str, tokens: int, prompt_tokens: int) -> dict[str, Any]:
    import xllamacpp

    from ablationkit.lm.local import weights_for

    params = xllamacpp.CommonParams()
    params.model.path = str(weights_for(model))
    params.n_ctx = 16384
    params.n_parallel = 1
    params.cpuparams.n_threads = setting.threads
    params.cpuparams_batch.n_threads = setting.threads
    params.n_batch = max(setting.n_batch, setting.n_ubatch)
    params.n_ubatch = setting.n_ubatch
    fa = {"auto": -1, "off": 0, "on": 1}[setting.flash_attn]
    params.flash_attn_type = xllamacpp.llama_flash_attn_type(fa)
    kv = getattr(
        xllamacpp.ggml_type, {"f16": "GGML_TYPE_F16", "q8_0": "GGML_TYPE_Q8_0"}[setting.cache_type]
    )
    params.cache_type_k = kv
    params.cache_type_v = kv
    params.verbosity = -1
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.sampling.temp = 0.0
    t0 = time.perf_counter()
    server = xllamacpp.Server(params)
    load_s = time.perf_counter() - t0
    request = {
        "messages": _prompt(model, prompt_tokens),
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "cache_prompt": False,
    }
    cpu0, wall0 = time.process_time(), time.perf_counter()
    reply = server.handle_chat_completions(request)
    wall = time.perf_counter() - wall0
    timings = reply["timings"]
    return {
        "load_s": load_s,
        "pp": timings["prompt_per_second"],
        "tg": timings["predicted_per_second"],
        "prompt_n": timings["prompt_n"],
        "predicted_n": timings["predicted_n"],
        "cpu_share": (time.process_time() - cpu0) / wall,
    }


def _ablationkit(model: str, tokens: int, prompt_tokens: int) -> dict[str, Any]:
    from ablationkit.lm import LMClient
    from ablationkit.lm.local import embedded_server

    t0 = time.perf_counter()
    server = embedded_server(model)
    load_s = time.perf_counter() - t0
    client = LMClient(cache=False)
    # the client's imports and the connection are paid once per process, not per paper
    client.complete("Say yes.", model, max_tokens=1, temperature=0)
    messages = _prompt(model, prompt_tokens)
    first: list[float] = []

    def on_token(_piece: str) -> None:
        if not first:
            first.append(time.perf_counter())

    cpu0, start = time.process_time(), time.perf_counter()
    reply = client.complete(
        messages, model, max_tokens=tokens, temperature=0, ignore_eos=True, on_token=on_token
    )
    end = time.perf_counter()
    prompt_n = reply.timings.get("prompt_n", reply.usage.prompt_tokens)
    return {
        "load_s": load_s,
        "threads": server.threads,
        "pp": prompt_n / (first[0] - start),
        "tg": (reply.usage.completion_tokens - 1) / (end - first[0]),
        "server_pp": reply.timings.get("prompt_per_second"),
        "server_tg": reply.timings.get("predicted_per_second"),
        "prompt_n": prompt_n,
        "predicted_n": reply.usage.completion_tokens,
        "cpu_share": (time.process_time() - cpu0) / (end - start),
    }


def _child(args: argparse.Namespace) -> None:
    setting = Setting(**json.loads(args.child))
    if setting.path == "ablationkit":
        result = _ablationkit(args.model, args.tokens, args.prompt_tokens)
    else:
        result = _raw(setting, args.model, args.tokens, args.prompt_tokens)
    print("RESULT " + json.dumps(result), flush=True)


def _measure(setting: Setting, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("ABLATIONKIT_LOCAL_THREADS", None)
    if setting.wait == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    command = [
        sys.executable,
        __file__,
        "--model",
        args.model,
        "--tokens",
        str(args.tokens),
        "--prompt-tokens",
        str(args.prompt_tokens),
        "--child",
        json.dumps(asdict(setting)),
    ]
    load = os.getloadavg()[0]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{setting.name}: the measurement failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    result["load_before"] = load
    # what the setting does with the CPU it got (a shared machine gives a varying share)
    result["pp_cpu"] = result["pp"] / result["cpu_share"]
    result["tg_cpu"] = result["tg"] / result["cpu_share"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--only", default="", help="comma-separated setting names")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--report", help="print the tables of a --json file, measure nothing")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.report:
        with open(args.report, encoding="utf-8") as handle:
            saved = json.load(handle)
        for key in ("prompt_tokens", "tokens"):
            setattr(args, key, saved["args"][key])
        by_name = {s.name: s for s in SWEEP}
        _report([by_name[n] for n in saved["results"]], saved["results"], args)
        return

    wanted = set(filter(None, args.only.split(",")))
    settings = [s for s in SWEEP if not wanted or s.name in wanted]
    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in settings}
    started = time.perf_counter()
    print(f"model {args.model}, pp{args.prompt_tokens} + tg{args.tokens}, {args.rounds} rounds")
    for round_ in range(args.rounds):
        shift = round_ % len(settings)
        order = settings[shift:] + settings[:shift]
        if round_ % 2:
            order.reverse()
        for setting in order:
            result = _measure(setting, args)
            results[setting.name].append(result)
            print(
                f"  round {round_ + 1} {setting.name:<12} pp {result['pp']:6.1f} t/s  "
                f"tg {result['tg']:5.1f} t/s  load {result['load_before']:.1f}  "
                f"cpu share {result['cpu_share']:.2f}",
                flush=True,
            )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"machine time {time.perf_counter() - started:.0f} s, of it "
        f"{children.ru_utime + children.ru_stime:.0f} CPU-seconds in the measurements"
    )
    _report(settings, results, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=1)


def _report(
    settings: list[Setting], results: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> None:
    def median(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    print()
    print(
        "| setting | path | threads | n_batch | n_ubatch | flash attn | KV | OMP wait "
        f"| pp{args.prompt_tokens} t/s | tg{args.tokens} t/s | pp per CPU-s | tg per CPU-s "
        "| CPU share | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in settings:
        threads = (
            f"auto ({results[s.name][0].get('threads')})" if s.threads == 0 else str(s.threads)
        )
        print(
            f"| {s.name} | {s.path} | {threads} | {s.n_batch} | {s.n_ubatch} | {s.flash_attn} "
            f"| {s.cache_type} | {s.wait if s.path == 'raw' else 'passive'} "
            f"| {median(s.name, 'pp'):.1f} | {median(s.name, 'tg'):.1f} "
            f"| {median(s.name, 'pp_cpu'):.1f} | {median(s.name, 'tg_cpu'):.1f} "
            f"| {median(s.name, 'cpu_share'):.2f} | {median(s.name, 'load_before'):.1f} |"
        )
    raw = [s.name for s in settings if s.path == "raw"]
    ours = [s.name for s in settings if s.path == "ablationkit"]
    if not raw:
        return
    best_pp = max(raw, key=lambda n: median(n, "pp"))
    best_tg = max(raw, key=lambda n: median(n, "tg"))
    print(f"\nbest raw prompt processing: {best_pp} {median(best_pp, 'pp'):.1f} t/s")
    print(f"best raw generation:        {best_tg} {median(best_tg, 'tg'):.1f} t/s")
    best_pp_cpu = max(raw, key=lambda n: median(n, "pp_cpu"))
    best_tg_cpu = max(raw, key=lambda n: median(n, "tg_cpu"))
    print(f"best raw per CPU-second: prompt {best_pp_cpu}, generation {best_tg_cpu}")
    for name in ours:
        pp_ratio = median(name, "pp") / median(best_pp, "pp")
        tg_ratio = median(name, "tg") / median(best_tg, "tg")
        print(
            f"ablationkit / best raw: prompt {pp_ratio:.2f}x (goal >= 0.9x), "
            f"generation {tg_ratio:.2f}x; the server's own timings for ablationkit: "
            f"pp {median(name, 'server_pp'):.1f} t/s, tg {median(name, 'server_tg'):.1f} t/s"
        )
        pp_cpu = median(name, "pp_cpu") / median(best_pp_cpu, "pp_cpu")
        tg_cpu = median(name, "tg_cpu") / median(best_tg_cpu, "tg_cpu")
        print(
            f"ablationkit / best raw per CPU-second: prompt {pp_cpu:.2f}x, generation {tg_cpu:.2f}x"
        )
    loads = [r["load_before"] for rs in results.values() for r in rs]
    print(
        f"load average (1 min) before each measurement: median {statistics.median(loads):.1f}, "
        f"min {min(loads):.1f}, max {max(loads):.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
