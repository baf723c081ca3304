"""The model families Magpie recognises by their chat template, with the authors' published strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class _Layout:
    """How a template lays out a lone user turn (the family's BOS removed from `before`)."""

    source: str  # the Jinja source
    before: str  # text before the user text
    after: str  # text after the user text, no generation prompt
    post: str  # text after the user text, with the generation prompt


@dataclass(frozen=True)
class _Family:
    name: str
    pre_query: str  # the authors' published string (magpie-align configs/model_configs.json)
    stop: tuple[str, ...]  # the authors' published stop strings
    bos: str | None  # the BOS the published string starts with; the tokenizer must use the same
    matches: Callable[[_Layout], bool]
    assistant_stop: tuple[str, ...] = ("assistant",)  # the authors' stop_tokens_assistant
    first_token_bias: tuple[tuple[str, float], ...] = ()  # with the bare pre-query (system_prompt=None)


_LLAMA3_USER = "<|start_header_id|>user<|end_header_id|>\n\n"
_LLAMA3_STOP = ("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>")
_QWEN_STOP = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
_QWEN2_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
_QWEN25_SYSTEM = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
)
_CHATML_USER = "<|im_start|>user\n"
# The release's de-markdown logits processor for Llama-3.1 (its str_utils): the first token of a
# step-1 instruction may not be a markdown header; -9999.999 is the release's value.
_NO_MARKDOWN_HEADER = tuple((header, -9999.999) for header in ("#", "##", "###", "####"))

# Recognised by what the template writes around a user turn (or a distinctive line of its
# source), never by the model's name. Order matters: the first match wins.
_FAMILIES = (
    # Llama-3.1/3.2/3.3 always inject a dated system block; the authors used the bare header.
    # Their generation_config also ends on <|eom_id|> (tool turns), which 3.2's template never writes.
    _Family(
        "llama-3.1",
        "<|begin_of_text|>" + _LLAMA3_USER,
        (*_LLAMA3_STOP, "<|eom_id|>"),
        "<|begin_of_text|>",
        lambda t: t.before.endswith("<|eot_id|>" + _LLAMA3_USER) and "Cutting Knowledge Date:" in t.before,
        first_token_bias=_NO_MARKDOWN_HEADER,
    ),
    _Family(
        "llama-3",
        "<|begin_of_text|>" + _LLAMA3_USER,
        _LLAMA3_STOP,
        "<|begin_of_text|>",
        lambda t: t.before == _LLAMA3_USER and t.after.startswith("<|eot_id|>"),
    ),
    # Qwen2.5 without its default system prompt gives fragmentary queries: keep it (authors' choice).
    _Family(
        "qwen2.5",
        _QWEN25_SYSTEM + _CHATML_USER,
        _QWEN_STOP,
        None,
        lambda t: t.before == _QWEN25_SYSTEM + _CHATML_USER,
        assistant_stop=("Assistant", "assistant"),  # as the authors' Qwen2 entries
    ),
    # Qwen2 (and Qwen1.5, same template): the authors dropped the injected default system prompt.
    _Family(
        "qwen2",
        _CHATML_USER,
        _QWEN_STOP,
        None,
        lambda t: t.before == _QWEN2_SYSTEM + _CHATML_USER,
        assistant_stop=("Assistant", "assistant"),
    ),
    # Yi writes the assistant header after every user turn, generation prompt or not.
    _Family(
        "yi-1.5",
        "<|startoftext|>" + _CHATML_USER,
        ("<|startoftext|>", "<|endoftext|>", "<|im_end|>"),
        "<|startoftext|>",
        lambda t: t.before == _CHATML_USER and t.after == "<|im_end|>\n<|im_start|>assistant\n",
    ),
    # Gemma-1/2 (same template) reject system messages; Gemma-3 folds them in, and is not this.
    _Family(
        "gemma-2",
        "<bos><start_of_turn>user\n\n",
        ("<eos>", "<bos>", "<end_of_turn>"),
        "<bos>",
        lambda t: t.before == "<start_of_turn>user\n" and "System role not supported" in t.source,
    ),
    _Family(
        "phi-3",
        "<s> <|user|>\n",
        ("</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
        "<s>",
        lambda t: t.before == "<|user|>\n" and t.after.startswith("<|end|>"),
    ),
    _Family(
        "mistral-v0.3",
        "<s> [INST] ",
        ("<s>", "</s>", "[INST]", "[/INST]"),
        "<s>",
        lambda t: t.before == "[INST] " and t.post == "[/INST]",
    ),
    _Family(
        "llama-2",
        "<s> [INST] ",
        ("</s>", "<s>", "<unk>"),
        "<s>",
        lambda t: t.before == "[INST] " and t.post == " [/INST]" and "<<SYS>>" in t.source,
    ),
)


def _family(tokenizer, source: str, before: str, after: str, post: str) -> _Family | None:
    bos = getattr(tokenizer, "bos_token", None)
    for family in _FAMILIES:
        if family.bos is not None and family.bos != bos:
            continue  # the published string would start with the wrong BOS
        # Strip only the family's own BOS: SmolLM2's BOS is <|im_start|>, also its role-header start.
        rest = before[len(family.bos) :] if family.bos and before.startswith(family.bos) else before
        if family.matches(_Layout(source, rest, after, post)):
            return family
    return None
