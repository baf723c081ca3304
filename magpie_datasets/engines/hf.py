"""The `transformers` engine: batched sampling with a KV cache, on any torch device.

    llm = TransformersEngine(model_dir)                      # fp32 on CPU, bf16 on CUDA
    llm.generate(["<prompt>"], Sampling(n=8, max_tokens=64, stop=("<|im_end|>",), seed=0))

How it runs: prompts are left-padded, each distinct prompt is prefilled once and its
KV cache copied to its `n` samples (Magpie's step 1 samples many instructions from
one pre-query). Decoding runs one token per step for every active row; rows that
stop are dropped from the batch and waiting rows take their place (continuous
batching), so a few long rows do not keep the rest of the batch idle. Each sample
draws its random numbers from its own stream, seeded by (prompt seed, sample), so a
seeded row gives the same text whatever else is in the batch. With `Sampling.json_schema`
each sample gets an llguidance matcher that masks the logits to tokens the schema allows.
`Sampling.first_token_bias` / `first_token_temperature` act on a row's step while it has no
output token yet (its first), wherever the row joined the batch.
"""

from __future__ import annotations

import os
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import llguidance
import llguidance.hf
import llguidance.torch
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from .base import (
    Completion,
    Sampling,
    check_first_token,
    counted,
    encode_prompts,
    prompt_seeds,
    split_stops,
)
from .shared_loop import Call, SharedLoop

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_LOADED_IN = os.getpid()


def _one_thread_if_forked() -> None:
    """A forked child (a `Dataset.map(num_proc=N)` worker) inherits the parent's OpenMP thread
    pool state but not its threads, and its first parallel op hangs. One thread per worker, as
    torch's DataLoader workers do, runs OpenMP regions inline; the workers share the cores.
    Checked where this engine starts torch work, so other forks (vLLM's engine core) keep theirs."""
    global _LOADED_IN
    if os.getpid() != _LOADED_IN:
        torch.set_num_threads(1)
        _LOADED_IN = os.getpid()


_GROW = 64  # KV buffer slack (tokens) added on each reallocation
_PREFILL_TOKENS = 16384  # most prompt tokens (padding included) in one prefill forward pass


def _cpu_capabilities() -> dict:
    try:
        return torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # torch without cpuinfo: assume no bf16 units
        return {}


def _cpu_native_dtype(capabilities: dict) -> torch.dtype:
    """bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else fp32: elsewhere bf16
    matmuls are emulated and slower than fp32."""
    native = capabilities.get("avx512_bf16") or capabilities.get("amx_bf16")
    return torch.bfloat16 if native else torch.float32


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype in (None, "auto", "native") and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype in (None, "auto"):
        # fp32 keeps a row's text independent of the rows batched with it; in bf16 the rounding of
        # a padded batch differs from the row's own and sampled texts diverge within a few tokens
        return torch.float32
    if dtype == "native":  # speed first: bf16 where the CPU computes it, rows then depend on batching
        return _cpu_native_dtype(_cpu_capabilities()) if device.type == "cpu" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported: use one of {', '.join(_DTYPES)}, 'auto' or 'native'")
    return _DTYPES[dtype]


def _free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


