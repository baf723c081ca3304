"""What makes a generated text unusable, and the step-1 clean-up of sampled instructions.

    >>> clean_instruction("How do I bake bread?\\nAnswer: mix flour", early_stop=False, sanitize=True)
    ('How do I bake bread?', True)
    >>> text_issue("", "stop", ()), text_issue("Hi <|im_end|>", "stop", ("<|im_end|>",)), text_issue("Hi", "length", ())
    ('empty', 'template_markup', 'max_tokens')
"""

from __future__ import annotations

import re

# Where a sampled "instruction" starts answering itself (the release's sanitizer).
ANSWER_LEAK = re.compile(r"\n\s*(?:#+\s*)?(?:Answer|Solution|Response|Step 1)\b\s*:?|\n\s*##\s*Step\s*1\b")


def text_issue(text: str, finish_reason: str, markup: tuple[str, ...]) -> str | None:
    """Why a generated text may be unusable ("empty", "template_markup", "max_tokens"), or None."""
    if not text.strip():
        return "empty"
    if any(token and token in text for token in markup):
        return "template_markup"
    if finish_reason == "length":
        return "max_tokens"
    return None


def markup_tokens(tokenizer, stop: tuple[str, ...]) -> tuple[str, ...]:
    """Strings that must never appear inside a clean instruction or response."""
    special = [t for t in getattr(tokenizer, "all_special_tokens", []) if len(t) > 1]
    return tuple(dict.fromkeys([*stop, *special]))


def clean_instruction(text: str, early_stop: bool, sanitize: bool) -> tuple[str, bool]:
    """Strip, then optionally cut at the first newline or before an answer leak.

    Returns the text and whether anything was cut away.
    """
    cut = False
    if early_stop and "\n" in text.strip():
        text, cut = text.strip().split("\n", 1)[0], True
    if sanitize and (leak := ANSWER_LEAK.search(text)):
        text, cut = text[: leak.start()], True
    return text.strip(), cut
