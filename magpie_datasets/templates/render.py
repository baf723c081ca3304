"""Rendering a tokenizer's chat template: checked template keywords, the sentinel split, one BOS."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

# Plain letters: survive `trim`/`strip()`, never a special token, never in a real template.
USER_SENTINEL = "MagpieUserText7f3a9c"
_ASSISTANT_SENTINEL = "MagpieAssistantText7f3a9c"
_SYSTEM_SENTINEL = "MagpieSystemText7f3a9c"


class TemplateError(ValueError):
    """The tokenizer's chat template cannot give Magpie what it needs (message names the model)."""


# Raised and caught as magpie_datasets.templates.TemplateError: tracebacks keep that name.
TemplateError.__module__ = "magpie_datasets.templates"


# apply_chat_template's own arguments: a template keyword of the same name would clash with them.
_RENDER_ARGUMENTS = frozenset({"conversation", "messages", "tokenize", "add_generation_prompt", "tools", "documents",
                               "chat_template", "continue_final_message", "return_dict", "return_tensors"})


def template_kwargs(chat_template_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Checked keyword arguments for the chat template (e.g. Qwen3's `enable_thinking`); {} for None.

    >>> template_kwargs({"enable_thinking": False}), template_kwargs(None)
    ({'enable_thinking': False}, {})
    >>> template_kwargs({"tokenize": True})
    Traceback (most recent call last):
    ...
    magpie_datasets.templates.TemplateError: chat_template_kwargs cannot set 'tokenize', an argument of apply_chat_template itself; ...
    """
    if chat_template_kwargs is None:
        return {}
    if not isinstance(chat_template_kwargs, Mapping) or not all(isinstance(k, str) for k in chat_template_kwargs):
        raise TemplateError(
            f"chat_template_kwargs must map names to values, e.g. {{'enable_thinking': False}}, not {chat_template_kwargs!r}"
        )
    for key in chat_template_kwargs:
        if key in _RENDER_ARGUMENTS:
            raise TemplateError(
                f"chat_template_kwargs cannot set {key!r}, an argument of apply_chat_template itself; "
                "pass only the template's own variables (e.g. enable_thinking)."
            )
    try:
        json.dumps(dict(chat_template_kwargs))
    except (TypeError, ValueError) as err:
        raise TemplateError(f"chat_template_kwargs must be JSON values, to be recorded per row: {err}") from err
    return dict(chat_template_kwargs)


def template_kwargs_record(chat_template_kwargs: Mapping[str, Any] | None) -> str | None:
    """How a row records its chat-template keywords: a JSON object with sorted keys, None without any.

    A string survives Arrow and the Hub for any keys and values, which a struct would not.

    >>> template_kwargs_record({"enable_thinking": False, "a": 1}), template_kwargs_record({})
    ('{"a": 1, "enable_thinking": false}', None)
    """
    found = template_kwargs(chat_template_kwargs)
    return json.dumps(found, sort_keys=True, ensure_ascii=False) if found else None


def _model(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__


def _render(
    tokenizer,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    what: str,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            f"{_model(tokenizer)} has no chat template, so Magpie cannot build its prompts. "
            "Use an instruct/chat model, or set `tokenizer.chat_template` to its chat template."
        )
    try:
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt,
            **template_kwargs(chat_template_kwargs),
        )
    except Exception as err:  # Jinja's raise_exception, a missing key, a non-string content ...
        raise TemplateError(f"The chat template of {_model(tokenizer)} cannot render {what}: {err}") from err
    if not isinstance(text, str):  # some versions return a list for batched input
        raise TemplateError(f"The chat template of {_model(tokenizer)} did not render {what} as text.")
    return text


def _split(tokenizer, text: str, sentinel: str, what: str) -> tuple[str, str]:
    if text.count(sentinel) != 1:
        raise TemplateError(
            f"The chat template of {_model(tokenizer)} does not write {what} verbatim exactly once, "
            "so the text around it cannot be cut out."
        )
    before, _, after = text.partition(sentinel)
    return before, after


def _adds_bos(tokenizer) -> bool:
    """Whether `tokenizer(text)` (add_special_tokens=True) puts a BOS in front on its own."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return with_special[:1] == [bos_id] and without[:1] != [bos_id]


def _one_bos(tokenizer, text: str) -> str:
    """`text` with exactly one leading BOS if the model uses one (never two)."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or text.startswith(bos) or not _adds_bos(tokenizer):
        return text
    return bos + text


def _without_bos(tokenizer, text: str) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos) :] if bos and text.startswith(bos) else text