class _SlotLayer(DynamicLayer):
    """A full-attention KV layer in a preallocated buffer.

    `DynamicLayer` concatenates (copies the whole cache) on every token; this appends in
    place, and lets the engine drop rows, add rows and cut all-padding columns on the left.
    """

    def __init__(self):
        super().__init__()
        self.buf_k = self.buf_v = None
        self.start = self.end = 0

    def _view(self) -> None:
        self.keys = self.buf_k[:, :, self.start : self.end]
        self.values = self.buf_v[:, :, self.start : self.end]

    def _realloc(self, length: int) -> None:
        b, h, _, d = self.buf_k.shape
        used = self.end - self.start
        new_k = self.buf_k.new_zeros(b, h, length, d)
        new_v = self.buf_v.new_zeros(b, h, length, self.buf_v.shape[-1])
        new_k[:, :, :used] = self.buf_k[:, :, self.start : self.end]
        new_v[:, :, :used] = self.buf_v[:, :, self.start : self.end]
        self.buf_k, self.buf_v, self.start, self.end = new_k, new_v, 0, used

    def update(self, key_states, value_states, *args, **kwargs):
        n = key_states.shape[-2]
        if self.buf_k is None:
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
            b, h, _, d = key_states.shape
            self.buf_k = key_states.new_zeros(b, h, n + _GROW, d)
            self.buf_v = value_states.new_zeros(b, h, n + _GROW, value_states.shape[-1])
        if self.end + n > self.buf_k.shape[2]:
            used = self.end - self.start
            self._realloc(used + n + max(_GROW, used // 2))
        self.buf_k[:, :, self.end : self.end + n] = key_states
        self.buf_v[:, :, self.end : self.end + n] = value_states
        self.end += n
        self._view()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.end - self.start

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.buf_k is not None:
            self.buf_k, self.buf_v = self.buf_k[indices], self.buf_v[indices]
            self._view()

    def compact(self, holes: torch.Tensor, movers: torch.Tensor, rows: int) -> None:
        """Keep the first `rows` rows, row `movers[i]` moved into row `holes[i]`: only the moved
        rows' used columns are copied, not every kept row's whole buffer."""
        if self.buf_k is None:
            return
        if len(holes):
            used = slice(self.start, self.end)
            self.buf_k[holes, :, used] = self.buf_k[movers, :, used]
            self.buf_v[holes, :, used] = self.buf_v[movers, :, used]
        self.buf_k, self.buf_v = self.buf_k[:rows], self.buf_v[:rows]
        self._view()

    def trim_left(self, columns: int) -> None:
        self.start += columns
        self._view()

    def merge(self, other: "_SlotLayer") -> None:
        """Stack `other`'s rows under ours, both right-aligned (their left padding is zeros)."""
        mine, theirs = self.end - self.start, other.end - other.start
        length = max(mine, theirs)
        b1, h, _, d = self.buf_k.shape
        b2 = other.buf_k.shape[0]
        new_k = self.buf_k.new_zeros(b1 + b2, h, length + _GROW, d)
        new_v = self.buf_v.new_zeros(b1 + b2, h, length + _GROW, self.buf_v.shape[-1])
        new_k[:b1, :, length - mine : length] = self.keys
        new_v[:b1, :, length - mine : length] = self.values
        new_k[b1:, :, length - theirs : length] = other.keys
        new_v[b1:, :, length - theirs : length] = other.values
        self.buf_k, self.buf_v, self.start, self.end = new_k, new_v, 0, length
        self._view()


_CDF_BLOCK = 256  # vocab entries per block of the two-level inverse CDF


def _inverse_cdf(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Per row, the token where the running sum of `probs` first exceeds `uniform` x the row's mass.

    A cumsum over the whole vocab is serial per row and costs as much as the softmax; summing
    fixed blocks, finding the block, then summing within it finds the same token (up to float
    rounding at a boundary) and depends on the row alone, not on the batch.
    """
    rows, vocab = probs.shape
    full = vocab - vocab % _CDF_BLOCK
    mass = probs[:, :full].unflatten(-1, (-1, _CDF_BLOCK)).sum(-1)
    if full < vocab:  # no padded copy of the probabilities: the short last block is summed apart
        mass = torch.cat([mass, probs[:, full:].sum(-1, keepdim=True)], dim=-1)
    ends = mass.cumsum(-1)
    target = (uniform * ends[:, -1]).unsqueeze(-1)
    block = torch.searchsorted(ends, target, right=True).clamp_(max=ends.shape[-1] - 1)
    before = torch.where(block > 0, ends.gather(-1, (block - 1).clamp(min=0)), 0.0)
    ids = block * _CDF_BLOCK + torch.arange(_CDF_BLOCK, device=probs.device)
    inside = probs.gather(-1, ids.clamp(max=vocab - 1)).masked_fill_(ids >= vocab, 0.0)
    offset = torch.searchsorted(inside.cumsum(-1), (target - before).clamp_(min=0), right=True)
    # past the block's end by rounding: its last token with any probability
    last = torch.where(inside > 0, ids - block * _CDF_BLOCK, 0).amax(-1, keepdim=True)
    return (block * _CDF_BLOCK + torch.minimum(offset, last)).squeeze(-1)


def _slot_cache(model) -> DynamicCache | None:
    """A cache of `_SlotLayer`s when every layer is plain full attention, else None."""
    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [_SlotLayer() for _ in cache.layers]
    return cache


@dataclass
class _Row:
    """One sample being generated."""

    prompt: int
    sample: int
    prompt_ids: list[int]
    rng: random.Random
    out: list[int] = field(default_factory=list)
    text: str | None = None
    finish: str | None = None
    matcher: object | None = None  # llguidance.LLMatcher when the answer must follow a JSON schema


@dataclass
class _Batch:
    """The rows decoding together and their state; row i of every tensor is rows[i]."""

    rows: list[_Row]
    cache: DynamicCache
    width: int  # cache columns (padding included); rows are right-aligned in them
    lengths: torch.Tensor  # tokens of each row in the cache (= its next position id)
    logits: torch.Tensor  # next-token logits, float32 [rows, vocab]
    seen: torch.Tensor | None  # token ids already in each row, for the repetition penalty

    def select(self, keep: list[int]) -> None:
        """Keep rows `keep` (ascending), in a new order: the kept rows past the end of the
        kept count fill the holes the dropped rows leave, so a slot cache moves only those."""
        count, kept = len(keep), set(keep)
        holes = [i for i in range(count) if i not in kept]
        movers = [i for i in keep if i >= count]
        order = list(range(count))
        for hole, mover in zip(holes, movers):
            order[hole] = mover
        device = self.lengths.device
        index = torch.tensor(order, device=device)
        self.rows = [self.rows[i] for i in order]
        if all(isinstance(layer, _SlotLayer) for layer in self.cache.layers):
            holes_t, movers_t = torch.tensor(holes, device=device), torch.tensor(movers, device=device)
            for layer in self.cache.layers:
                layer.compact(holes_t, movers_t, count)
        else:
            self.cache.batch_select_indices(index)
        self.lengths, self.logits = self.lengths[index], self.logits[index]
        if self.seen is not None:
            self.seen = self.seen[index]

    def trim(self) -> None:
        """Cut the columns that are padding for every row (slot caches only)."""
        columns = self.width - int(self.lengths.max())
        if columns > 0:
            for layer in self.cache.layers:
                layer.trim_left(columns)
            self.width -= columns

    def merge(self, other: "_Batch") -> None:
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.merge(theirs)
        self.width = max(self.width, other.width)
        self.rows += other.rows
        self.lengths = torch.cat([self.lengths, other.lengths])
        self.logits = torch.cat([self.logits, other.logits])
        if self.seen is not None:
            self.seen = torch.cat([self.seen, other.seen])


def _load_model(path: str, dtype: torch.dtype, trust_remote_code: bool, attn_implementation: str | None):
    """The causal LM, with `attn_implementation` (transformers' names, or `engines.attention`'s).

    None: the folded grouped-query attention (`engines.attention`), which decodes the same tokens
    with no copy of K and V per step, where the model's class takes an attention function; else
    transformers' default.
    """
    from .attention import ATTENTION, register

    def load(implementation: str | None):
        extra = {"attn_implementation": implementation} if implementation else {}
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code, **extra)

    if attn_implementation in (None, ATTENTION):
        register()
    if attn_implementation is not None:
        return load(attn_implementation)
    try:
        return load(ATTENTION)
    except (ValueError, ImportError):  # a class that does not take attention functions (remote code, ...)
        return load(None)


_CPU_BATCH, _GPU_BATCH = 256, 1024  # rows decoding at once by default (vLLM's max_num_seqs on an H100: 1,024)


class TransformersEngine:
    """`Engine` on a transformers causal LM (see the module docstring).

    Options: `dtype` ("float32", "bfloat16", "float16"; "auto", the default: bf16 on CUDA, fp32
    on CPU, where a row depends on its batch only at a near-tie between two tokens; "native":
    bf16 also on CPUs with AVX512-BF16 or AMX, faster there),
    `device` (default cuda when available, else cpu), `batch_size` (most rows decoding
    at once, default 1,024 on CUDA and 256 elsewhere, lowered to fit the KV cache in half the
    free memory),
    `trust_remote_code` (default False), `attn_implementation` (default: `engines.attention`'s
    folded grouped-query attention where the model takes it; "sdpa" or "eager": transformers' own).
    """

    name = "transformers"
    supports_json_schema = True  # Sampling.json_schema -> llguidance token masks

    def __init__(
        self,
        path: str,
        model_id: str | None = None,
        dtype=None,
        device: str | None = None,
        batch_size: int | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
    ):
        _one_thread_if_forked()
        self.model_id = model_id or path
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _resolve_dtype(dtype, self.device)
        if batch_size is None:  # a GPU wants many rows in flight; 2 CPU cores are full with far fewer
            batch_size = _GPU_BATCH if self.device.type == "cuda" else _CPU_BATCH
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self.model = _load_model(path, self.dtype, trust_remote_code, attn_implementation)
        self.model.to(self.device).eval()
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.vocab_size = self.model.get_output_embeddings().weight.shape[0]
        text = self.model.config.get_text_config()
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        # bytes of K and V for one token across all layers: what one row's cache grows by per step
        self.kv_bytes_per_token = 2 * text.num_hidden_layers * kv_heads * head_dim * self.dtype.itemsize
        self._ll_key = None  # stop ids the llguidance tokenizer (for json_schema) was built with
        self._ll_lock = threading.Lock()
        self._loop = SharedLoop()
        self.concurrency = self.batch_size  # rows decoding at once: what a runner keeps in flight to fill it

    def close(self) -> None:
        """Drop the weights (`release_engines` calls it); the engine cannot generate after."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _eos_ids(self) -> set[int]:
        ids = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update([source] if isinstance(source, int) else source)
        return ids

    def capacity(self, longest_prompt: int, max_tokens: int) -> int:
        """Most rows to decode at once: `batch_size`, lowered so the worst-case KV cache
        (every row at prompt + max_tokens) fits in half the free memory."""
        per_row = self.kv_bytes_per_token * (longest_prompt + max_tokens)
        return max(1, min(self.batch_size, _free_memory_bytes(self.device) // 2 // max(per_row, 1)))

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        if self.model is None:
            raise RuntimeError("This engine was released (release_engines()); get a new one with load_engine(...)")
        _one_thread_if_forked()
        encoded = encode_prompts(self.tokenizer, prompts, sampling)
        keys = prompt_seeds(sampling, len(prompts), seeds)
        check_first_token(sampling, self.vocab_size)
        if sampling.n < 1 or not prompts:
            return [[] for _ in prompts]
        stop_ids, text_stops = split_stops(self.tokenizer, sampling.stop)  # ids are checked per step for free
        stop_ids |= self.eos_ids | set(sampling.stop_token_ids)
        if keys is None:
            unseeded = random.SystemRandom().getrandbits(63)
            keys = [f"{unseeded}/{p}" for p in range(len(prompts))]
        rows = [
            _Row(p, k, encoded[p], random.Random(f"{keys[p]}/{k}"))
            for p in sorted(range(len(prompts)), key=lambda p: len(encoded[p]))
            for k in range(sampling.n)
        ]
        if sampling.json_schema:
            self._attach_matchers(rows, sampling.json_schema, stop_ids)
        # several threads may call at once (a runner's batches in flight): calls with the same
        # sampling join one continuous batch; the rows are filled in place
        self._loop.run(Call((rows, stop_ids, text_stops), group=sampling), self._drive)
        results: list[list[Completion]] = [[None] * sampling.n for _ in prompts]  # type: ignore[list-item]
        for row in rows:
            results[row.prompt][row.sample] = Completion(
                text=row.text, finish_reason=row.finish, prompt_tokens=len(row.prompt_ids), completion_tokens=len(row.out)
            )
        return counted(results)

    def _attach_matchers(self, rows: list[_Row], schema: str, stop_ids: set[int]) -> None:
        with self._ll_lock:  # callers in several threads share the llguidance tokenizer
            self._attach_matchers_locked(rows, schema, stop_ids)

    def _attach_matchers_locked(self, rows: list[_Row], schema: str, stop_ids: set[int]) -> None:
        key = tuple(sorted(stop_ids))
        if self._ll_key != key:  # the grammar ends on the same tokens as the text
            self._ll_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.vocab_size, eos_token=list(key))
            self._ll_key = key
            self._ll_executor = llguidance.LLExecutor()
        # one fixed layout (no free whitespace): a weak model cannot pad the answer with blank lines
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
        )
        for row in rows:
            row.matcher = llguidance.LLMatcher(self._ll_tokenizer, grammar, log_level=0)
            if row.matcher.is_error():
                raise ValueError(f"Sampling.json_schema is not a usable JSON schema: {row.matcher.get_error()}")

    def _drive(self, loop: SharedLoop) -> None:
        """Run the waiting calls, one `Sampling` (group) at a time, until none is left."""
        with torch.inference_mode():
            while calls := loop.take():
                self._run(loop, calls)

    def _run(self, loop: SharedLoop, calls: list[Call]) -> None:
        """Continuous batching of `calls` (one `Sampling`), and of the calls with the same
        sampling that arrive while they run; each call is finished when its last row is."""
        sampling = calls[0].group
        _, stop_ids, text_stops = calls[0].payload
        stop_tensor = torch.tensor(sorted(stop_ids), dtype=torch.long, device=self.device)
        stop_window = max((len(s) for s in text_stops), default=0) + 1
        slots = _slot_cache(self.model) is not None  # can rows join a running batch?
        waiting: deque[_Row] = deque()
        running: list[Call] = []
        longest = capacity = 0
        batch: _Batch | None = None
        while True:
            for call in calls:
                rows = call.payload[0]
                running.append(call)
                waiting.extend(rows)
                longest = max(longest, max(len(r.prompt_ids) for r in rows))
                capacity = self.capacity(longest, sampling.max_tokens)
            live = [] if batch is None else [i for i, row in enumerate(batch.rows) if row.finish is None]
            if batch is not None and not live:
                batch = None
            free = capacity - len(live)
            # admit waiting rows in chunks: each admission copies the cache once
            admit = bool(waiting) and free > 0 and (
                batch is None or (slots and (free >= max(1, capacity // 4) or free >= len(waiting)))
            )
            # finished rows ride along (their tokens are ignored) until dropping them is worth a copy
            finished = 0 if batch is None else len(batch.rows) - len(live)
            if finished and (admit or finished * 8 >= len(batch.rows)):
                batch.select(live)
                if slots:
                    batch.trim()
            if admit:
                admitted = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                new = self._prefill(admitted, sampling, slots, stop_tensor)
                if batch is None:
                    batch = new
                else:
                    batch.merge(new)
            if batch is None:
                return
            tokens = self._sample(batch, sampling)
            self._record(batch, tokens, sampling, stop_tensor, text_stops, stop_window)
            for call in [c for c in running if all(row.finish for row in c.payload[0])]:
                running.remove(call)
                loop.finish(call)
            calls = loop.take(sampling) if slots else []  # join the batch (not where rows cannot)
            if all(row.finish for row in batch.rows):
                continue
            self._step(batch, tokens)

    def _prefill(self, rows: list[_Row], sampling: Sampling, slots: bool, stop_tensor: torch.Tensor) -> _Batch:
        """Run each distinct prompt once (left-padded), then give every row its prompt's cache."""
        # keyed by the tokens: step 1 sends the same pre-query once per row
        first_rows = {}
        for row in rows:
            first_rows.setdefault(tuple(row.prompt_ids), row)
        order = {ids: i for i, ids in enumerate(first_rows)}
        unique = [row.prompt_ids for row in first_rows.values()]
        # bound the tokens of one forward pass (activation memory); slot caches can be stacked
        chunk = max(1, _PREFILL_TOKENS // max(len(ids) for ids in unique)) if slots else len(unique)
        cache, logits, width = None, [], 0
        for first in range(0, len(unique), chunk):
            part = unique[first : first + chunk]
            part_cache, part_logits = self._forward_prompts(part, slots)
            width = max(width, max(len(ids) for ids in part))
            logits.append(part_logits)
            if cache is None:
                cache = part_cache
            else:
                for mine, theirs in zip(cache.layers, part_cache.layers):
                    mine.merge(theirs)
        index = torch.tensor([order[tuple(r.prompt_ids)] for r in rows], device=self.device)
        cache.batch_select_indices(index)  # one copy of the prompt's cache per sample
        lengths = torch.tensor([len(r.prompt_ids) for r in rows], device=self.device)
        seen = None
        if sampling.repetition_penalty != 1.0:
            seen = torch.zeros((len(rows), self.vocab_size), dtype=torch.bool, device=self.device)
            if sampling.penalize_prompt:  # else only the tokens this completion generates count
                for i, row in enumerate(rows):
                    seen[i, torch.tensor(row.prompt_ids, device=self.device)] = True
            # The end-of-turn token closes every earlier turn of a chat prompt; penalising it
            # keeps a model from ending its answer (SmolLM2-135M: 10/18 answers ended within
            # 512 tokens at penalty 1.2, 17/18 with stop tokens exempt). A stop token ends
            # the row, so it never needs a penalty for having been generated either.
            seen[:, stop_tensor] = False
        return _Batch(rows, cache, width, lengths, torch.cat(logits)[index], seen)

    def _forward_prompts(self, prompts: list[list[int]], slots: bool):
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, ids in enumerate(prompts):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        cache = _slot_cache(self.model) if slots else DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return cache, out.logits[:, -1, :].float()

    def _sample(self, batch: _Batch, sampling: Sampling) -> torch.Tensor:
        logits = batch.logits
        # rows about to draw their first token (rows join at different steps: continuous batching)
        first = [i for i, row in enumerate(batch.rows) if not row.out] if sampling.controls_first_token else []
        if first and sampling.first_token_bias:
            ids = torch.tensor([t for t, _ in sampling.first_token_bias], device=self.device)
            values = torch.tensor([b for _, b in sampling.first_token_bias], device=self.device, dtype=logits.dtype)
            logits = logits.clone()
            logits[torch.tensor(first, device=self.device).unsqueeze(-1), ids] += values
        if batch.seen is not None:
            penalty = sampling.repetition_penalty
            logits = torch.where(batch.seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)
        if sampling.json_schema:
            mask = llguidance.torch.allocate_token_bitmask(len(batch.rows), self.vocab_size)
            # finished rows ride along unmasked (their tokens are ignored); the rest in parallel
            live = [(row.matcher, i) for i, row in enumerate(batch.rows) if row.finish is None]
            llguidance.torch.fill_next_token_bitmask_par(self._ll_executor, live, mask)
            logits = logits.clone() if logits is batch.logits else logits
            llguidance.torch.apply_token_bitmask_inplace(logits, mask.to(logits.device))
        if sampling.temperature == 0:
            return logits.argmax(-1)
        if first and sampling.first_token_temperature is not None:
            temperature = torch.full((len(batch.rows), 1), float(sampling.temperature), device=self.device)
            temperature[first] = float(sampling.first_token_temperature)
            probs = torch.softmax(logits / temperature, dim=-1)
        else:
            probs = torch.softmax(logits if sampling.temperature == 1 else logits / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            # drop tokens once the mass before them reaches top_p (the first one always stays)
            drop = (sorted_probs.cumsum(-1) - sorted_probs) >= sampling.top_p
            probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
        # inverse-CDF sampling with one uniform number per row from the row's own stream
        uniform = torch.tensor([row.rng.random() for row in batch.rows], device=self.device, dtype=probs.dtype)
        return _inverse_cdf(probs, uniform)

    def _record(self, batch, tokens, sampling, stop_tensor, text_stops, stop_window) -> None:
        """Append each row's new token; finish rows on a stop id, a stop string or max_tokens."""
        hit_stop = torch.isin(tokens, stop_tensor).tolist()
        for i, (row, token) in enumerate(zip(batch.rows, tokens.tolist())):
            if row.finish:
                continue
            row.out.append(token)
            if row.matcher is not None and not hit_stop[i]:
                row.matcher.consume_token(token)
            if hit_stop[i]:
                row.text, row.finish = self._decode(row.out[:-1]), "stop"
            elif text_stops and any(s in self._decode(row.out[-stop_window:]) for s in text_stops):
                text = self._decode(row.out)
                row.text, row.finish = text[: min(text.find(s) for s in text_stops if s in text)], "stop"
            elif len(row.out) >= sampling.max_tokens:
                row.text, row.finish = self._decode(row.out), "length"
            elif row.matcher is not None and row.matcher.is_stopped():  # the schema allows nothing more
                row.text, row.finish = self._decode(row.out), "stop"
        if batch.seen is not None:
            batch.seen[torch.arange(len(batch.rows), device=self.device), tokens] = True

    def _decode(self, ids: list[int]) -> str:
        # special tokens stay visible so a leaked template marker can be detected downstream
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _step(self, batch: _Batch, tokens: torch.Tensor) -> None:
        """Feed each row its new token; store the next-token logits."""
        batch.width += 1
        width = batch.width
        batch.lengths = batch.lengths + 1
        # rows are right-aligned: row i's real tokens are its last lengths[i] columns
        mask = (torch.arange(width, device=self.device) >= (width - batch.lengths).unsqueeze(-1)).long()
        out = self.model(
            input_ids=tokens.unsqueeze(-1),
            attention_mask=mask,
            position_ids=(batch.lengths - 1).unsqueeze(-1),
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.logits = out.logits[:, -1, :].float()
