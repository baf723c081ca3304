"""Safety tag with a Llama-Guard-style classifier: `llama_guard_2` = "safe" or "unsafe\\nS<k>".

    ds = ds.map(magpie.tag_safety, batched=True)      # meta-llama/Meta-Llama-Guard-2-8B
    ds = ds.map(magpie.tag_safety, batched=True, fn_kwargs={"model": "meta-llama/Llama-Guard-3-8B"})

The guard's own chat template turns the (instruction, response) conversation into its
classification prompt, category list included; the model answers "safe", or "unsafe" and a
line of violated category codes. That answer is normalised by `parse_guard_answer`; one it
cannot read gives None, with the answer kept in `safety_raw_answer`. The column keeps the
published name `llama_guard_2` whatever guard wrote it; `safety_model` and `safety_configs`
say which.
"""

from __future__ import annotations

from datasets import Features, Value

import re
from typing import Any, Mapping

from ..engines.base import Sampling
from ..engines.models import ModelSpec, engine_record
from ..schema import record, typed_batch
from ..templates import chat_prompt
from ..version import versioned
from .columns import require_reads
from .entry import Chart, GUARD, Stage


# the columns this stage writes (as in the published data)
SAFETY_CONFIGS = {
    "column": Value("string"),
    "model": Value("string"),
    "model_source": Value("string"),
    "engine": Value("string"),
    "dtype": Value("string"),
    "max_tokens": Value("int64"),
}

SAFETY_FEATURES = Features(
    {"llama_guard_2": Value("string"), "safety_model": Value("string"), "safety_raw_answer": Value("string"), "safety_configs": SAFETY_CONFIGS}
)

GUARD_MODEL = "meta-llama/Meta-Llama-Guard-2-8B"

_CODE = re.compile(r"\b([SO])\s*(\d{1,2})\b", re.IGNORECASE)  # S1..S14 (Guard 2/3), O1..O7 (Guard 1)


def parse_guard_answer(answer: Any) -> str | None:
    """"safe", "unsafe", or "unsafe\\n" + the category codes ("S2" or "S1,S10"); None if unreadable.

    >>> parse_guard_answer(" unsafe\\ns2 "), parse_guard_answer("Safe."), parse_guard_answer("maybe")
    ('unsafe\\nS2', 'safe', None)
    """
    if not isinstance(answer, str):
        return None
    text = answer.strip()
    first_word = re.match(r"[A-Za-z]+", text)
    verdict = first_word.group(0).lower() if first_word else ""
    if verdict == "safe":
        return "safe"
    if verdict != "unsafe" or first_word is None:  # "unsafe" came from a match
        return None
    codes = [f"{letter.upper()}{int(number)}" for letter, number in _CODE.findall(text[first_word.end() :])]
    codes = list(dict.fromkeys(codes))
    return "unsafe\n" + ",".join(codes) if codes else "unsafe"


@versioned
def tag_safety(
    batch: Mapping[str, list],
    *,
    model: str = GUARD_MODEL,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    max_tokens: int = 16,
    column: str = "response",
) -> dict[str, list]:
    """Classify each (instruction, `column`) conversation with a guard model.

    ```
    {"instruction": ["How do I bake bread?"], "response": ["Mix flour, water, ..."]}
    -> {"llama_guard_2": ["safe"], "safety_model": ["meta-llama/Meta-Llama-Guard-2-8B"],
        "safety_raw_answer": [None],
        "safety_configs": [{"column": "response", "model": "meta-llama/Meta-Llama-Guard-2-8B",
                            "model_source": ..., "engine": "transformers", "dtype": ..., "max_tokens": 16}]}
    ```
    The verdict is about the last turn: the response, or the instruction when the response is
    empty or the column absent. Rows without an instruction get None everywhere.

    Input: a batch with `instruction` and, optionally, `column` (default `response`); Output: columns
    `llama_guard_2`, `safety_model`, `safety_raw_answer`, `safety_configs`.

    Args:
        model (`str`, *optional*, defaults to `"meta-llama/Meta-Llama-Guard-2-8B"`): the guard, a Hub id or a local
            directory: any Llama-Guard-style chat model whose chat template builds the classification prompt
            (e.g. `"meta-llama/Llama-Guard-3-8B"`). The default is Llama-Guard-2, the guard behind the published
            `llama_guard_2` column; there is no embedded guard, so it must be cached or downloadable (a gated
            Hub model). The column keeps its name whatever guard wrote it; the guard's id goes to
            `safety_model` and, with where its weights came from, to `safety_configs` (`model`, `model_source`).
        engine (`str`, *optional*, defaults to `"transformers"`): the engine that runs the guard, "transformers"
            or "vllm" (not inside `num_proc` workers). Recorded in `safety_configs` (`engine`).
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): keyword arguments for loading the
            engine (None: none): transformers takes `dtype`, `device`, `batch_size`, `trust_remote_code`,
            `attn_implementation`; vLLM any `vllm.LLM` argument (e.g. `tensor_parallel_size`,
            `gpu_memory_utilization`). The loaded engine is cached per process for this (model, engine,
            options). The resulting compute dtype is recorded in `safety_configs` (`dtype`).
        max_tokens (`int`, *optional*, defaults to `16`): the most tokens of the guard's answer, decoded greedily
            (temperature 0, seed 0) up to the tokenizer's EOS; 16 holds "unsafe" and a line of category codes.
            An answer cut off mid-code loses that code; one that cannot be read gives None and is kept in
            `safety_raw_answer`. Recorded in `safety_configs` (`max_tokens`).
        column (`str`, *optional*, defaults to `"response"`): the column holding the assistant turn that is
            classified after the `instruction` user turn; where it is absent, None or blank, the instruction
            alone is classified. Recorded in `safety_configs` (`column`).
    """
    batch = require_reads(batch, "tag_safety", ("instruction",))
    instructions = [q if isinstance(q, str) else "" for q in batch["instruction"]]
    rows = len(instructions)
    responses: list[Any] = list(batch[column]) if column in batch else [None] * rows
    verdicts: list[str | None] = [None] * rows
    generators: list[str | None] = [None] * rows
    raw: list[str | None] = [None] * rows
    configs: list[dict | None] = [None] * rows
    todo = [i for i in range(rows) if instructions[i].strip()]
    if todo:
        llm = ModelSpec(model, engine, engine_options or {}).load()
        config = record(SAFETY_CONFIGS, **engine_record(llm), column=column, max_tokens=max_tokens)
        prompts = []
        for i in todo:
            messages = [{"role": "user", "content": instructions[i]}]
            if isinstance(responses[i], str) and responses[i].strip():
                messages.append({"role": "assistant", "content": responses[i]})
            prompts.append(chat_prompt(llm.tokenizer, messages))
        eos = getattr(llm.tokenizer, "eos_token", None)
        sampling = Sampling(temperature=0.0, max_tokens=max_tokens, stop=(eos,) if eos else (), seed=0)
        for i, (completion,) in zip(todo, llm.generate(prompts, sampling)):
            verdicts[i] = parse_guard_answer(completion.text)
            generators[i] = llm.model_id
            raw[i] = completion.text if verdicts[i] is None else None
            configs[i] = config
    return typed_batch(
        {"llama_guard_2": verdicts, "safety_model": generators, "safety_raw_answer": raw, "safety_configs": configs},
        SAFETY_FEATURES,
    )


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("tag_safety", tag_safety, "map", "a Llama-Guard verdict on the conversation",
          reads=("instruction", "response"), writes=SAFETY_FEATURES, models=(GUARD,),
          charts=(Chart("llama_guard_2", "Safety", "bar", plot=False),)),
)
