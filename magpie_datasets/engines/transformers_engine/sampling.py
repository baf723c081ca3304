"""The sampling maths of the transformers engine: pure functions on logits and probability tensors
(first-token bias and temperature, repetition penalty, top-p, greedy or inverse-CDF sampling)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def apply_first_token_bias(logits: torch.Tensor, first: Sequence[int], bias: Sequence[tuple[int, float]]) -> torch.Tensor:
    """A copy of `logits` with `bias` ((token id, value) pairs) added to the rows `first` only."""
    ids = torch.tensor([t for t, _ in bias], device=logits.device)
    values = torch.tensor([b for _, b in bias], device=logits.device, dtype=logits.dtype)
    logits = logits.clone()
    logits[torch.tensor(list(first), device=logits.device).unsqueeze(-1), ids] += values
    return logits


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Logits of the tokens `seen` (bool, same shape) divided by `penalty` where positive, multiplied
    where not; other tokens unchanged."""
    return torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)


def softmax_at_temperature(
    logits: torch.Tensor, temperature: float, first: Sequence[int] = (), first_temperature: float | None = None
) -> torch.Tensor:
    """Probabilities at `temperature`; rows `first` at `first_temperature` when it is given."""
    if first and first_temperature is not None:
        per_row = torch.full((logits.shape[0], 1), float(temperature), device=logits.device)
        per_row[list(first)] = float(first_temperature)
        return torch.softmax(logits / per_row, dim=-1)
    return torch.softmax(logits if temperature == 1 else logits / temperature, dim=-1)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """`probs` with the tail past `top_p` zeroed (not renormalised); unchanged when top_p >= 1."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    # drop tokens once the mass before them reaches top_p (the first one always stays)
    drop = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
    return probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))


_CDF_BLOCK = 256  # vocab entries per block of the two-level inverse CDF


def inverse_cdf(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
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


def pick_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    draw: Callable[[], list[float]],
    first: Sequence[int] = (),
    first_temperature: float | None = None,
) -> torch.Tensor:
    """One token per row: the argmax at temperature 0, else inverse-CDF sampling of the (top-p
    filtered) softmax with one uniform number per row from `draw`, called only when sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = top_p_filter(softmax_at_temperature(logits, temperature, first, first_temperature), top_p)
    # inverse-CDF sampling with one uniform number per row from the row's own stream
    uniform = torch.tensor(draw(), device=logits.device, dtype=probs.dtype)
    return inverse_cdf(probs, uniform)
