"""The yield-and-cost report of a run: per stage, rows in and out, why rows were dropped, time, tokens, hardware.

    meter = Meter()                               # before a stage
    ds = ds.filter(min_quality("good"), batched=True)
    figures = meter.done("min_quality", "filter", rows_in=1000, rows_out=len(ds),
                         dropped={"input_quality >= good": 1000 - len(ds)})
    report = YieldReport((figures,))
    report.cost(price_per_hour=2.5)
    # {"unit": "CPU-hours", "hours": 0.0004, "kept_rows": 640, "hours_per_1000_kept": 0.0006, "price_per_1000_kept": 0.0016, ...}
    report.write("out/yield_report.json")

Recipes (`run_recipe`), the CLI (`generate`, `build`) and `checkpoint.run_resumable` record one
`StageYield` per stage; `run_resumable` keeps each finished batch's figures in its checkpoint,
so a killed and resumed run reports the compute of every batch, not only of the last run. The
card shows the report as a table with the cost per 1,000 kept rows.

Tokens are what the engines count (`engines.base.generated_tokens`): completion tokens of every
sample, prompt tokens once per prompt. Peak memory is the process's resident set (RSS) while
the stage ran (Linux resets the high-water mark per stage; elsewhere it is the peak so far), and
the most GPU memory torch allocated when CUDA is in use. Cost is wall-clock hours of the
hardware: GPU-hours are hours x GPUs of the machine, CPU-hours are hours of the machine (all
its cores) when it has no GPU.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..engines.base import generated_tokens

__all__ = ["REPORT_FILE", "Meter", "StageYield", "YieldReport", "engines_of", "hardware"]

REPORT_FILE = "yield_report.json"
FORMAT_VERSION = 1


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware() -> dict[str, Any]:
    """What this process runs on: `{"cpu": "AMD EPYC ...", "cpu_count": 16, "gpu": "NVIDIA H200" | None, "gpu_count": 1}`.

    GPUs are those torch sees, asked only when torch is already imported (a CPU-only run
    does not pay for importing it).
    """
    gpu, gpus = None, 0
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        gpu = torch.cuda.get_device_name(0) if gpus else None
    return {"cpu": _cpu_model(), "cpu_count": os.cpu_count() or 1, "gpu": gpu, "gpu_count": gpus}


def _reset_peaks() -> None:
    try:  # Linux: "5" resets the VmHWM high-water mark of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peaks() -> tuple[int, int | None]:
    """(peak RSS bytes, peak GPU bytes allocated by torch or None without CUDA)."""
    rss = 0
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        import resource  # not on Windows, where neither file exists

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    torch = sys.modules.get("torch")
    gpu = None
    if torch is not None and torch.cuda.is_available():
        gpu = max(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))
    return rss, gpu


def engines_of(fn_or_name: Any, kwargs: Mapping[str, Any], models: Sequence[tuple] | None = None) -> tuple[str, ...]:
    """The models a stage loads with `kwargs`, as "engine:model" ("model" alone for reward models
    and embedders; "embedded" for the embedded default). `models`: what the stage loaded, as
    `stages.table.stage_models` gives them for its rows; without them, a model the stage takes
    from the rows (`generate_responses` without `model`) is shown as "rows' model".

    >>> engines_of("tag_safety", {"engine": "vllm"})
    ('vllm:meta-llama/Meta-Llama-Guard-2-8B',)
    >>> engines_of("min_quality", {})
    ()
    >>> engines_of("generate_responses", {})
    ("transformers:rows' model",)
    >>> from datasets import Dataset
    >>> from magpie_datasets.stages.table import stage_models
    >>> rows = Dataset.from_dict({"model": ["Qwen/Qwen2.5-7B-Instruct"]})  # step 1's model
    >>> engines_of("generate_responses", {}, stage_models("generate_responses", {}, rows))
    ('transformers:Qwen/Qwen2.5-7B-Instruct',)
    """
    from ..engines.embedded import EMBEDDED_CHAT_MODEL
    from ..stages.table import STAGES, models_of, stage, stage_of

    name = fn_or_name if isinstance(fn_or_name, str) else getattr(stage_of(fn_or_name), "name", None)
    if name is None or name not in {s.name for s in STAGES}:
        return ()
    if models is None:  # the rows are not known here, nor the model a stage takes from them
        models = [(loader, "rows' model" if m.from_rows and model is None else model, engine, options)
                  for m, (loader, model, engine, options) in zip(stage(name).models, models_of(name, dict(kwargs)))]
    out = []
    for _, model, engine, _ in models:
        shown = "embedded" if model in (None, EMBEDDED_CHAT_MODEL) else model
        out.append(f"{engine}:{shown}" if engine else shown)
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class StageYield:
    """One stage's figures. `dropped` maps each reason (a filter's name) to the rows it removed."""

    stage: str
    kind: str  # "source", "map", "filter" or "dataset" (stages/table.py)
    rows_in: int
    rows_out: int
    seconds: float
    prompt_tokens: int | None = 0  # None: not measured (e.g. counted in Ray workers)
    completion_tokens: int | None = 0
    engines: tuple[str, ...] = ()
    hardware: Mapping[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    dropped: Mapping[str, int] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float | None:
        """Completion tokens per wall second, None when nothing was generated or measured."""
        if not self.completion_tokens or self.seconds <= 0:
            return None
        return self.completion_tokens / self.seconds

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["engines"], out["hardware"], out["dropped"] = list(self.engines), dict(self.hardware), dict(self.dropped)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StageYield":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown or not {"stage", "kind", "rows_in", "rows_out", "seconds"} <= set(data):
            raise ValueError(
                f"Not a stage yield record: {dict(data)!r}; it needs stage, kind, rows_in, rows_out, seconds "
                f"(and may have {sorted(known)})."
            )
        data = dict(data)
        data["engines"] = tuple(data.get("engines") or ())
        return cls(**data)


class _SharedClock:
    """Wall time shared fairly among the meters running at once: while k run, each is charged 1/k
    of every second, so concurrent batches add up to the wall time, not k times it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active, self.since, self.charged = 0, time.perf_counter(), 0.0

    def _advance(self) -> float:
        now = time.perf_counter()
        if self.active:
            self.charged += (now - self.since) / self.active
        self.since = now
        return self.charged

    def enter(self) -> float:
        with self.lock:
            start = self._advance()
            self.active += 1
            return start

    def leave(self, start: float) -> float:
        with self.lock:
            seconds = self._advance() - start
            self.active -= 1
            return seconds


