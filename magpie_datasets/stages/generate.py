"""Magpie steps 1 and 2 as batched `Dataset.map` functions (paper §2).

    ds = magpie.empty(100)
    ds = ds.map(magpie.add_magpie_instructions, batched=True)   # step 1: instructions
    ds = ds.map(magpie.generate_responses, batched=True)        # step 2: responses

Decoding defaults are the paper's: step 1 samples at T=1.0, top-p 1.0; step 2 is
greedy. Every option is a keyword argument, so `fn_kwargs` sets it and `datasets`
fingerprints it; loaded models are cached per process (`engines.load_engine`).
"""

from __future__ import annotations

from typing import Any, Mapping

from datasets import Dataset, Features, Value

from ..engines.base import Sampling
from ..engines.models import ModelSpec, engine_record
from ..schema import (
    GEN_INPUT_CONFIGS,
    INSTRUCTION_FEATURES,
    INSTRUCTION_OPTIONS,
    RESPONSE_FEATURES,
    batch_size_of,
    conversation_uuid,
    record,
    to_conversations,
    typed_batch,
)
from ..templates import magpie_template
from ..version import versioned
from .answering import answer_instructions
from .rows import row_seed
from .table import require_reads
from .texts import clean_instruction, markup_tokens, text_issue


def empty(n: int) -> Dataset:
    """`n` placeholder rows for step 1: a `uuid` column with a stable id per row.

    >>> empty(2)["uuid"][0]
    'a2639ae2-f300-5e4b-8490-5103f59a5891'
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"empty(n) needs a row count >= 0, got {n!r}")
    uuids = [conversation_uuid("magpie-datasets", "placeholder", i) for i in range(n)]
    return Dataset.from_dict({"uuid": uuids}, features=Features({"uuid": Value("string")}))


@versioned
def add_magpie_instructions(
    batch: Mapping[str, list],
    *,
    model: str | None = None,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens: int = 2048,
    seed: int = 0,
    early_stop: bool = False,
    sanitize: bool = False,
    system_prompt: str | None = None,
) -> dict[str, list]:
    """Step 1: sample one user instruction per row from the pre-query template alone.

    Each row's sample is seeded by (`seed`, its `uuid`), and `early_stop` stops generation
    at the first newline (the release's stop string), where the compute is saved.

    ```
    {"uuid": ["a2639ae2-..."]}
    -> {"uuid": ["<uuid5 of model, seed, placeholder>"], "model": ["HuggingFaceTB/SmolLM2-135M-Instruct"],
        "gen_input_configs": [{"temperature": 1.0, "top_p": 1.0, "input_generator": ..., "seed": 0,
                               "pre_query_template": "<|im_start|>user\\n"}],
        "instruction_options": [{"max_tokens": 2048, "early_stop": False, "sanitize": False,
                                 "system_prompt": None, "model_source": ..., "engine": "transformers",
                                 "dtype": "float32"}],
        "instruction": ["How do I make a simple budget for a student?"], "instruction_issue": [None]}
    ```
    `instruction_issue` is None, "empty", "max_tokens" or "template_markup".

    >>> batch = {"uuid": ["a2639ae2-f300-5e4b-8490-5103f59a5891"]}
    >>> add_magpie_instructions(batch, max_tokens=32)["instruction"]  # doctest: +SKIP
    ['How do I make a simple budget for a student?']
    """
    require_reads(batch, "add_magpie_instructions")
    rows = batch_size_of(batch)
    llm = ModelSpec(model, engine, engine_options).load()
    template = magpie_template(llm.tokenizer, system_prompt=system_prompt)
    placeholders = list(batch["uuid"])
    sampling = Sampling(
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=(*template.stop, "\n") if early_stop else template.stop,
    )
    seeds = [row_seed(seed, key) for key in placeholders]
    completions = [c for c, in llm.generate([template.pre_query] * rows, sampling, seeds=seeds)] if rows else []
    markup = markup_tokens(llm.tokenizer, template.stop)

    instructions, issues = [], []
    for completion in completions:
        text, cut = clean_instruction(completion.text, early_stop, sanitize)
        instructions.append(text)
        issues.append(text_issue(text, "stop" if cut else completion.finish_reason, markup))

    used = engine_record(llm)
    configs = record(
        GEN_INPUT_CONFIGS, temperature=temperature, top_p=top_p, input_generator=used["model"], seed=seed,
        pre_query_template=template.pre_query,
    )
    options = record(
        INSTRUCTION_OPTIONS, max_tokens=max_tokens, early_stop=early_stop, sanitize=sanitize,
        system_prompt=template.system_prompt, model_source=used["model_source"], engine=used["engine"],
        dtype=used["dtype"],
    )
    return typed_batch(
        {
            "uuid": [conversation_uuid(llm.model_id, seed, p) for p in placeholders],
            "model": [llm.model_id] * rows,
            "gen_input_configs": [configs] * rows,
            "instruction_options": [options] * rows,
            "instruction": instructions,
            "instruction_issue": issues,
        },
        INSTRUCTION_FEATURES,
    )


@versioned
def generate_responses(
    batch: Mapping[str, list],
    *,
    model: str | None = None,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_tokens: int = 4096,
    repetition_penalty: float = 1.0,
    seed: int = 0,
) -> dict[str, list]:
    """Step 2: answer each `instruction` through the model's normal chat template.

    `model=None` answers with the model named in the row's `model` column (the one
    that wrote the instruction), or the embedded default where there is none; name
    another model to re-answer, e.g. a published Magpie dataset.

    ```
    {"instruction": ["Name a prime."]}
    -> {"response": ["7 is a prime number."], "response_issue": [None],
        "gen_response_configs": [{"prompt": "<|im_start|>user\\n{input}<|im_end|>\\n<|im_start|>assistant\\n",
                                  "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0,
                                  "max_tokens": 4096, "stop_tokens": ["<|im_end|>", ...],
                                  "output_generator": ..., "model_source": ..., "engine": "transformers",
                                  "dtype": "float32", "seed": 0}],
        "conversations": [[{"from": "human", "value": "Name a prime."}, {"from": "gpt", "value": "7 is ..."}]],
        "instruction_length": [13], "response_length": [20]}
    ```
    `response_issue` is None, "no_instruction", "empty", "max_tokens" or "template_markup";
    lengths are in characters.
    """
    require_reads(batch, "generate_responses")
    instructions = [text or "" for text in batch["instruction"]]
    answers, answer_issues, configs = answer_instructions(
        batch, spec=ModelSpec(model, engine, engine_options), n=1, temperature=temperature,
        top_p=top_p, repetition_penalty=repetition_penalty, max_tokens=max_tokens, seed=seed,
    )
    responses = [texts[0] if texts else "" for texts in answers]
    issues = [found[0] if found else "no_instruction" for found in answer_issues]

    return typed_batch(
        {
            "response": responses,
            "response_issue": issues,
            "gen_response_configs": configs,
            "conversations": [to_conversations(q, a) for q, a in zip(instructions, responses)],
            "instruction_length": [len(q) for q in instructions],
            "response_length": [len(a) for a in responses],
        },
        RESPONSE_FEATURES,
    )


add_responses = generate_responses
