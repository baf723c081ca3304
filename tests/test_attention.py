"""The folded grouped-query attention of the transformers engine's decode steps
(`engines/attention.py`) computes what transformers' SDPA path does, on real models."""

from __future__ import annotations

import types

import torch


from transformers import LlamaConfig, LlamaForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from magpie_datasets.engines import Sampling
from magpie_datasets.engines.attention import ATTENTION, folded_sdpa_attention
from magpie_datasets.engines.transformers_engine import TransformersEngine
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer


def test_a_decode_step_with_padding_gives_sdpa_s_output():
    torch.manual_seed(0)
    batch, heads, kv_heads, length, dim = 3, 6, 2, 11, 8
    module = types.SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    query = torch.randn(batch, heads, 1, dim)
    key, value = torch.randn(batch, kv_heads, length, dim), torch.randn(batch, kv_heads, length, dim)
    real = torch.tensor([11, 4, 7])  # right-aligned rows, left padding masked out
    mask = (torch.arange(length) >= (length - real).unsqueeze(-1)).view(batch, 1, 1, length)
    ours, _ = folded_sdpa_attention(module, query, key, value, mask, scaling=dim**-0.5)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    assert ours.shape == theirs.shape == (batch, 1, heads, dim)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # row 1 sees only its last 4 positions: changing a padded position changes nothing
    key[1, :, 0] += 100.0
    assert torch.allclose(folded_sdpa_attention(module, query, key, value, mask, scaling=dim**-0.5)[0][1], ours[1])


def test_the_engine_writes_the_same_rows_with_either_attention(tmp_path):
    tokenizer = byte_tokenizer(CHATML, specials=CHATML_SPECIALS)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "gqa")
    tokenizer.save_pretrained(tmp_path / "gqa")
    plain = TransformersEngine(str(tmp_path / "gqa"), attn_implementation="sdpa", batch_size=3)
    folded = TransformersEngine(str(tmp_path / "gqa"), attn_implementation=ATTENTION, batch_size=3)
    assert folded.model.config._attn_implementation == ATTENTION
    default = TransformersEngine(str(tmp_path / "gqa"), batch_size=3)
    assert default.model.config._attn_implementation == ATTENTION  # the engine's default
    prompts = ["<|im_start|>user\nhi<|im_end|>\n", "<|im_start|>user\na longer question here<|im_end|>\n", "x"]
    for sampling in (Sampling(temperature=0.0, max_tokens=12), Sampling(n=2, temperature=1.0, max_tokens=12)):
        seeds = [11, 12, 13]
        assert ([[c.text for c in row] for row in plain.generate(prompts, sampling, seeds=seeds)]
                == [[c.text for c in row] for row in folded.generate(prompts, sampling, seeds=seeds)])