_clock = _SharedClock()


class Meter:
    """Measures one stage from its creation to `done(...)`: wall time, tokens, peak memory.

    `concurrent=True` (a runner's batches in flight, one thread each): tokens are those of this
    thread's engine calls, and seconds its fair share of the wall time while others ran too;
    call `figures()` once, in a `finally`, to stop it.
    """

    def __init__(self, concurrent: bool = False) -> None:
        _reset_peaks()
        self.concurrent = concurrent
        self.prompt = generated_tokens("prompt", this_thread=concurrent)
        self.completion = generated_tokens("completion", this_thread=concurrent)
        self.started = _clock.enter() if concurrent else time.perf_counter()
        self._seconds: float | None = None

    def figures(self) -> dict[str, Any]:
        """The measured part: `{"seconds", "prompt_tokens", "completion_tokens", "peak_rss_bytes", "peak_gpu_bytes"}`."""
        rss, gpu = _peaks()
        if not self.concurrent:
            seconds = time.perf_counter() - self.started
        elif self._seconds is None:
            seconds = self._seconds = _clock.leave(self.started)
        else:
            seconds = self._seconds
        return {
            "seconds": seconds,
            "prompt_tokens": generated_tokens("prompt", this_thread=self.concurrent) - self.prompt,
            "completion_tokens": generated_tokens("completion", this_thread=self.concurrent) - self.completion,
            "peak_rss_bytes": rss,
            "peak_gpu_bytes": gpu,
        }

    def done(
        self, stage: str, kind: str, rows_in: int, rows_out: int, *, dropped: Mapping[str, int] | None = None,
        engines: Sequence[str] = (),
    ) -> StageYield:
        return StageYield(stage, kind, rows_in, rows_out, engines=tuple(engines), hardware=hardware(),
                          dropped=dict(dropped or {}), **self.figures())


