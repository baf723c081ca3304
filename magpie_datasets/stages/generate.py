"""Magpie steps 1 and 2 as batched `Dataset.map` functions.

    ds = magpie.empty(100)
    ds = ds.map(magpie.add_magpie_instructions, batched=True)   # step 1: instructions
    ds = ds.map(magpie.generate_responses, batched=True)        # step 2: responses

Decoding defaults are the paper's (DESIGN §5): step 1 samples at T=1.0, top-p 1.0;
step 2 is greedy. Every option is a keyword argument, so `fn_kwargs` sets it and
`datasets` fingerprints it; loaded models are cached per process by `load_engine`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping

from datasets import Dataset, Features, Value

from ..engines import load_engine
from ..engines.base import Sampling, dtype_name
from ..schema import (
    INSTRUCTION_FEATURES,
    RESPONSE_FEATURES,
    batch_size_of,
    conversation_uuid,
    require_columns,
    to_conversations,
    typed_batch,
)
from ..templates import chat_prompt, magpie_template
from ..version import versioned

# Where a sampled "instruction" starts answering itself (the release's sanitizer).
ANSWER_LEAK = re.compile(r"\n\s*(?:#+\s*)?(?:Answer|Solution|Response|Step 1)\b\s*:?|\n\s*##\s*Step\s*1\b")


def empty(n: int) -> Dataset:
    """`n` placeholder rows for step 1: a `uuid` column with a stable id per row.

    >>> empty(2)["uuid"][0]
    'a2639ae2-f300-5e4b-8490-5103f59a5891'
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"empty(n) needs a row count >= 0, got {n!r}")
    uuids = [conversation_uuid("magpie-datasets", "placeholder", i) for i in range(n)]
    return Dataset.from_dict({"uuid": uuids}, features=Features({"uuid": Value("string")}))


def row_seed(seed: int, key: str) -> int:
    """The seed of one row's sample: a hash of the run's seed and the row's own id.

    A row therefore gets the same text whatever `batch_size`, `num_proc`, the rows around
    it or a resume.

    >>> row_seed(0, "a2639ae2-f300-5e4b-8490-5103f59a5891") != row_seed(1, "a2639ae2-f300-5e4b-8490-5103f59a5891")
    True
    >>> 0 <= row_seed(0, "any row") < 2**63
    True
    """
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def row_keys(batch: Mapping[str, list]) -> list[str]:
    """What identifies each row for its seed: `uuid`, else the instruction text."""
    return [str(k) for k in (batch["uuid"] if "uuid" in batch else batch["instruction"])]


def text_issue(text: str, finish_reason: str, markup: tuple[str, ...]) -> str | None:
    """Why a generated text may be unusable, or None when it looks fine."""
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


