"""Attention for the transformers engine's decode steps: grouped-query attention without copies.

With a padding mask (every continuous-batching step has one), transformers' SDPA path cannot use
SDPA's own grouped-query mode and copies K and V of every layer `num_key_value_groups` times
(`repeat_kv`) before each call. In a decode step the query is one token per row, so the query
heads that share a KV head can instead be folded into that head's query positions:

    query [batch, heads, 1, dim] -> [batch, kv_heads, groups, dim]   (a view, no copy)
    key, value [batch, kv_heads, length, dim]                        (as cached, no copy)

One SDPA call then computes the same attention (the row's mask broadcasts over the folded
positions), reading each cached K and V once. Prefill (more than one query token) and models
without grouped KV heads go through transformers' SDPA unchanged.

`ATTENTION` names it for `from_pretrained(attn_implementation=...)`; it is registered once per
process with transformers' attention and mask interfaces (SDPA's masks).
"""

from __future__ import annotations

import functools

import torch

ATTENTION = "magpie_folded_sdpa"


def folded_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' attention-function signature; returns (output [batch, q_len, heads, dim], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    batch, heads, q_len, dim = query.shape
    if q_len != 1 or groups == 1 or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    kv_heads = key.shape[1]
    # query head h reads KV head h // groups (transformers' repeat_kv), so the folded view is exact
    folded = query.view(batch, kv_heads, groups, dim)
    mask = attention_mask
    if mask is not None and mask.dim() == 4:  # [batch, 1, 1, length]: the same for every folded position
        mask = mask[:, :, :, : key.shape[-2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        folded, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling, is_causal=False
    )
    return out.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


@functools.cache
def register() -> str:
    """Register the attention with transformers (once); returns its name for `attn_implementation`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, folded_sdpa_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION
