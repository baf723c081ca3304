"""Magpie steps 1 and 2 as batched `Dataset.map` functions (paper §2).

    ds = magpie.empty(100)
    ds = ds.map(magpie.add_magpie_instructions, batched=True)   # step 1: instructions
    ds = ds.map(magpie.generate_responses, batched=True)        # step 2: responses

Decoding defaults are the paper's: step 1 samples at T=1.0, top-p 1.0; step 2 is
greedy. Every option is a keyword argument, so `fn_kwargs` sets it and `datasets`
fingerprints it; loaded models are cached per process (`engines.load_engine`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from datasets import Dataset, Features, Value

from ..engines.base import Completion, Sampling
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
from ..templates import first_token_bias_ids, magpie_template, template_kwargs_record
from ..version import versioned
from .answering import answer_instructions
from .rows import assign_decoding, assign_prefix, row_seed
from .columns import require_reads
from .texts import clean_instruction, markup_tokens, text_issue, tidy_instruction  # noqa: F401 (re-exported)
from .entry import CHAT, Chart, RESPONDER, Stage


def empty(n: int) -> Dataset:
    """`n` placeholder rows for step 1: a `uuid` column with a stable id per row.

    Input: none (a source stage). Output: a `Dataset` with the column `uuid`: a uuid5 (DNS
    namespace) of ("magpie-datasets", "placeholder", row index), so the same `n` gives the same ids
    every time; `add_magpie_instructions` turns each into the row's final `uuid`.

    Args:
        n (`int`): number of rows, >= 0 (anything else raises `ValueError`); the number of
            instructions step 1 will sample, one per row.

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
    chat_template_kwargs: Mapping[str, Any] | None = None,
    decoding_mix: Sequence[Mapping[str, float]] | None = None,
    first_token_bias: Mapping[str | int, float] | None = None,
    first_token_temperature: float | None = None,
    instruction_prefix: str | Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, list]:
    """Step 1: sample one user instruction per row from the pre-query template alone.

    Input: batch with column `uuid` (from `empty(n)`). Output: columns `uuid` (new: uuid5 of the
    model, `seed` and the input uuid), `model`, `gen_input_configs`, `instruction_options`,
    `instruction`, `instruction_issue`, `instruction_sanitize_class`.

    Each row's sample is seeded by (`seed`, its `uuid`), so it does not depend on the batch;
    the decoding settings of every row are recorded in `gen_input_configs` (the published
    schema) and the other options in `instruction_options`.

    ```
    {"uuid": ["a2639ae2-..."]}
    -> {"uuid": ["<uuid5 of model, seed, placeholder>"], "model": ["HuggingFaceTB/SmolLM2-135M-Instruct"],
        "gen_input_configs": [{"temperature": 1.0, "top_p": 1.0, "input_generator": ..., "seed": 0,
                               "pre_query_template": "<|im_start|>user\\n"}],
        "instruction_options": [{"max_tokens": 2048, "early_stop": False, "sanitize": False,
                                 "system_prompt": None, "model_source": ..., "engine": "transformers",
                                 "dtype": "float32", "chat_template_kwargs": None,
                                 "first_token_bias": [], "first_token_temperature": None}],
        "instruction": ["How do I make a simple budget for a student?"], "instruction_issue": [None],
        "instruction_sanitize_class": [None]}
    ```
    `instruction_issue` is None, "empty", "max_tokens" or "template_markup".
    `sanitize=True` cuts answer leaks, list markers and labels (`sanitize_instruction`, for the
    template's family) and writes which rule fired to `instruction_sanitize_class` (else None).

    Args:
        model (`str`, *optional*, defaults to `None`): the aligned chat model that writes the instructions: a
            local directory or a Hugging Face Hub id (from the local cache, or downloaded when online). None: the
            embedded SmolLM2-135M-Instruct, which runs offline on a CPU. Recorded in `model`,
            `gen_input_configs.input_generator` and `instruction_options.model_source`, and part of the new `uuid`.
        engine (`str`, *optional*, defaults to `"transformers"`): what runs the model: "transformers" (in-process
            generation; float32 on a CPU, bfloat16 or float16 on CUDA) or "vllm" (a `vllm.LLM` with prefix
            caching, which suits step 1's one shared prompt; not inside `Dataset.map(num_proc=N)` workers).
            Recorded in `instruction_options.engine` and `instruction_options.dtype`.
        engine_options (`dict`, *optional*, defaults to `None`): load options passed to the engine
            (`engines.load_engine`): transformers takes `dtype`, `device`, `batch_size`, `trust_remote_code`,
            `attn_implementation`; vLLM any `vllm.LLM` argument (`tensor_parallel_size`,
            `gpu_memory_utilization`, `max_model_len`, ...). None: the engine's defaults. The loaded model is
            cached per process under (model, engine, options); the compute dtype is recorded in
            `instruction_options.dtype`.
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature, the paper's step-1 default
            (paper §2; its decoding ablation, fig. 11 and appendix D, sweeps 1.0 / 1.1 / 1.2: higher gives more
            diverse, harder, slightly lower-quality instructions). Also the temperature of a `decoding_mix` entry
            that leaves it out. Recorded per row in `gen_input_configs.temperature`.
        top_p (`float`, *optional*, defaults to `1.0`): nucleus-sampling threshold (1.0: the whole
            distribution), the paper's step-1 default (its ablation also uses 0.995 and 0.99). Also the top-p of a
            `decoding_mix` entry that leaves it out. Recorded per row in `gen_input_configs.top_p`.
        max_tokens (`int`, *optional*, defaults to `2048`): caps the tokens generated per instruction (the
            release's step-1 cap). A sample that reaches it without being cut by a stop string, `early_stop` or
            `sanitize` gets `instruction_issue` "max_tokens". Recorded in `instruction_options.max_tokens`.
        seed (`int`, *optional*, defaults to `0`): run seed. Each row samples with its own seed, a hash of
            (`seed`, the row's input `uuid`) (`rows.row_seed`), so its text is the same whatever `batch_size`,
            `num_proc`, its neighbours or a resume; `seed` also keys the `decoding_mix` draw and the new `uuid`.
            Recorded in `gen_input_configs.seed`.
        early_stop (`bool`, *optional*, defaults to `False`): add "\\n" to the stop strings and keep only the
            first line, as the authors' release does by default ("early stopping"): saves the tokens of a run-on
            sample (one that opens with a newline comes out empty, `instruction_issue` "empty"). False: stop only
            at the template's end-of-turn and role-header strings (the paper's token caps). Recorded in
            `instruction_options.early_stop`.
        sanitize (`bool`, *optional*, defaults to `False`): apply the release's optional clean-up
            (`sanitize_instruction` for the template's family): strip label prefixes and list markers, cut at
            answer markers ("Answer:", "Solution:", "Explanation:"; "## Step 1" for Llama-3), keep the question
            of a bold, quoted or colon-ended first line. The rule that fired goes to `instruction_sanitize_class`.
            Recorded in `instruction_options.sanitize`.
        system_prompt (`str`, *optional*, defaults to `None`): what stands before the user header. None: a
            known family's published pre-query (e.g. Llama-3.1's bare user header without the dated system
            block, Qwen2.5's with its default system prompt), else the pre-query as the template renders it; only
            then does the family's `first_token_bias` preset apply. "template": exactly what the template renders
            before a lone user turn. Any other string: sent as a system message where the template places one, to
            steer the domain or language (paper fig. 15; `add_controlled_instructions` draws one per row); a
            template that drops system messages raises. Recorded in `instruction_options.system_prompt`, the
            resulting prefix in `gen_input_configs.pre_query_template`.
        chat_template_kwargs (`dict`, *optional*, defaults to `None`): extra keyword arguments passed to
            `tokenizer.apply_chat_template` in every rendering that derives the pre-query and stop strings (e.g.
            Qwen3's `{"enable_thinking": False}`). None: none. Recorded in `instruction_options.chat_template_kwargs`
            as a JSON string (sorted keys; null without any).
        decoding_mix (`list[dict]`, *optional*, defaults to `None`): None: every row at `temperature` / `top_p`.
            A list such as `[{"temperature": 1.0, "top_p": 1.0, "weight": 2}, {"temperature": 1.2, "top_p": 0.99,
            "weight": 1}]` (paper appendix E.1): each row draws one (temperature, top_p) by weight from (`seed`,
            its `uuid`) (`rows.assign_decoding`); a key an entry leaves out is `temperature` / `top_p`, a missing
            weight 1. Rows are grouped per configuration for the engine. Recorded per row in `gen_input_configs`.
        first_token_bias (`dict`, *optional*, defaults to `None`): {token text or id: additive logit bias} on the
            first generated token only; a text must be one token of the tokenizer. None: the family's preset
            (Llama-3.1/3.3 with `system_prompt=None`: "#", "##", "###", "####" at -9999.999, the release's
            de-markdown logits processor; none for other families). `{}`: off. Recorded, with the token ids, in
            `instruction_options.first_token_bias`.
        first_token_temperature (`float`, *optional*, defaults to `None`): temperature of the first generated
            token only (needs `temperature > 0`); None: the first token is sampled like the rest. The release's
            "flaming tokens" is `first_token_temperature=1.2 * temperature`. Recorded in
            `instruction_options.first_token_temperature`.
        instruction_prefix (`str` or `list[dict]`, *optional*, defaults to `None`): Magpie-Prefill (KodCode,
            arXiv 2503.02951, its coding-question synthesis): the user turn is started with this text after
            the pre-query template (its own spacing: the text follows the user-turn opening directly) and the
            model completes the request, so the topic is steered by the request itself, not by a system
            prompt's persona. The `instruction` column holds prefix plus completion (`instruction_issue` is
            "empty" where the model added nothing). A list such as `[{"prefix": "Write a Python function
            that", "weight": 3}, {"prefix": "Implement a class that", "weight": 1}]`: each row draws one prefix
            by weight from (`seed`, its `uuid`) (`rows.assign_prefix`); a missing weight is 1. None: no
            prefix. Recorded in `gen_input_configs.instruction_prefix` (null without one).

    >>> batch = {"uuid": ["a2639ae2-f300-5e4b-8490-5103f59a5891"]}
    >>> add_magpie_instructions(batch, max_tokens=32)["instruction"]  # doctest: +SKIP
    ['How do I make a simple budget for a student?']
    """
    batch = require_reads(batch, "add_magpie_instructions")
    rows = batch_size_of(batch)
    placeholders = list(batch["uuid"])
    prefixes = assign_prefix(placeholders, instruction_prefix, seed)  # a bad mix fails before the model loads
    llm = ModelSpec(model, engine, engine_options or {}).load()
    template = magpie_template(llm.tokenizer, system_prompt=system_prompt, chat_template_kwargs=chat_template_kwargs)
    if first_token_bias is not None and not isinstance(first_token_bias, Mapping):
        raise ValueError(f"first_token_bias must be a {{token text or id: bias}} dict, {{}} (off) or None (preset), got {first_token_bias!r}")
    bias = first_token_bias_ids(
        llm.tokenizer, template.first_token_bias if first_token_bias is None else first_token_bias,
        skip_missing=first_token_bias is None,
    )
    stop = (*template.stop, *template.assistant_stop, *(("\n",) if early_stop else ()))
    if decoding_mix is None:
        decodings = [(float(temperature), float(top_p))] * rows
    else:
        decodings = assign_decoding(placeholders, decoding_mix, seed, temperature, top_p)
    seeds = [row_seed(seed, key) for key in placeholders]
    completions: list[Completion | None] = [None] * rows
    # one engine call per drawn configuration; a row's sample depends on its own seed alone
    for config in dict.fromkeys(decodings):
        group = [i for i in range(rows) if decodings[i] == config]
        sampling = Sampling(
            temperature=config[0], top_p=config[1], max_tokens=max_tokens, stop=stop,
            first_token_bias=tuple((token_id, value) for _, token_id, value in bias),
            first_token_temperature=first_token_temperature,
        )
        prompts = [template.pre_query + prefixes[i] for i in group]
        outputs = llm.generate(prompts, sampling, seeds=[seeds[i] for i in group])
        for i, (completion,) in zip(group, outputs):
            completions[i] = completion
    markup = markup_tokens(llm.tokenizer, template.stop)

    instructions, issues, rules = [], [], []
    for filled, prefix in zip(completions, prefixes):
        if filled is None:  # every row is in one configuration's engine call
            raise RuntimeError("a row got no completion from the engine")
        completion = filled
        text, cut, rule = tidy_instruction(
            prefix + completion.text, early_stop=early_stop, sanitize=sanitize, family=template.family
        )
        instructions.append(text)
        # a prefix the model did not continue is no instruction
        issue = "empty" if prefix and not completion.text.strip() else None
        issues.append(issue or text_issue(text, "stop" if cut else completion.finish_reason, markup))
        rules.append(rule)

    used = engine_record(llm)
    configs = [
        record(
            GEN_INPUT_CONFIGS, temperature=t, top_p=p, input_generator=used["model"], seed=seed,
            pre_query_template=template.pre_query, instruction_prefix=prefix or None,
        )
        for (t, p), prefix in zip(decodings, prefixes)
    ]
    options = record(
        INSTRUCTION_OPTIONS, max_tokens=max_tokens, early_stop=early_stop, sanitize=sanitize,
        system_prompt=template.system_prompt, model_source=used["model_source"], engine=used["engine"],
        dtype=used["dtype"], chat_template_kwargs=template_kwargs_record(chat_template_kwargs),
        first_token_bias=[{"token": text, "token_id": token_id, "bias": value} for text, token_id, value in bias],
        first_token_temperature=first_token_temperature,
    )
    return typed_batch(
        {
            "uuid": [conversation_uuid(llm.model_id, seed, p) for p in placeholders],
            "model": [llm.model_id] * rows,
            "gen_input_configs": configs,
            "instruction_options": [options] * rows,
            "instruction": instructions,
            "instruction_issue": issues,
            "instruction_sanitize_class": rules,
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
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Step 2: answer each `instruction` through the model's normal chat template.

    Input: batch with column `instruction`, optionally `model` (who wrote it) and `uuid` (the
    row's seed key). Output: columns `response`, `response_issue`, `gen_response_configs`,
    `conversations`, `instruction_length`, `response_length`.

    A reasoning model's `<think>` block stays in `response`, for `split_reasoning` to cut out.

    ```
    {"instruction": ["Name a prime."]}
    -> {"response": ["7 is a prime number."], "response_issue": [None],
        "gen_response_configs": [{"prompt": "<|im_start|>user\\n{input}<|im_end|>\\n<|im_start|>assistant\\n",
                                  "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0,
                                  "max_tokens": 4096, "stop_tokens": ["<|im_end|>", ...],
                                  "output_generator": ..., "model_source": ..., "engine": "transformers",
                                  "dtype": "float32", "seed": 0, "chat_template_kwargs": None,
                                  "reasoning_markers": None}],
        "conversations": [[{"from": "human", "value": "Name a prime."}, {"from": "gpt", "value": "7 is ..."}]],
        "instruction_length": [13], "response_length": [20]}
    ```
    `response_issue` is None, "no_instruction", "empty", "max_tokens" or "template_markup";
    lengths are in characters.

    Args:
        model (`str`, *optional*, defaults to `None`): the model that answers: a local directory or a Hugging
            Face Hub id. None: the model named in the row's `model` column (the one that wrote the instruction),
            or the embedded SmolLM2-135M-Instruct where there is no such column; name another model to re-answer,
            e.g. a published Magpie dataset. Rows are grouped per model. Recorded in
            `gen_response_configs.output_generator` and `gen_response_configs.model_source`.
        engine (`str`, *optional*, defaults to `"transformers"`): what runs the model: "transformers" (in-process
            generation; float32 on a CPU, bfloat16 or float16 on CUDA) or "vllm" (a `vllm.LLM` with prefix
            caching; not inside `Dataset.map(num_proc=N)` workers). Recorded in `gen_response_configs.engine` and
            `gen_response_configs.dtype`.
        engine_options (`dict`, *optional*, defaults to `None`): load options passed to the engine
            (`engines.load_engine`): transformers takes `dtype`, `device`, `batch_size`, `trust_remote_code`,
            `attn_implementation`; vLLM any `vllm.LLM` argument (`tensor_parallel_size`,
            `gpu_memory_utilization`, `max_model_len`, ...). None: the engine's defaults. The compute dtype is
            recorded in `gen_response_configs.dtype`.
        temperature (`float`, *optional*, defaults to `0.0`): sampling temperature; 0 is greedy decoding, the
            release's step-2 setting. Recorded in `gen_response_configs.temperature`.
        top_p (`float`, *optional*, defaults to `1.0`): nucleus-sampling threshold (1.0: the whole
            distribution); it matters only when `temperature > 0`. Recorded in `gen_response_configs.top_p`.
        max_tokens (`int`, *optional*, defaults to `4096`): caps the tokens generated per response (the release's
            step-2 cap); a response that reaches it gets `response_issue` "max_tokens". Recorded in
            `gen_response_configs.max_tokens`.
        repetition_penalty (`float`, *optional*, defaults to `1.0`): above 1, lowers the logits of tokens
            already in the prompt or the response (never the stop / end-of-turn tokens); 1.0 is off, as in the
            paper's data (1.2 was used only for AlpacaEval decoding). Recorded in
            `gen_response_configs.repetition_penalty`.
        seed (`int`, *optional*, defaults to `0`): run seed. Each row samples with its own seed, a hash of
            (`seed`, the row's `uuid`, or its instruction text without a `uuid` column) (`rows.row_seed`), so its
            text does not depend on the batch; it changes the text only when `temperature > 0`. Recorded in
            `gen_response_configs.seed`.
        chat_template_kwargs (`dict`, *optional*, defaults to `None`): extra keyword arguments passed to
            `tokenizer.apply_chat_template` for every prompt (e.g. Qwen3's `{"enable_thinking": False}` answers
            without thinking). None: none. Recorded in `gen_response_configs.chat_template_kwargs` as a JSON string
            (sorted keys; null without any); the rendered prompt is in `gen_response_configs.prompt`, the
            template's reasoning markers in `gen_response_configs.reasoning_markers`.
    """
    batch = require_reads(batch, "generate_responses")
    instructions = [text or "" for text in batch["instruction"]]
    answers, answer_issues, configs = answer_instructions(
        batch, spec=ModelSpec(model, engine, engine_options or {}), n=1, temperature=temperature,
        top_p=top_p, repetition_penalty=repetition_penalty, max_tokens=max_tokens, seed=seed,
        chat_template_kwargs=chat_template_kwargs,
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


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("empty", empty, "source", "n placeholder rows with a stable `uuid` each",
          writes=Features({"uuid": Value("string")})),
    Stage("add_magpie_instructions", add_magpie_instructions, "map",
          "step 1: a user instruction from the pre-query template alone",
          reads=("uuid",), writes=INSTRUCTION_FEATURES, models=(CHAT,)),
    Stage("generate_responses", generate_responses, "map",
          "step 2: the answer through the normal chat template",
          reads=("instruction",), writes=RESPONSE_FEATURES, models=(RESPONDER,),
          charts=(Chart("instruction_length", "Instruction length (characters)", "histogram"),
                  Chart("response_length", "Response length (characters)", "histogram")),
          aliases=("add_responses",)),
)
