"""The release's step-1 sanitizer: cut a sampled instruction back to the user's question.

A model sampled from the pre-query template alone often writes more than a user turn: a
list number or a "Task:" label before the question, its own answer after it ("Answer:",
"## Step 1"), or a quoted / bold / colon-ended first line followed by the answer. The
authors' release post-processes step-1 text with such rules and records which one fired
(paper §2; the release's `instruction_post_process`, written here from its behaviour).

`sanitize_instruction(text, family)` returns the kept text and the rule that changed it
(None when nothing did, and then the text comes back exactly as given):

    >>> sanitize_instruction("How do I sort a list?\\nAnswer: use sorted().")
    ('How do I sort a list?', 'answer_marker')
    >>> sanitize_instruction("1. Task: Write a haiku about rain.")
    ('Write a haiku about rain.', 'prefix')
    >>> sanitize_instruction('"What is a monad?" asked the student. A monad is ...')
    ('What is a monad?', 'quoted_question')
    >>> sanitize_instruction("**Why is the sky blue?** The sky looks blue because ...")
    ('Why is the sky blue?', 'bold_question')
    >>> sanitize_instruction("Solve 2x + 3 = 7.\\n## Step 1: subtract 3", family="llama-3.1")
    ('Solve 2x + 3 = 7.', 'step_marker')
    >>> sanitize_instruction("Solve 2x + 3 = 7.\\n## Step 1: subtract 3", family="gemma-2")
    ('Solve 2x + 3 = 7.\\n## Step 1: subtract 3', None)
    >>> sanitize_instruction("Here is my question:\\nWhat is 2x + 3 = 7 for x? Subtract 3 first ...")
    ('Here is my question:\\nWhat is 2x + 3 = 7 for x?', 'colon_question')
    >>> sanitize_instruction("Explain Answers in exams.")
    ('Explain Answers in exams.', None)

Rules, in order. They repeat until nothing changes, so sanitizing twice gives the same text
(what one cut leaves may be cut again, e.g. a colon-ended first line after an answer cut),
the class is the first rule that fired, and text is only ever removed:

| class | when | keeps |
|---|---|---|
| `prefix` | only a list marker ("1.", "a)", "(b)") or label ("Task:", "Question 3:", "Q1.", "**Problem**", "## Context:") was stripped | the rest |
| `bold_question` / `bold_line` | starts with "*" | up to the first "?", else the first line; "*" removed |
| `quoted_question` / `quoted_line` | starts with a double quote | up to the first "?", else the first line; quotes removed |
| `html_bold` | starts with "<b>" | the first line, tags removed |
| `answer_marker` | "Answer:", "The correct answer:", "Explanation:", "Solution:", "Here are some:" ... | the text before it |
| `step_marker` | "# Step 1" / "## Step 1" / "### Step 1" (Llama-3 families, or `family=None`) | the text before it |
| `colon_header` / `colon_question` / `colon_line` | the first line ends with ":" | up to the next markdown header, else the first "?", else the first line |

Unlike the release, an instruction none of these rules matches is left whole (the release
also cut every other text at its first "?"); `early_stop` is the option that keeps only
the first line.
"""

from __future__ import annotations

import re

# Label words the release strips before a question (matched in any case), each needing a colon,
# a bold wrapping, or a markdown header line: "Task:", "**Problem**", "## Context:".
_LABELS = (
    "Original Prompt", "The Problem", "The Scenario", "The Situation", "Instructions", "Instruction",
    "Descriptions", "Description", "Task", "Prompt", "Question", "Problem", "Scenario", "Situation",
    "Context", "Challenge", "Query", "Request",
)
_LABEL = re.compile(
    r"""^
    (?P<h>\#{1,6}[ \t]*)?                                   # "## Context:"
    (?P<b>\*\*|__)?[ \t]*                                   # "**Problem**"
    (?:(?:%s)(?:[ \t]+\d+)?|Part[ \t]+\d+|Q[ \t]?\d+)       # "Question 3", "Part 2", "Q1"
    (?:
        [ \t]*(?:\*\*|__)?[ \t]*:(?(b)[ \t]*(?:\*\*|__)?)   # "Task:", "**Task:**", "**Task**:"
      | (?(b)[ \t]*(?:\*\*|__)|(?!))                        # "**Problem**"
      | (?<=\d)\.(?(b)(?:\*\*|__)?)                         # "Q1.", "Question 3."
      | (?(h)[ \t]*(?=\n)|(?!))                             # "## Problem" on its own line
    )
    \s*""" % "|".join(re.escape(label) for label in _LABELS),
    re.IGNORECASE | re.VERBOSE,
)
# "1. ", "2) ", "a) ", "(b) ", "c. " -- a lower-case letter only before a dot, so initials stay.
_LIST_MARKER = re.compile(r"^(?:\(?(?:\d+|[A-Za-z])\)|(?:\d+|[a-z])\.)(?=\s)\s*")
# Where the model starts answering; case-sensitive, as in the release, so "answer: yes or no" stays.
_ANSWER = re.compile(
    r"\b(?:The (?:correct )?answer is|(?:The )?[Cc]orrect answer|Answers?(?: is)?|Explanation|"
    r"Here are some|Solution(?: Approach)?)(?:\*\*|__)?[ \t]*:"
)
_STEP = re.compile(r"#{1,3}[ \t]*Step[ \t]*1\b")
_HEADER_LINE = re.compile(r"\n[ \t]*#")
_QUOTES = '"\u201c\u201d'