@versioned
def add_magpie_instructions(
    batch: Mapping[str, list],
    model: str | None = None,
    engine: str = "transformers",
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens: int = 2048,
    seed: int = 0,
    early_stop: bool = False,
    sanitize: bool = False,
    system_prompt: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Step 1: sample one user instruction per row from the pre-query template alone.

    Each row's sample is seeded by (`seed`, its `uuid`), and `early_stop` stops generation
    at the first newline (the release's stop string), where the compute is saved.

    Input: a batch with `uuid` (from `empty(n)`). Output columns: `uuid` (uuid5 of
    the conversation), `model`, `gen_input_configs` {temperature, top_p,
    input_generator, seed, pre_query_template}, `instruction_options`,
    `instruction`, `instruction_issue` (None, "empty", "max_tokens" or
    "template_markup").

    >>> batch = {"uuid": ["a2639ae2-f300-5e4b-8490-5103f59a5891"]}
    >>> add_magpie_instructions(batch, max_tokens=32)["instruction"]  # doctest: +SKIP
    ['How do I make a simple budget for a student?']
    """
    require_columns(batch, {"uuid": "magpie.empty(n)"}, "add_magpie_instructions")
    rows = batch_size_of(batch)
    llm = load_engine(model, engine, **dict(engine_options or {}))
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

    configs = {
        "temperature": float(temperature),
        "top_p": float(top_p),
        "input_generator": llm.model_id,
        "seed": int(seed),
        "pre_query_template": template.pre_query,
    }
    options = {
        "max_tokens": int(max_tokens),
        "early_stop": bool(early_stop),
        "sanitize": bool(sanitize),
        "system_prompt": template.system_prompt,
        "engine": llm.name,
        "dtype": dtype_name(llm),
    }
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


def response_config(llm, temperature: float, top_p: float, repetition_penalty: float, max_tokens: int) -> dict:
    """The `gen_response_configs` of answering with `llm`: its prompt template, decoding and stops."""
    return {
        "prompt": chat_prompt(llm.tokenizer, [{"role": "user", "content": "{input}"}]),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "repetition_penalty": float(repetition_penalty),
        "max_tokens": int(max_tokens),
        "stop_tokens": list(magpie_template(llm.tokenizer, system_prompt="template").stop),
        "output_generator": llm.model_id,
        "engine": llm.name,
        "dtype": dtype_name(llm),
    }


def answering_models(batch: Mapping[str, list], model: str | None) -> list[str | None]:
    """The model that continues each row: `model`, or with `model=None` the row's own `model`
    column (the one that wrote the instruction), or the embedded default (None) without one."""
    return list(batch["model"]) if model is None and "model" in batch else [model] * batch_size_of(batch)


def answer_instructions(
    batch: Mapping[str, list],
    *,
    model: str | None,
    engine: str,
    engine_options: Mapping[str, Any] | None,
    n: int,
    temperature: float,
    top_p: float,
    repetition_penalty: float,
    max_tokens: int,
    seed: int,
) -> tuple[list[list[str]], list[list[str | None]], list[dict | None]]:
    """`n` answers to each row's `instruction` through the chat template (steps 2 and k-sample).

    Each row is answered by `answering_models(batch, model)`, seeded by (`seed`, `row_keys`).
    Returns, per row: the answers
    ([] for an empty instruction), their issues (None, "empty", "max_tokens",
    "template_markup") and the row's `gen_response_configs`.
    """
    instructions = [text or "" for text in batch["instruction"]]
    rows = len(instructions)
    models = answering_models(batch, model)
    keys = row_keys(batch)
    answers: list[list[str]] = [[] for _ in range(rows)]
    issues: list[list[str | None]] = [[] for _ in range(rows)]
    configs: list[dict | None] = [None] * rows
    for name in dict.fromkeys(models):  # one engine per distinct model, in row order
        llm = load_engine(name, engine, **dict(engine_options or {}))
        config = response_config(llm, temperature, top_p, repetition_penalty, max_tokens)
        stop = tuple(config["stop_tokens"])
        markup = markup_tokens(llm.tokenizer, stop)
        mine = [i for i in range(rows) if models[i] == name]
        for i in mine:
            configs[i] = config
        todo = [i for i in mine if instructions[i].strip()]
        if not todo:
            continue
        sampling = Sampling(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            repetition_penalty=repetition_penalty,
            stop=stop,
        )
        prompts = [chat_prompt(llm.tokenizer, [{"role": "user", "content": instructions[i]}]) for i in todo]
        seeds = [row_seed(seed, keys[i]) for i in todo]
        for i, completions in zip(todo, llm.generate(prompts, sampling, seeds=seeds)):
            answers[i] = [c.text.strip() for c in completions]
            issues[i] = [text_issue(t, c.finish_reason, markup) for t, c in zip(answers[i], completions)]
    return answers, issues, configs


@versioned
def generate_responses(
    batch: Mapping[str, list],
    model: str | None = None,
    engine: str = "transformers",
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_tokens: int = 4096,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Step 2: answer each `instruction` through the model's normal chat template.

    `model=None` answers with the model named in the row's `model` column (the one
    that wrote the instruction), or the embedded default where there is none; name
    another model to re-answer, e.g. a published Magpie dataset.

    Input: a batch with `instruction`. Output columns: `response`,
    `response_issue` (None, "no_instruction", "empty", "max_tokens" or
    "template_markup"), `gen_response_configs`, `conversations`
    ([{from: human, value}, {from: gpt, value}]), `instruction_length`,
    `response_length` (characters).
    """
    require_columns(batch, {"instruction": "add_magpie_instructions"}, "generate_responses")
    instructions = [text or "" for text in batch["instruction"]]
    answers, answer_issues, configs = answer_instructions(
        batch, model=model, engine=engine, engine_options=engine_options, n=1, temperature=temperature,
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
