"""The `tag_with_llm` stage: one greedy chat turn to an LLM judge per tag and row.

    ds = ds.map(magpie.tag_with_llm, batched=True)     # embedded judge, all three tags
    ds = ds.map(magpie.tag_with_llm, batched=True,
                fn_kwargs={"tags": ["quality"], "model": "meta-llama/Meta-Llama-3-8B-Instruct", "engine": "vllm"})

The judge is asked for a JSON object (`prompts.py`); its answer is read by `parse_tag_answer`
(docs/design.md, "Tags, safety, rewards, similarity").
"""

from __future__ import annotations

from datasets import Features, List, Value
from datasets import Sequence as SequenceOf  # typing's Sequence is imported too

from collections.abc import Mapping, Sequence
from typing import Any

from ...engines.base import Sampling
from ...engines.models import ModelSpec, chat_stops, engine_record
from ...schema import record, typed_batch
from ...templates import chat_prompt
from ...version import versioned
from ..columns import require_reads
from .parse import parse_tag_answer
from .prompts import LABEL_COLUMN, TAG_COLUMNS, TAG_SPECS, TAGS
from ..entry import Chart, Stage, TAGGER
from ...schema import DIFFICULTY_LABELS, QUALITY_LABELS, TASK_CATEGORIES


# the columns this stage writes (as in the published data)
TAG_CONFIGS = {
    "tags": SequenceOf(Value("string")),
    "column": Value("string"),
    "model": Value("string"),
    "model_source": Value("string"),
    "engine": Value("string"),
    "dtype": Value("string"),
    "constrained": Value("bool"),  # as decoded: False where the engine cannot constrain
    "max_tokens": Value("int64"),
}

TAG_FEATURES = Features(
    {
        "task_category": Value("string"),
        "other_task_category": List(Value("string")),
        "task_category_generator": Value("string"),
        "task_category_raw_answer": Value("string"),
        "input_quality": Value("string"),
        "quality_explanation": Value("string"),
        "quality_generator": Value("string"),
        "quality_raw_answer": Value("string"),
        "intent": Value("string"),
        "knowledge": Value("string"),
        "difficulty": Value("string"),
        "difficulty_generator": Value("string"),
        "difficulty_raw_answer": Value("string"),
        "tag_configs": TAG_CONFIGS,
    }
)


def _tags_of(tags: str | Sequence[str] | None) -> tuple[str, ...]:
    if tags is None:
        return TAGS
    chosen = (tags,) if isinstance(tags, str) else tuple(tags)
    unknown = [t for t in chosen if t not in TAGS]
    if unknown or not chosen:
        raise ValueError(f"tag_with_llm: unknown tags {unknown or chosen!r}; choose any of {', '.join(TAGS)}")
    return tuple(dict.fromkeys(chosen))