# The `instruction_sanitize_class` values, in rule order.
SANITIZE_CLASSES = (
    "prefix", "bold_question", "bold_line", "quoted_question", "quoted_line", "html_bold", "answer_marker",
    "step_marker", "colon_header", "colon_question", "colon_line",
)


def _strip_prefixes(text: str) -> str:
    while True:
        stripped = _LIST_MARKER.sub("", text, count=1)
        stripped = _LABEL.sub("", stripped, count=1).strip()
        if stripped == text:
            return text
        text = stripped


def _trim_tail(text: str) -> str:
    """Drop markup left dangling by a cut: a closing "**", a line of only "#", "*", "-"."""
    while True:
        text = text.rstrip()
        last = text.rsplit("\n", 1)[-1]
        if text.endswith(("**", "__")):
            text = text[:-2]
        elif last and set(last) <= set("#*_-> \t"):
            text = text[: len(text) - len(last)]
        else:
            return text


def _debold(text: str) -> str:
    return text.replace("**", "").strip() if text.startswith("**") else text


def _first_question_or_line(text: str, drop: str) -> tuple[str, bool]:
    if "?" in text:
        head, asked = text.split("?", 1)[0] + "?", True
    else:
        head, asked = text.split("\n", 1)[0], False
    return "".join(c for c in head if c not in drop).strip(), asked


def _one_pass(text: str, steps: bool) -> tuple[str, str | None]:
    text = _strip_prefixes(text.strip())
    if text.startswith("*"):
        kept, asked = _first_question_or_line(text, "*")
        return kept, "bold_question" if asked else "bold_line"
    if text.startswith(tuple(_QUOTES)):
        kept, asked = _first_question_or_line(text, _QUOTES if "?" in text else _QUOTES + "*")
        return kept, "quoted_question" if asked else "quoted_line"
    if text.startswith("<b>"):
        first = text.split("\n", 1)[0]
        return first.replace("<b>", "").replace("</b>", "").replace("*", "").strip(), "html_bold"
    if found := _ANSWER.search(text):
        return _debold(_trim_tail(text[: found.start()])), "answer_marker"
    if steps and (found := _STEP.search(text)):
        return _debold(_trim_tail(text[: found.start()])), "step_marker"
    if text.split("\n", 1)[0].rstrip().endswith(":"):
        if found := _HEADER_LINE.search(text):
            return _debold(_trim_tail(text[: found.start()])), "colon_header"
        if "?" in text:
            return _debold(text.split("?", 1)[0].strip() + "?"), "colon_question"
        return text.split("\n", 1)[0].replace("*", "").strip(), "colon_line"
    return text, None


def sanitize_instruction(text: str, family: str | None = None) -> tuple[str, str | None]:
    """The kept instruction and the class of the rule that cut it (None: `text` returned as is).

    Input: one step-1 text (a `str`, else `TypeError`); Output: `(kept text, class)`, the class
    one of `SANITIZE_CLASSES` (the first rule that fired), which `add_magpie_instructions(sanitize=True)`
    writes to `instruction_sanitize_class`. The kept text is stripped when a rule fired.

    Args:
        family (`str`, *optional*, defaults to `None`): the chat-template family of the model that
            wrote `text` (`ChatTemplate.family`, e.g. "llama-3.1", "gemma-2", "qwen2.5"). It decides only
            the "# Step 1" / "## Step 1" / "### Step 1" cut (class `step_marker`), which the release's
            `instruction_post_process` makes for Llama-3 alone: applied when `family` starts with
            "llama-3" (any case) and when it is None (unknown family); skipped for every other family.
            The other rules apply whatever the family.

    >>> sanitize_instruction("Question 3: What is 2 + 2?\\nThe correct answer: 4")
    ('What is 2 + 2?', 'answer_marker')
    >>> sanitize_instruction("  What is 2 + 2?  ")
    ('  What is 2 + 2?  ', None)
    """
    if not isinstance(text, str):
        raise TypeError(f"sanitize_instruction needs the instruction as a str, got {type(text).__name__}")
    steps = family is None or family.lower().startswith("llama-3")
    current, rule = text.strip(), None
    # Each pass only removes characters, so this ends; its fixed point makes the result idempotent.
    while True:
        kept, fired = _one_pass(current, steps)
        if kept == current:
            break
        rule = rule or fired
        current = kept
    if current == text.strip():
        return text, None
    return current, rule or "prefix"
