"""What makes a generated text unusable, and the step-1 clean-up of sampled instructions.

    >>> clean_instruction("How do I bake bread?\\nAnswer: mix flour", early_stop=False, sanitize=True)
    ('How do I bake bread?', True)
    >>> tidy_instruction("Task: Name a prime.\\nAnswer: 7", early_stop=False, sanitize=True, family="gemma-2")
    ('Name a prime.', True, 'answer_marker')
    >>> text_issue("", "stop", ()), text_issue("Hi <|im_end|>", "stop", ("<|im_end|>",)), text_issue("Hi", "length", ())
    ('empty', 'template_markup', 'max_tokens')
"""

from __future__ import annotations

from .sanitize import sanitize_instruction


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


def tidy_instruction(
    text: str, *, early_stop: bool, sanitize: bool, family: str | None = None
) -> tuple[str, bool, str | None]:
    """Strip, keep the first line when `early_stop`, then `sanitize_instruction` when `sanitize`.

    Returns the text, whether its end was cut away (then hitting max_tokens does not
    matter), and the sanitizer's rule (None when it changed nothing or is off). `family`
    is the chat template's (`ChatTemplate.family`).
    """
    cut, rule = False, None
    if early_stop and "\n" in text.strip():
        text, cut = text.strip().split("\n", 1)[0], True
    text = text.strip()
    if sanitize:
        kept, rule = sanitize_instruction(text, family=family)
        cut = cut or not text.endswith(kept)  # a stripped prefix alone leaves the end as sampled
        text = kept
    return text, cut, rule


def clean_instruction(text: str, early_stop: bool, sanitize: bool, family: str | None = None) -> tuple[str, bool]:
    """`tidy_instruction` without the rule: the text and whether anything was cut away."""
    return tidy_instruction(text, early_stop=early_stop, sanitize=sanitize, family=family)[:2]
