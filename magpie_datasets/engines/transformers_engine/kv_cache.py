"""The transformers engine's KV cache and batch state: preallocated slot layers, and the rows
decoding together (`_Batch`, `_Row`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

if TYPE_CHECKING:
    import llguidance

_GROW = 64  # KV buffer slack (tokens) added on each reallocation


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


def _slot_cache(model) -> DynamicCache | None:
    """A cache of `_SlotLayer`s when every layer is plain full attention, else None."""
    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [_SlotLayer() for _ in cache.layers]
    return cache


def prefill_chunks(lengths: list[int], budget: int, waste: float = 0.125) -> list[list[int]]:
    """Prompts to prefill together, as lists of indices into `lengths`: shortest first, each chunk
    at most `budget` tokens padded to its longest prompt, and at most `waste` of those padding.

    A forward pass costs its padded tokens (on a CPU, in proportion), so one long prompt among
    short ones would pad them all to its length; similar lengths go together instead.

    >>> prefill_chunks([60, 158, 62, 64, 150], budget=1000)
    [[0, 2, 3], [4, 1]]
    >>> prefill_chunks([10, 10, 10], budget=20)
    [[0, 1], [2]]
    """
    chunks: list[list[int]] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        padded = lengths[i] * (len(chunks[-1]) + 1) if chunks else 0
        if not chunks or padded > budget or padded - total - lengths[i] > waste * padded:
            chunks.append([])
            total = 0
        chunks[-1].append(i)
        total += lengths[i]
    return chunks


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
    matcher: llguidance.LLMatcher | None = None  # llguidance.LLMatcher when the answer must follow a JSON schema


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
                cast(_SlotLayer, layer).compact(holes_t, movers_t, count)  # all checked just above
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
                cast(_SlotLayer, layer).trim_left(columns)  # slot caches only (see the docstring)
            self.width -= columns

    def merge(self, other: "_Batch") -> None:
        for mine, theirs in zip(self.cache.layers, other.cache.layers):  # slot caches only: rows join only there
            cast(_SlotLayer, mine).merge(cast(_SlotLayer, theirs))
        self.width = max(self.width, other.width)
        self.rows += other.rows
        self.lengths = torch.cat([self.lengths, other.lengths])
        self.logits = torch.cat([self.logits, other.logits])
        if self.seen is not None:
            assert other.seen is not None  # same Sampling, so both batches track seen tokens
            self.seen = torch.cat([self.seen, other.seen])
