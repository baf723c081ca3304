"""Answering instructions through a chat template: what step 2 and the k-sample stage share.

    answers, issues, configs = answer_instructions(batch, spec=ModelSpec(), n=1, temperature=0.0, ...)

`chat_template_kwargs` (e.g. Qwen3's {"enable_thinking": False}) go to every rendering of the
template and are recorded in `gen_response_configs` as a JSON string, with the reasoning
markers the template names (what `split_reasoning` cuts at).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..engines.base import Engine, Sampling
from ..engines.models import ModelSpec, chat_stops, engine_record, engines_for_rows
from ..schema import GEN_RESPONSE_CONFIGS, record
from ..templates import chat_prompt, reasoning_markers, template_kwargs_record
from .rows import answering_models, row_keys, row_seed
from .texts import markup_tokens, text_issue


def response_config(
    llm: Engine,
    *,
    temperature: float,
    top_p: float,
    repetition_penalty: float,
    max_tokens: int,
    seed: int,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> dict:
    """The `gen_response_configs` of answering with `llm`: its prompt template, decoding, stops, seed."""
    engine = engine_record(llm)
    markers = reasoning_markers(llm.tokenizer, chat_template_kwargs)
    return record(
        GEN_RESPONSE_CONFIGS,
        prompt=chat_prompt(llm.tokenizer, [{"role": "user", "content": "{input}"}],
                           chat_template_kwargs=chat_template_kwargs),
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        max_tokens=max_tokens,
        stop_tokens=list(chat_stops(llm.tokenizer)),
        output_generator=engine["model"],
        model_source=engine["model_source"],
        engine=engine["engine"],
        dtype=engine["dtype"],
        seed=seed,
        chat_template_kwargs=template_kwargs_record(chat_template_kwargs),
        reasoning_markers=list(markers) if markers else None,
    )


def answer_instructions(
    batch: Mapping[str, list],
    *,
    spec: ModelSpec,
    n: int,
    temperature: float,
    top_p: float,
    repetition_penalty: float,
    max_tokens: int,
    seed: int,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[list[str]], list[list[str | None]], list[dict | None]]:
    """`n` answers to each row's `instruction` through the chat template (steps 2 and k-sample).

    Each row is answered by `answering_models(batch, spec.model)`, seeded by (`seed`, `row_keys`).
    Returns, per row: the answers ([] for an empty instruction), their issues (None, "empty",
    "max_tokens", "template_markup") and the row's `gen_response_configs`.
    """
    instructions = [text or "" for text in batch["instruction"]]
    rows = len(instructions)
    keys = row_keys(batch)
    answers: list[list[str]] = [[] for _ in range(rows)]
    issues: list[list[str | None]] = [[] for _ in range(rows)]
    configs: list[dict | None] = [None] * rows
    for llm, mine in engines_for_rows(answering_models(batch, spec.model), spec):
        config = response_config(
            llm, temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty,
            max_tokens=max_tokens, seed=seed, chat_template_kwargs=chat_template_kwargs,
        )
        stop = tuple(config["stop_tokens"])
        markup = markup_tokens(llm.tokenizer, stop)
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
        prompts = [
            chat_prompt(llm.tokenizer, [{"role": "user", "content": instructions[i]}],
                        chat_template_kwargs=chat_template_kwargs)
            for i in todo
        ]
        seeds = [row_seed(seed, keys[i]) for i in todo]
        for i, completions in zip(todo, llm.generate(prompts, sampling, seeds=seeds)):
            answers[i] = [c.text.strip() for c in completions]
            issues[i] = [text_issue(t, c.finish_reason, markup) for t, c in zip(answers[i], completions)]
    return answers, issues, configs
