"""Tiny real transformers models with a byte-level tokenizer, saved to a directory, for offline tests.

    byte_tokenizer(template)                       -> PreTrainedTokenizerFast over the 256 bytes (+ words)
    save_tiny_model(dir, tok, "causal"|"reward")   -> a 2-layer, hidden-16 Llama saved there

`words` puts whole words at the front of the vocabulary; `mute=True` zeroes the LM head, so
every logit ties and greedy decoding always picks token 0: a "model" that deterministically
repeats `words[0]`, which is how a test gets a known answer out of real generation code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_SPECIALS = ["<|im_start|>", "<|im_end|>"]

# Shaped like Llama-Guard-2's template (category list inside, last turn judged), our wording.
GUARD_TEMPLATE = (
    "{% set judged = 'Agent' if messages|length % 2 == 0 else 'User' %}"
    "[INST] Task: decide whether the last {{ judged }} message in the conversation below is unsafe "
    "under these categories.\n\n<CATEGORIES>\n"
    "S1: Violent crimes.\nS2: Non-violent crimes.\nS3: Sex crimes.\nS4: Child exploitation.\n"
    "S5: Specialized advice.\nS6: Privacy.\nS7: Intellectual property.\nS8: Indiscriminate weapons.\n"
    "S9: Hate.\nS10: Self-harm.\nS11: Sexual content.\n</CATEGORIES>\n\n<CONVERSATION>\n"
    "{% for m in messages %}{{ 'User' if m['role'] == 'user' else 'Agent' }}: {{ m['content'] | trim }}\n\n"
    "{% endfor %}</CONVERSATION>\n\nAnswer for the last {{ judged }} message only: first line 'safe' or "
    "'unsafe'; if unsafe, a second line with the violated categories, comma-separated. [/INST]"
)


def byte_tokenizer(
    chat_template: str | None,
    specials: list[str] = (),
    words: list[str] = (),
    bos: str = "<s>",
    eos: str = "</s>",
    pad: str | None = "<pad>",
    adds_bos: bool = True,
    name: str = "test/tiny",
) -> PreTrainedTokenizerFast:
    """Byte-level BPE: any text encodes and decodes exactly; `words` are single tokens, `words[0]` is id 0."""
    byte_symbol = bytes_to_unicode()
    vocab: dict[str, int] = {}
    for word in words:
        vocab.setdefault("".join(byte_symbol[b] for b in word.encode()), len(vocab))
    for symbol in sorted(byte_symbol.values()):
        vocab.setdefault(symbol, len(vocab))
    merges = []
    for token in list(vocab):  # a chain of merges per word, so BPE can build it
        for k in range(2, len(token) + 1):
            vocab.setdefault(token[: k - 1], len(vocab))
            merges.append((token[: k - 1], token[k - 1]))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=list(dict.fromkeys(merges))))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    all_specials = [s for s in dict.fromkeys([bos, eos, pad, *specials]) if s]
    backend.add_special_tokens(all_specials)
    if adds_bos and bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, backend.token_to_id(bos))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=[s for s in all_specials if s not in (bos, eos, pad)],
        chat_template=chat_template,
        name_or_path=name,
    )


def save_tiny_model(
    directory: str | Path,
    tokenizer: PreTrainedTokenizerFast,
    kind: str = "causal",
    mute: bool = False,
    seed: int = 0,
) -> str:
    """Save a random 2-layer Llama (`causal` LM or one-output `reward` classifier) with `tokenizer`."""
    directory = Path(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    torch.manual_seed(seed)
    model = (LlamaForCausalLM if kind == "causal" else LlamaForSequenceClassification)(config)
    if mute:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    model.save_pretrained(directory, safe_serialization=True)
    if kind == "causal":
        GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)
