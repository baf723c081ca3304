"""Magpie's prompts from a chat template: `ChatTemplate` (pre-query, post-query, stops), chat and next-turn prompts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .families import _Family, _family
from .render import (
    _ASSISTANT_SENTINEL,
    _SYSTEM_SENTINEL,
    USER_SENTINEL,
    TemplateError,
    _adds_bos,
    _model,
    _one_bos,
    _render,
    _split,
    _without_bos,
)
from .tokens import stop_token_ids


@dataclass(frozen=True)
class ChatTemplate:
    pre_query: str  # fed alone to the model in step 1; starts with one BOS if the model uses one
    post_query: str  # what the template writes after the user text, up to the assistant's text
    stop: tuple[str, ...]  # end-of-turn markers and role headers: step 1 stops at any of them
    family: str | None  # known family recognised from the template's content, else None
    system_prompt: str | None  # None (bare / authors' choice), "template" (as rendered) or the string used
    # Step 1 only: the role names the authors also stop at (`stop_tokens_assistant`), for a reply
    # header the model writes as plain text, where no special token marks it. Not for step 2: an
    # answer may say "assistant".
    assistant_stop: tuple[str, ...] = ()
    # Step 1 only: a logit bias for the first generated token, as (token text, bias): the family's
    # preset for its bare pre-query (Llama-3.1: no markdown header as the first token), else ()
    first_token_bias: tuple[tuple[str, float], ...] = ()


def _user_turn(
    tokenizer, system_prompt: str | None, chat_template_kwargs: Mapping[str, Any] | None = None
) -> tuple[str, str, str]:
    """(before, after, post) of the sentinel for a lone user turn, after an optional system message."""
    messages = [{"role": "user", "content": USER_SENTINEL}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    what = "a system message followed by a user turn" if system_prompt is not None else "a lone user turn"
    try:
        plain = _render(tokenizer, messages, False, what, chat_template_kwargs)
        prompted = _render(tokenizer, messages, True, what, chat_template_kwargs)
    except TemplateError as err:
        hint = (
            "it does not take a system message: leave system_prompt unset"
            if system_prompt is not None
            else "Magpie step 1 needs one; if it insists on a system message, pass system_prompt='...'"
        )
        raise TemplateError(f"{err} ({hint}).") from err
    before, after = _split(tokenizer, plain, USER_SENTINEL, "the user text")
    post = _split(tokenizer, prompted, USER_SENTINEL, "the user text")[1]
    if not _without_bos(tokenizer, before).strip():
        raise TemplateError(
            f"The chat template of {_model(tokenizer)} puts nothing before the user text, so the model gets "
            "no cue that a user turn has started (Magpie step 1 needs one). Use a chat/instruct model."
        )
    return before, after, post


def _markup_tokens(tokenizer) -> list[str]:
    """Special tokens of the tokenizer (BOS/EOS, role headers, end-of-turn markers ...)."""
    tokens = set(getattr(tokenizer, "all_special_tokens", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens.update(str(added) for added in decoder.values() if getattr(added, "special", False))
    return [t for t in tokens if t]


def _in_order(tokens: list[str], text: str) -> list[str]:
    found = [t for t in tokens if t in text]
    return sorted(found, key=lambda t: (text.index(t), -len(t), t))


def _generation_config_eos(tokenizer) -> list[str]:
    """EOS tokens listed in a local model directory's generation_config.json (e.g. Llama-3's <|eom_id|>)."""
    directory = getattr(tokenizer, "name_or_path", None)
    path = os.path.join(directory, "generation_config.json") if directory and os.path.isdir(directory) else None
    if not path or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        ids = json.load(f).get("eos_token_id")
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return [t for t in tokenizer.convert_ids_to_tokens(ids) if t]


def _stops(
    tokenizer, family: _Family | None, post: str, chat_template_kwargs: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """Everything that ends a turn or opens the next role's, so step 1 never runs on into a fake reply.

    eos, generation_config eos, the family's published stops, every special token the template
    writes around turns, and plain-text role headers ("Assistant:", "[/INST]") where a gap between
    turns has no special token at all.
    """
    conversation = [
        {"role": "user", "content": USER_SENTINEL},
        {"role": "assistant", "content": _ASSISTANT_SENTINEL},
        {"role": "user", "content": USER_SENTINEL},
    ]
    rendered = []
    for messages in ([{"role": "system", "content": _SYSTEM_SENTINEL}, *conversation], conversation):
        try:
            rendered.append(_render(tokenizer, messages, True, "a conversation", chat_template_kwargs))
        except TemplateError:
            continue  # e.g. no system role: the other rendering still shows the turn markers
    gaps = [post]  # what the template writes after a user turn, and after an assistant turn
    gaps += [text.partition(_ASSISTANT_SENTINEL)[2].partition(USER_SENTINEL)[0] for text in rendered[-1:]]
    markup = _markup_tokens(tokenizer)
    stops = list(family.stop if family else ())
    stops += [getattr(tokenizer, "eos_token", None) or ""]
    stops += _generation_config_eos(tokenizer)
    stops += _in_order(markup, "".join(rendered) + post)
    stops += [gap.strip() for gap in gaps if not _in_order(markup, gap)]
    return tuple(dict.fromkeys(s for s in stops if s))


def magpie_template(
    tokenizer, system_prompt: str | None = None, chat_template_kwargs: Mapping[str, Any] | None = None
) -> ChatTemplate:
    """Pre-query, post-query and stop strings for Magpie step 1 with this tokenizer's chat template.

    `system_prompt`: None (a known family's published pre-query, else as rendered), "template"
    (as rendered) or a system prompt string. `chat_template_kwargs` go to every rendering (e.g.
    Qwen3's {"enable_thinking": False}). Raises TemplateError naming the model when the
    template cannot render a (system +) user turn or puts nothing before the user text.

    >>> from transformers import AutoTokenizer
    >>> from magpie_datasets.engines import resolve_model
    >>> template = magpie_template(AutoTokenizer.from_pretrained(resolve_model(None)))  # SmolLM2
    >>> template.pre_query.endswith("<|im_end|>\\n<|im_start|>user\\n"), template.stop
    (True, ('<|im_end|>', '<|im_start|>'))
    """
    if system_prompt is not None and not isinstance(system_prompt, str):
        raise TemplateError(f"system_prompt must be None, 'template' or a string, not {type(system_prompt).__name__}")
    source = tokenizer.get_chat_template() if getattr(tokenizer, "chat_template", None) else ""
    try:
        before, after, post = _user_turn(tokenizer, None, chat_template_kwargs)
        family = _family(tokenizer, source, before, after, post)
    except TemplateError:
        if system_prompt in (None, "template"):
            raise
        family = None  # a template that insists on a system message: fine when one is given
    if system_prompt is None and family is not None:
        pre_query = family.pre_query
    elif system_prompt in (None, "template"):
        pre_query = before
    else:
        before, _, post = _user_turn(tokenizer, system_prompt, chat_template_kwargs)
        if system_prompt.strip() and system_prompt.strip() not in before:
            raise TemplateError(
                f"The chat template of {_model(tokenizer)} drops the system message, so system_prompt "
                "cannot steer it: leave system_prompt unset."
            )
        pre_query = before
    return ChatTemplate(
        pre_query=_one_bos(tokenizer, pre_query),
        post_query=post,
        stop=_stops(tokenizer, family, post, chat_template_kwargs),
        family=family.name if family else None,
        system_prompt=system_prompt,
        assistant_stop=family.assistant_stop if family else (),
        first_token_bias=family.first_token_bias if family and system_prompt is None else (),
    )


def chat_prompt(
    tokenizer,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The model's prompt for `messages` ([{role, content}, ...]) through its chat template, one BOS."""
    text = _render(tokenizer, messages, add_generation_prompt, "these messages", chat_template_kwargs)
    return _one_bos(tokenizer, text)


def next_user_prefix(
    tokenizer, messages: Sequence[Mapping[str, Any]], chat_template_kwargs: Mapping[str, Any] | None = None
) -> str:
    """`messages` rendered, then a new user turn opened and cut where its text would start (multi-turn step 1)."""
    turns = [*messages, {"role": "user", "content": USER_SENTINEL}]
    text = _render(tokenizer, turns, False, "a next user turn", chat_template_kwargs)
    return _one_bos(tokenizer, _split(tokenizer, text, USER_SENTINEL, "the user text")[0])


def describe(tokenizer, system_prompt: str | None = None) -> dict[str, Any]:
    """JSON-able summary for `magpie-datasets template MODEL` (family is null when derived)."""
    template = magpie_template(tokenizer, system_prompt)
    return {
        "model": _model(tokenizer),
        "family": template.family,
        "system_prompt": template.system_prompt,
        "pre_query": template.pre_query,
        "post_query": template.post_query,
        "stop": list(template.stop),
        "stop_token_ids": stop_token_ids(tokenizer, template.stop),
        "bos_token": getattr(tokenizer, "bos_token", None),
        "tokenizer_adds_bos": _adds_bos(tokenizer),
        "template_pre_query": magpie_template(tokenizer, "template").pre_query,
    }
