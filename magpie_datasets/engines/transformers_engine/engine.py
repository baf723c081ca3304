"""`TransformersEngine`: loads a transformers causal LM and generates with it (prefill, decode
steps, the continuous-batching loop, JSON-schema masks and stop detection).

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

import random
import threading
from collections import deque
from typing import Sequence, cast

import llguidance
import llguidance.hf
import llguidance.torch
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedTokenizerFast

from ..base import (
    CPU_ROWS_IN_FLIGHT,
    GPU_ROWS_IN_FLIGHT,
    Completion,
    Occupancy,
    Sampling,
    check_first_token,
    counted,
    encode_prompts,
    prompt_seeds,
    split_stops,
)
from ..shared_loop import Call, SharedLoop
from .device import _free_memory_bytes, _one_thread_if_forked, _resolve_dtype
from .kv_cache import _Batch, _Row, _slot_cache, _SlotLayer, prefill_chunks
from .sampling import apply_first_token_bias, apply_repetition_penalty, pick_tokens

_PREFILL_TOKENS = 16384  # most prompt tokens (padding included) in one prefill forward pass


def _load_model(path: str, dtype: torch.dtype, trust_remote_code: bool, attn_implementation: str | None):
    """The causal LM, with `attn_implementation` (transformers' names, or `engines.attention`'s).

    None: the folded grouped-query attention (`engines.attention`), which decodes the same tokens
    with no copy of K and V per step, where the model's class takes an attention function; else
    transformers' default.
    """
    from ..attention import ATTENTION, register

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
            batch_size = GPU_ROWS_IN_FLIGHT if self.device.type == "cuda" else CPU_ROWS_IN_FLIGHT
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
        self._ll_key: tuple[int, ...] | None = None  # stop ids the llguidance tokenizer (for json_schema) was built with
        self._ll_lock = threading.Lock()
        self._loop = SharedLoop()
        self.concurrency = self.batch_size  # rows decoding at once: what a runner keeps in flight to fill it
        self.occupancy = Occupancy(0, 0, self.batch_size)  # updated every step (progress bars)

    def close(self) -> None:
        """Drop the weights (`release_engines` calls it); the engine cannot generate after."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
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
            assert row.text is not None and row.finish is not None  # the loop finished every row
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
            # llguidance.hf checks the tokenizer itself: a slow one raises "Only fast tokenizers are supported"
            tokenizer = cast(PreTrainedTokenizerFast, self.tokenizer)
            self._ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=self.vocab_size, eos_token=list(key))
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
        try:
            with torch.inference_mode():
                while calls := loop.take():
                    self._run(loop, calls)
        finally:
            self.occupancy = Occupancy(0, 0, self.batch_size)

    def _run(self, loop: SharedLoop, calls: list[Call]) -> None:
        """Continuous batching of `calls` (one `Sampling`), and of the calls with the same
        sampling that arrive while they run; each call is finished when its last row is."""
        sampling = cast(Sampling, calls[0].group)  # generate() queues every call with group=sampling
        _, stop_ids, text_stops = calls[0].payload
        stop_tensor = torch.tensor(sorted(stop_ids), dtype=torch.long, device=self.device)
        stop_window = max((len(s) for s in text_stops), default=0) + 1
        slots = _slot_cache(self.model) is not None  # can rows join a running batch?
        waiting: deque[_Row] = deque()
        running: list[Call] = []
        longest = capacity = 0
        batch: _Batch | None = None
        while not loop.closing:  # the process is exiting (`SharedLoop.close`): stop between two steps
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
            if batch is not None and finished and (admit or finished * 8 >= len(batch.rows)):
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
            self.occupancy = Occupancy(sum(row.finish is None for row in batch.rows), len(waiting), capacity)
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
        first_rows: dict[tuple[int, ...], _Row] = {}
        for row in rows:
            first_rows.setdefault(tuple(row.prompt_ids), row)
        unique = [row.prompt_ids for row in first_rows.values()]
        # bound the tokens (activation memory) and the padding of one forward pass; slot caches can
        # be stacked, other caches take every prompt in one pass
        chunks = prefill_chunks([len(ids) for ids in unique], _PREFILL_TOKENS) if slots else [list(range(len(unique)))]
        order = {tuple(unique[i]): n for n, i in enumerate(i for chunk in chunks for i in chunk)}
        cache: DynamicCache | None = None
        logits: list[torch.Tensor] = []
        width = 0
        for chunk in chunks:
            part = [unique[i] for i in chunk]
            part_cache, part_logits = self._forward_prompts(part, slots)
            width = max(width, max(len(ids) for ids in part))
            logits.append(part_logits)
            if cache is None:
                cache = part_cache
            else:
                for mine, theirs in zip(cache.layers, part_cache.layers):  # several chunks: slot caches only
                    cast(_SlotLayer, mine).merge(cast(_SlotLayer, theirs))
        index = torch.tensor([order[tuple(r.prompt_ids)] for r in rows], device=self.device)
        assert cache is not None  # rows is not empty: at least one chunk ran
        cache.batch_select_indices(index)  # one copy of the prompt's cache per sample
        lengths = torch.tensor([len(r.prompt_ids) for r in rows], device=self.device)
        seen = None
        if sampling.repetition_penalty != 1.0:
            seen = torch.zeros((len(rows), self.vocab_size), dtype=torch.bool, device=self.device)
            if sampling.penalize_prompt:  # else only the tokens this completion generates count
                for i, row in enumerate(rows):
                    seen[i, torch.tensor(row.prompt_ids, device=self.device)] = True
            # The end-of-turn token closes every earlier turn of a chat prompt; penalising it
            # keeps a small model from ending its answer. A stop token ends the row, so it
            # never needs a penalty for having been generated either.
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
            logits = apply_first_token_bias(logits, first, sampling.first_token_bias)
        if batch.seen is not None:
            logits = apply_repetition_penalty(logits, batch.seen, sampling.repetition_penalty)
        if sampling.json_schema:
            logits = self._mask_to_schema(batch, logits)
        return pick_tokens(
            logits,
            sampling.temperature,
            sampling.top_p,
            lambda: [row.rng.random() for row in batch.rows],
            first,
            sampling.first_token_temperature,
        )

    def _mask_to_schema(self, batch: _Batch, logits: torch.Tensor) -> torch.Tensor:
        """`logits` with the tokens each live row's JSON-schema matcher forbids masked out."""
        mask = llguidance.torch.allocate_token_bitmask(len(batch.rows), self.vocab_size)
        # finished rows ride along unmasked (their tokens are ignored); the rest in parallel
        # every row has a matcher: generate() attaches them whenever Sampling.json_schema is set
        live = [(cast(llguidance.LLMatcher, row.matcher), i) for i, row in enumerate(batch.rows) if row.finish is None]
        llguidance.torch.fill_next_token_bitmask_par(self._ll_executor, live, mask)
        logits = logits.clone() if logits is batch.logits else logits
        llguidance.torch.apply_token_bitmask_inplace(logits, mask.to(logits.device))
        return logits

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
        text = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return cast(str, text)  # a flat list of ids decodes to one str

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