def summed(figures: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Batch figures (`Meter.figures()`) of one stage added up: times and tokens summed, peaks maxed.

    A missing batch (None) makes the tokens unknown (None); its time is not in the sum.

    >>> summed([{"seconds": 1.0, "prompt_tokens": 4, "completion_tokens": 9, "peak_rss_bytes": 5, "peak_gpu_bytes": None},
    ...         {"seconds": 2.0, "prompt_tokens": 1, "completion_tokens": 3, "peak_rss_bytes": 7, "peak_gpu_bytes": None}])
    {'seconds': 3.0, 'prompt_tokens': 5, 'completion_tokens': 12, 'peak_rss_bytes': 7, 'peak_gpu_bytes': None}
    """
    out: dict[str, Any] = {"seconds": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "peak_rss_bytes": None,
                           "peak_gpu_bytes": None}
    for f in figures:
        if f is None:
            out["prompt_tokens"] = out["completion_tokens"] = None
            continue
        out["seconds"] += f["seconds"]
        for key in ("prompt_tokens", "completion_tokens"):
            out[key] = None if out[key] is None or f[key] is None else out[key] + f[key]
        for key in ("peak_rss_bytes", "peak_gpu_bytes"):
            if f.get(key) is not None:
                out[key] = max(out[key] or 0, f[key])
    return out


@dataclass(frozen=True)
class YieldReport:
    """The stages of one run, in order; the last stage's `rows_out` are the kept rows."""

    stages: tuple[StageYield, ...]

    @property
    def kept_rows(self) -> int:
        return self.stages[-1].rows_out if self.stages else 0

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def cost(self, price_per_hour: float | None = None) -> dict[str, Any]:
        """Device-hours of the run and per 1,000 kept rows; money too with a `price_per_hour`.

        GPU-hours when a stage ran on a machine with GPUs (hours x GPUs there), else CPU-hours
        (hours of the machine). `price_per_hour` is the price of one of those hours.

        >>> r = YieldReport((StageYield("add_magpie_instructions", "map", 10, 10, 360.0,
        ...                  hardware={"gpu": "NVIDIA H100", "gpu_count": 2}),))
        >>> c = r.cost(price_per_hour=3.0); c["unit"], round(c["hours"], 3), round(c["hours_per_1000_kept"], 1), c["price_per_1000_kept"]
        ('GPU-hours', 0.2, 20.0, 60.0)
        """
        if price_per_hour is not None and (isinstance(price_per_hour, bool) or not price_per_hour >= 0):
            raise ValueError(f"price_per_hour={price_per_hour!r}: give the price of one device-hour, a number >= 0")
        on_gpu = any((s.hardware or {}).get("gpu_count") for s in self.stages)
        hours = sum(s.seconds * (((s.hardware or {}).get("gpu_count") or 1) if on_gpu else 1) for s in self.stages) / 3600
        per_1000 = hours * 1000 / self.kept_rows if self.kept_rows else None
        out = {"unit": "GPU-hours" if on_gpu else "CPU-hours", "hours": hours, "kept_rows": self.kept_rows,
               "hours_per_1000_kept": per_1000, "price_per_hour": price_per_hour, "price": None,
               "price_per_1000_kept": None}
        if price_per_hour is not None:
            out["price"] = hours * price_per_hour
            out["price_per_1000_kept"] = per_1000 * price_per_hour if per_1000 is not None else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "YieldReport":
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION or "stages" not in data:
            raise ValueError(
                f"Not a yield report of format {FORMAT_VERSION}: expected {{'format': {FORMAT_VERSION}, 'stages': [...]}}"
            )
        return cls(tuple(StageYield.from_dict(s) for s in data["stages"]))

    @classmethod
    def from_log(cls, log: Sequence[Mapping[str, Any]] | None) -> "YieldReport | None":
        """The report held by a recipe's stage log (entries with a "yield" record), None if none has one."""
        stages = tuple(StageYield.from_dict(e["yield"]) for e in log or () if isinstance(e, Mapping) and e.get("yield"))
        return cls(stages) if stages else None

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> "YieldReport":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot read the yield report ({err}); it is written by runs as {REPORT_FILE}")
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
