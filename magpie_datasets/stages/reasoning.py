"""Reasoning data: a reasoning model's thinking and its answer in columns of their own.

    ds = ds.map(magpie.generate_responses, batched=True, fn_kwargs={"model": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"})
    ds = ds.map(magpie.split_reasoning, batched=True)    # reasoning / response / response_raw

    >>> split_text("<think>7 has no divisors but 1 and 7.</think>\\n\\n7 is prime.")
    ('7 has no divisors but 1 and 7.', '7 is prime.', None)
    >>> split_text("2, 3, 5 are", opened=True)   # the prompt opened <think>; out of tokens before </think>
    ('2, 3, 5 are', '', 'unterminated')
"""

from __future__ import annotations

from datasets import Features, Value

from typing import Any, Mapping, Sequence

from ..schema import batch_size_of, record, typed_batch
from ..templates import THINK_MARKERS
from ..version import versioned
from .columns import require_reads
from .entry import Stage


# the columns this stage writes
REASONING_CONFIGS = {
    "column": Value("string"),  # the column split (its raw text is kept in `response_raw`)
    "start": Value("string"),
    "end": Value("string"),
    "markers_from": Value("string"),  # "given", "template" (recorded at step 2) or "default" (<think>/</think>)
    "prompt_opens": Value("bool"),  # the generation prompt already opened the reasoning block
}

REASONING_FEATURES = Features(
    {"reasoning": Value("string"), "response": Value("string"), "response_raw": Value("string"), "reasoning_issue": Value("string"), "reasoning_configs": REASONING_CONFIGS}
)


def split_text(
    text: str | None, markers: Sequence[str] = THINK_MARKERS, opened: bool = False, closed: bool = False
) -> tuple[str | None, str, str | None]:
    """(reasoning, answer, issue) of one raw response.

    `opened`: the generation prompt already wrote the start marker (DeepSeek-R1's template), so
    the text holds only the end marker; an end marker with no start before it is read the same
    way. `closed`: the prompt wrote an empty block (Qwen3 with enable_thinking=False), so a text
    without markers has reasoning "". Without markers the reasoning is None and the answer is
    the whole text. `issue`: "unterminated" (the reasoning never ended: out of tokens; the answer
    is then ""), "no_answer" (nothing after the reasoning) or None.

    >>> split_text("Just an answer.")
    (None, 'Just an answer.', None)
    >>> split_text("I should add.</think>4", opened=True)
    ('I should add.', '4', None)
    >>> split_text("4", closed=True)
    ('', '4', None)
    >>> split_text("<think>Hmm</think>")
    ('Hmm', '', 'no_answer')
    """
    start, end = markers
    text = text or ""
    at_start, at_end = text.find(start), text.find(end)
    if opened or (at_end >= 0 and (at_start < 0 or at_end < at_start)):
        body = text.lstrip()
        before, inner = "", body[len(start):] if body.startswith(start) else body
    elif at_start >= 0:
        before, inner = text[:at_start], text[at_start + len(start):]
    else:
        return ("" if closed else None), text.strip(), None
    cut = inner.find(end)
    if cut < 0:
        return inner.strip(), before.strip(), "unterminated"
    answer = (before + inner[cut + len(end):]).strip()
    return inner[:cut].strip(), answer, None if answer else "no_answer"


def prompt_state(prompt: str | None, markers: Sequence[str]) -> tuple[bool, bool]:
    """(opened, closed): whether the step-2 prompt (`gen_response_configs.prompt`, "{input}" for the
    instruction) leaves the reasoning block open, or writes an empty one, after the instruction.

    >>> prompt_state("<｜User｜>{input}<｜Assistant｜><think>\\n", THINK_MARKERS)
    (True, False)
    >>> prompt_state("<|im_start|>user\\n{input}<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n", THINK_MARKERS)
    (False, True)
    """
    tail = (prompt or "").partition("{input}")[2]
    start, end = tail.rfind(markers[0]), tail.rfind(markers[1])
    return start >= 0 and start > end, start >= 0 and end > start


def _markers(given: Sequence[str] | None, config: Mapping[str, Any] | None) -> tuple[tuple[str, str], str]:
    if given is not None:
        return (given[0], given[1]), "given"
    recorded = (config or {}).get("reasoning_markers")
    if recorded and len(recorded) == 2 and all(recorded):
        return (recorded[0], recorded[1]), "template"
    return THINK_MARKERS, "default"


