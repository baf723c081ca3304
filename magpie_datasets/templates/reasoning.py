"""Where a reasoning model's chat template puts its thinking: the start and end markers."""

from __future__ import annotations

import re
from typing import Any, Mapping

from .render import _ASSISTANT_SENTINEL, USER_SENTINEL, TemplateError, _render

THINK_MARKERS = ("<think>", "</think>")  # DeepSeek-R1, QwQ, Qwen3: the common default
_REASONING_SENTINEL = "MagpieReasoningText7f3a9c"
# A thinking system prompt that names its markers in words (Granite 3.2: "Write your thoughts
# after 'Here is my thought process:' and write your response after 'Here is my response:'").
_NAMED_MARKERS = re.compile(r"thoughts? after '([^']+)'.{0,80}?response after '([^']+)'", re.S)


def reasoning_markers(tokenizer, chat_template_kwargs: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
    """(start, end) around a reasoning model's thinking, as its chat template names them; None if it names none.

    Found by rendering an assistant turn with `reasoning_content` (Qwen3 writes it between
    `<think>` and `</think>`), else in the template's source: a `<think>`/`</think>` pair
    (DeepSeek-R1), or markers its thinking prompt names in words (Granite 3.2).
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [
        {"role": "user", "content": USER_SENTINEL},
        {"role": "assistant", "content": _ASSISTANT_SENTINEL, "reasoning_content": _REASONING_SENTINEL},
    ]
    try:
        text = _render(tokenizer, messages, False, "an assistant turn", chat_template_kwargs).partition(USER_SENTINEL)[2]
    except TemplateError:
        text = ""
    head, _, tail = text.partition(_REASONING_SENTINEL)
    end = tail.partition(_ASSISTANT_SENTINEL)[0].strip() if _ASSISTANT_SENTINEL in tail else ""
    if end:
        # "</x>" closes "<x>"; otherwise the start is the last line the template wrote before the reasoning
        start = "<" + end[2:] if end.startswith("</") and "<" + end[2:] in head else head.rstrip().rsplit("\n", 1)[-1]
        if start.strip() and start != end:
            return start.strip(), end
    source = tokenizer.get_chat_template()
    if all(marker in source for marker in THINK_MARKERS):
        return THINK_MARKERS
    if named := _NAMED_MARKERS.search(source):
        return named.group(1), named.group(2)
    return None