@versioned
def tag_with_llm(
    batch: Mapping[str, list],
    *,
    tags: str | Sequence[str] | None = TAGS,
    model: str | None = None,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    max_tokens: int = 512,
    column: str = "instruction",
    constrained: bool = True,
) -> dict[str, list]:
    """Tag each instruction with an LLM judge: task category, input quality, difficulty.

    Each tag is one greedy chat turn asking for a JSON object. With `constrained` the engine
    decodes under the answer's JSON schema (vLLM structured outputs, llguidance masks in the
    transformers engine), so even a weak judge names an allowed label; `constrained=False` lets
    the judge answer freely after a `{"<label>": "` prefill. Either way the answer is parsed: a
    label it does not give is None and the answer goes to `<tag>_raw_answer`, so a bad answer
    never fails a batch. Empty instructions are not sent (all their columns None,
    `other_task_category` []).

    Input: a batch with the `column` to tag (default `instruction`); Output: the requested tags' columns
    (`TAG_COLUMNS`) and `tag_configs`.

    Args:
        tags (`str` or `Sequence[str]`, *optional*, defaults to `("task_category", "quality", "difficulty")`): which
            tags to ask for, one judge turn per tag and row, and so which columns are written: "task_category"
            (`task_category`, `other_task_category`, `task_category_generator`, `task_category_raw_answer`),
            "quality" (`input_quality`, `quality_explanation`, `quality_generator`, `quality_raw_answer`),
            "difficulty" (`intent`, `knowledge`, `difficulty`, `difficulty_generator`, `difficulty_raw_answer`),
            the published tag columns of the authors' release with its label sets. One name is accepted as a
            string; repeats are dropped; None means all three; an unknown name is a `ValueError`. Recorded in
            `tag_configs` (`tags`).
        model (`str`, *optional*, defaults to `None`): the judge, a Hub id or a local directory. None means the
            embedded SmolLM2-135M-Instruct, which runs offline on a CPU; the release's tagger is
            `"meta-llama/Meta-Llama-3-8B-Instruct"` (greedy, JSON answer), which the recipes name. Its id fills
            each `<tag>_generator` column and, with where its weights came from, `tag_configs` (`model`,
            `model_source`).
        engine (`str`, *optional*, defaults to `"transformers"`): the engine that runs the judge, "transformers"
            or "vllm" (not inside `num_proc` workers). Recorded in `tag_configs` (`engine`).
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): keyword arguments for loading the
            engine (None: none): transformers takes `dtype`, `device`, `batch_size`, `trust_remote_code`,
            `attn_implementation`; vLLM any `vllm.LLM` argument. The loaded engine is cached per process for
            this (model, engine, options). The resulting compute dtype is recorded in `tag_configs` (`dtype`).
        max_tokens (`int`, *optional*, defaults to `512`): the most tokens the judge may generate for one answer
            (per tag and row). Decoding is greedy (temperature 0, seed 0) and also stops at the chat template's
            end of turn or the answer's first "}"; an answer cut off by this cap is usually unreadable, giving a
            None label and the text in `<tag>_raw_answer`. Recorded in `tag_configs` (`max_tokens`).
        column (`str`, *optional*, defaults to `"instruction"`): the text column that is judged (it fills the
            prompts' `{instruction}`); rows whose text is missing or blank are not sent. The output columns keep
            their names whatever the column. Recorded in `tag_configs` (`column`).
        constrained (`bool`, *optional*, defaults to `True`): decode under each tag's JSON schema, whose label
            fields are enums (vLLM structured outputs; llguidance token masks in the transformers engine), where
            the engine supports it; False, or an engine without support, prefills `{"<label>": "` and parses the
            free answer leniently. Recorded in `tag_configs` (`constrained`) as actually decoded.

    Returns:
        The requested tags' columns (`TAG_COLUMNS`) and `tag_configs`, the settings each row was
        tagged with (None where the row was not sent).

    Example:

    ```python
    batch = {"instruction": ["Fix my Python loop: for i in range(10) print(i)"]}
    tag_with_llm(batch, tags=["task_category", "quality"])
    # -> {"task_category": ["Coding & Debugging"], "other_task_category": [[]],
    #     "task_category_generator": ["HuggingFaceTB/SmolLM2-135M-Instruct"], "task_category_raw_answer": [None],
    #     "input_quality": ["good"], "quality_explanation": ["The request is clear ..."],
    #     "quality_generator": ["HuggingFaceTB/SmolLM2-135M-Instruct"], "quality_raw_answer": [None],
    #     "tag_configs": [{"tags": ["task_category", "quality"], "column": "instruction",
    #                      "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "model_source": "...",
    #                      "engine": "transformers", "dtype": "float32", "constrained": True, "max_tokens": 512}]}
    ```
    """
    tags = _tags_of(tags)
    batch = require_reads(batch, "tag_with_llm", (column,))
    instructions = [text if isinstance(text, str) else "" for text in batch[column]]
    rows = len(instructions)
    out: dict[str, list] = {}
    for tag in tags:
        for name in TAG_COLUMNS[tag]:
            out[name] = [[] if name == "other_task_category" else None for _ in range(rows)]
    out["tag_configs"] = [None] * rows
    todo = [i for i in range(rows) if instructions[i].strip()]
    if not todo:
        return typed_batch(out, TAG_FEATURES)

    llm = ModelSpec(model, engine, engine_options or {}).load()
    constrained = constrained and getattr(llm, "supports_json_schema", False)
    stop = chat_stops(llm.tokenizer)
    for tag in tags:
        spec = TAG_SPECS[tag]
        prefill = "" if constrained else spec["prefill"]
        prompts = [
            chat_prompt(llm.tokenizer, [{"role": "user", "content": spec["prompt"].format(instruction=instructions[i])}])
            + prefill
            for i in todo
        ]
        sampling = Sampling(
            temperature=0.0,
            max_tokens=max_tokens,
            stop=(*stop, "}"),  # the answer is one flat object: its first "}" ends it
            seed=0,
            json_schema=spec["schema"] if constrained else None,
        )
        label_column = LABEL_COLUMN[tag]
        generator, raw_column = TAG_COLUMNS[tag][-2], TAG_COLUMNS[tag][-1]
        for i, (completion,) in zip(todo, llm.generate(prompts, sampling)):
            answer = prefill + completion.text
            if completion.finish_reason == "stop" and answer.lstrip().startswith("{") and not answer.rstrip().endswith("}"):
                answer += "}"  # the stop string is cut off; put the object's end back
            parsed = parse_tag_answer(tag, answer)
            for name, value in parsed.items():
                out[name][i] = value
            out[generator][i] = llm.model_id
            out[raw_column][i] = answer if parsed[label_column] is None else None
    configs = record(
        TAG_CONFIGS, **engine_record(llm), tags=list(tags), column=column, constrained=constrained, max_tokens=max_tokens
    )
    for i in todo:
        out["tag_configs"][i] = configs
    return typed_batch(out, TAG_FEATURES)


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("tag_with_llm", tag_with_llm, "map",
          "task category, input quality and difficulty from an LLM judge",
          reads=("instruction",), writes=TAG_FEATURES, models=(TAGGER,),
          charts=(Chart("task_category", "Task category", "bar", TASK_CATEGORIES),
                  Chart("input_quality", "Input quality", "bar", QUALITY_LABELS),
                  Chart("difficulty", "Difficulty", "bar", DIFFICULTY_LABELS))),
)