@versioned
def split_reasoning(batch: Mapping[str, list], *, markers: Sequence[str] | None = None) -> dict[str, list]:
    """Cut each `response` into `reasoning` and the answer, keeping the raw text in `response_raw`.

    Input: batch with column `response` (`response_raw` instead where present, from an earlier
    run), optionally `gen_response_configs` (step 2's record). Output: columns `reasoning`,
    `response` (the answer), `response_raw`, `reasoning_issue`, `reasoning_configs`.

    The recorded step-2 prompt tells whether the template opened the block itself (DeepSeek-R1,
    Qwen3 with thinking: the text has only the end marker) or wrote an empty one (Qwen3 with
    enable_thinking=False). Run again, it splits `response_raw`, so it is idempotent.
    `conversations` keep the raw text, as the published Magpie-Reasoning sets do.

    ```
    {"response": ["<think>2+2 is 4.</think>\\n\\n4"],
     "gen_response_configs": [{"prompt": "<|im_start|>user\\n{input}<|im_end|>\\n<|im_start|>assistant\\n",
                               "reasoning_markers": ["<think>", "</think>"], ...}]}
    -> {"reasoning": ["2+2 is 4."], "response": ["4"], "response_raw": ["<think>2+2 is 4.</think>\\n\\n4"],
        "reasoning_issue": [None],
        "reasoning_configs": [{"column": "response", "start": "<think>", "end": "</think>",
                               "markers_from": "template", "prompt_opens": False}]}
    ```
    `reasoning` is None for a response without markers (its answer is the whole text) and ""
    after an empty block; `reasoning_issue` is None, "unterminated" (out of tokens while
    thinking: `response` is "") or "no_answer" (nothing after the reasoning).

    Args:
        markers (`list[str]`, *optional*, defaults to `None`): the [start, end] markers of the reasoning block,
            two different non-empty strings, for every row. None: per row, the markers the responder's chat
            template names (recorded at step 2 in `gen_response_configs.reasoning_markers`), else
            `<think>` / `</think>`. Recorded in `reasoning_configs.start` / `reasoning_configs.end`, and where they
            came from in `reasoning_configs.markers_from` ("given", "template" or "default").

    >>> out = split_reasoning({"response": ["Thinking it over.</think>Yes."],
    ...                        "gen_response_configs": [{"prompt": "User: {input}\\nAssistant: <think>\\n"}]})
    >>> out["reasoning"], out["response"], out["reasoning_configs"][0]["prompt_opens"]
    (['Thinking it over.'], ['Yes.'], True)
    """
    require_reads(batch, "split_reasoning")
    if markers is not None and (
        isinstance(markers, str) or len(markers) != 2 or not all(isinstance(m, str) and m.strip() for m in markers)
        or markers[0] == markers[1]
    ):
        raise ValueError(
            f"split_reasoning: markers must be [start, end], two different non-empty strings such as "
            f"['<think>', '</think>'], not {markers!r}; leave it unset to use the chat template's."
        )
    column = "response_raw" if "response_raw" in batch else "response"
    rows = batch_size_of(batch)
    configs = batch.get("gen_response_configs") or [None] * rows
    out: dict[str, list] = {name: [] for name in REASONING_FEATURES}
    for raw, config in zip(batch[column], configs):
        (start, end), source = _markers(markers, config)
        opened, closed = prompt_state((config or {}).get("prompt"), (start, end))
        reasoning, answer, issue = split_text(raw, (start, end), opened=opened, closed=closed)
        out["reasoning"].append(reasoning)
        out["response"].append(answer)
        out["response_raw"].append(raw)
        out["reasoning_issue"].append(issue)
        out["reasoning_configs"].append(
            record(REASONING_CONFIGS, column=column, start=start, end=end, markers_from=source, prompt_opens=opened)
        )
    return typed_batch(out, REASONING_FEATURES)


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("split_reasoning", split_reasoning, "map",
          "a reasoning model's thinking (`<think>` or the template's markers) apart from its answer",
          reads=("response",), writes=REASONING_FEATURES),
)
