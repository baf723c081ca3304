"""Multi-turn Magpie (MAGPIE-MT, paper §2): `add_turns`, a batched map that adds follow-up turns.

    ds = ds.map(magpie.generate_responses, batched=True)                    # turn 1
    ds = ds.map(magpie.add_turns, batched=True, fn_kwargs={"num_turns": 3})  # turns 2 and 3

Follow-up user turn k is sampled after the whole conversation so far plus an opened user
turn (`templates.next_user_prefix`), under the paper's MT system prompt (fig. 14); its
answer is generated through the plain chat template, without that system prompt.
"""

from __future__ import annotations

from datasets import Features, Value
from ..schema import CONVERSATIONS

from typing import Any, Mapping, Sequence

from ..engines.base import Sampling
from ..engines.models import ModelSpec, chat_stops, engine_record, engines_for_rows
from ..schema import batch_size_of, record, to_conversations, typed_batch
from ..templates import (
    TemplateError,
    chat_prompt,
    next_user_prefix,
    template_kwargs_record,
)
from ..version import versioned
from .rows import answering_models, row_keys, row_seed
from .columns import require_reads
from .texts import clean_instruction, markup_tokens, text_issue
from .entry import FOLLOW_UP, Stage


# the columns this stage writes (MAGPIE-MT)
GEN_MT_CONFIGS = {
    "temperature": Value("float64"),
    "top_p": Value("float64"),
    "max_tokens": Value("int64"),
    "response_temperature": Value("float64"),
    "response_max_tokens": Value("int64"),
    "response_repetition_penalty": Value("float64"),
    "response_penalize_prompt": Value("bool"),
    "early_stop": Value("bool"),
    "sanitize": Value("bool"),
    "system_prompt": Value("string"),  # the MT prompt as used; null where the template has no system role
    "input_generator": Value("string"),
    "model_source": Value("string"),
    "seed": Value("int64"),
    "engine": Value("string"),
    "dtype": Value("string"),
    "chat_template_kwargs": Value("string"),  # JSON object, sorted keys; null without any
}

def turn_features(num_turns: int) -> Features:
    """Features of the columns `add_turns(..., num_turns=num_turns)` writes.

    >>> list(turn_features(3))[:4]
    ['instruction_2', 'response_2', 'instruction_3', 'response_3']
    """
    columns: dict[str, Any] = {}
    for k in range(2, num_turns + 1):
        columns[f"instruction_{k}"] = Value("string")
        columns[f"response_{k}"] = Value("string")
    columns["conversations"] = CONVERSATIONS
    columns["turns_issue"] = Value("string")
    columns["gen_mt_configs"] = GEN_MT_CONFIGS
    return Features(columns)

# Paper fig. 14.
MT_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. The user will engage in a multi-round conversation with you, "
    "asking initial questions and following up with additional related questions. Your goal is to "
    "provide thorough, relevant and insightful responses to help the user with their queries."
)


def follow_up_prefix(
    tokenizer,
    messages: Sequence[Mapping[str, str]],
    system_prompt: str | None = MT_SYSTEM_PROMPT,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> tuple[str, str | None]:
    """The prompt that makes the model write the next user turn, and the system prompt it carries.

    `messages` is the conversation so far ([{role, content}, ...], user first). The MT system
    prompt goes in front the way the template places a system message; a template without a
    system role (Gemma-2), or one that drops it, gets the bare conversation and None back.
    """
    if system_prompt:
        try:
            prefix = next_user_prefix(
                tokenizer, [{"role": "system", "content": system_prompt}, *messages], chat_template_kwargs
            )
        except TemplateError:
            prefix = None  # "System role not supported": go without it, and say so in the row
        if prefix is not None and system_prompt.strip() in prefix:
            return prefix, system_prompt
    return next_user_prefix(tokenizer, messages, chat_template_kwargs), None


_PROBE = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}]


def _first_turn_issue(batch: Mapping[str, list], row: int) -> str | None:
    """Why turn 1 of a row cannot be continued (it is missing, empty, truncated, ...)."""
    for column in ("instruction", "response"):
        issue = (batch.get(f"{column}_issue") or [None] * (row + 1))[row]
        text = batch[column][row]
        if issue is None and not (text or "").strip():
            issue = "empty"
        if issue is not None:
            return f"{column}: {issue}"
    return None


def _turn_one(batch: Mapping[str, list], row: int) -> list[dict[str, str]]:
    """A row whose turn 1 cannot be continued keeps the conversation it came with."""
    if "conversations" in batch and batch["conversations"][row] is not None:
        return list(batch["conversations"][row])
    return to_conversations(*(t for t in (batch["instruction"][row], batch["response"][row]) if t is not None))


@versioned
def add_turns(
    batch: Mapping[str, list],
    *,
    num_turns: int = 2,
    model: str | None = None,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens: int = 2048,
    response_max_tokens: int = 4096,
    response_temperature: float = 0.0,
    response_repetition_penalty: float = 1.0,
    response_penalize_prompt: bool = True,
    seed: int = 0,
    early_stop: bool = False,
    sanitize: bool = False,
    system_prompt: str | None = MT_SYSTEM_PROMPT,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Turns 2..`num_turns` of each conversation: a sampled follow-up question, then its answer.

    Input: `instruction`, `response` (steps 1-2; `instruction_issue`/`response_issue` are read
    when present), optionally `model` and `uuid`. Output: columns `instruction_k` and
    `response_k` for k = 2..`num_turns`, `conversations`, `turns_issue`, `gen_mt_configs`. Follow-ups are sampled like step 1, answers like step 2; every option is
    recorded in `gen_mt_configs`.

    ```
    {"instruction": ["What is a prime?"], "response": ["A number with two divisors."]}, num_turns=2
    -> {"instruction_2": ["Is 1 a prime?"], "response_2": ["No: it has one divisor."],
        "conversations": [[{"from": "human", ...}, {"from": "gpt", ...}, {"from": "human", ...},
                           {"from": "gpt", ...}]],
        "turns_issue": [None],
        "gen_mt_configs": [{"temperature": 1.0, "top_p": 1.0, "max_tokens": 2048, ..., "system_prompt":
                            "You are a helpful AI assistant. ...", "input_generator": ..., "seed": 0, ...}]}
    ```
    `instruction_k` / `response_k` are None for turns not reached; `conversations` holds every
    well-formed turn; `turns_issue` is None when every turn is well-formed, else where the
    conversation stopped and why ("instruction_3: max_tokens", "response_2: empty",
    "response: max_tokens" for a truncated turn 1). The text of the turn that failed is kept in
    its column, so nothing is silently cut. `gen_mt_configs.system_prompt` is null where the
    template has no system role.

    Args:
        num_turns (`int`, *optional*, defaults to `2`): turns per conversation, turn 1 included (>= 2): writes
            `instruction_k` / `response_k` for k = 2..`num_turns` (MAGPIE-MT, paper §2). A conversation stops
            early at the first turn with an issue (`turns_issue`).
        model (`str`, *optional*, defaults to `None`): the model that writes the follow-ups and their answers: a
            local directory or a Hugging Face Hub id. None: the row's `model` column (the one that wrote turn 1),
            else the embedded SmolLM2-135M-Instruct. Rows are grouped per model. Recorded in
            `gen_mt_configs.input_generator` and `gen_mt_configs.model_source`.
        engine (`str`, *optional*, defaults to `"transformers"`): what runs the model: "transformers" (in-process
            generation; float32 on a CPU, bfloat16 or float16 on CUDA) or "vllm" (a `vllm.LLM` with prefix
            caching; not inside `Dataset.map(num_proc=N)` workers). Recorded in `gen_mt_configs.engine` and
            `gen_mt_configs.dtype`.
        engine_options (`dict`, *optional*, defaults to `None`): load options passed to the engine
            (`engines.load_engine`): transformers takes `dtype`, `device`, `batch_size`, `trust_remote_code`,
            `attn_implementation`; vLLM any `vllm.LLM` argument (`tensor_parallel_size`,
            `gpu_memory_utilization`, ...). None: the engine's defaults. The compute dtype is recorded in
            `gen_mt_configs.dtype`.
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature of the follow-up questions
            (step 1's default). Recorded in `gen_mt_configs.temperature`.
        top_p (`float`, *optional*, defaults to `1.0`): nucleus-sampling threshold of the follow-ups, and of the
            answers when `response_temperature > 0` (1.0: the whole distribution). Recorded in
            `gen_mt_configs.top_p`.
        max_tokens (`int`, *optional*, defaults to `2048`): caps the tokens of each follow-up question (step 1's
            cap); one that reaches it uncut ends the conversation with `turns_issue` "instruction_k: max_tokens".
            Recorded in `gen_mt_configs.max_tokens`.
        response_max_tokens (`int`, *optional*, defaults to `4096`): caps the tokens of each answer (step 2's
            cap); reaching it ends the conversation with "response_k: max_tokens". Recorded in
            `gen_mt_configs.response_max_tokens`.
        response_temperature (`float`, *optional*, defaults to `0.0`): sampling temperature of the answers; 0 is
            greedy, as in step 2. Recorded in `gen_mt_configs.response_temperature`.
        response_repetition_penalty (`float`, *optional*, defaults to `1.0`): above 1, lowers the logits of
            tokens already seen in the answers (never the stop / end-of-turn tokens); 1.0 (off) as in the paper,
            small models loop less at ~1.2. Recorded in `gen_mt_configs.response_repetition_penalty`.
        response_penalize_prompt (`bool`, *optional*, defaults to `True`): whether that penalty also counts the
            prompt, i.e. the whole conversation so far; False counts only the answer's own tokens (a small model
            penalised on the whole conversation drifts into word soup). No effect at a penalty of 1.0. Recorded in
            `gen_mt_configs.response_penalize_prompt`.
        seed (`int`, *optional*, defaults to `0`): run seed. Turn k of a row samples with its own seeds, hashes
            of (`seed`, "<row key>/instruction_k") and (`seed`, "<row key>/response_k"), the row key being its
            `uuid` (its instruction text without one), so a row's turns do not depend on the batch. Recorded in
            `gen_mt_configs.seed`.
        early_stop (`bool`, *optional*, defaults to `False`): as in step 1: add "\\n" to the follow-up's stop
            strings and keep its first line only. Recorded in `gen_mt_configs.early_stop`.
        sanitize (`bool`, *optional*, defaults to `False`): as in step 1: clean each follow-up with
            `sanitize_instruction` (labels and list markers stripped, cut before an answer leak; rules of an
            unknown family, so "## Step 1" cuts too). Recorded in `gen_mt_configs.sanitize`.
        system_prompt (`str`, *optional*, defaults to `MT_SYSTEM_PROMPT`): system prompt under which the
            follow-up questions are sampled, placed the way the template places a system message; the default is
            the paper's MT prompt (fig. 14). None or "": no system prompt, the bare conversation. A template with
            no system role (Gemma-2), or one that drops it, goes without. Answers never get it. Recorded as used
            in `gen_mt_configs.system_prompt` (null where none was used).
        chat_template_kwargs (`dict`, *optional*, defaults to `None`): extra keyword arguments passed to
            `tokenizer.apply_chat_template` in every rendering, follow-up prompts and answer prompts alike (e.g.
            Qwen3's `{"enable_thinking": False}`). None: none. Recorded in `gen_mt_configs.chat_template_kwargs`
            as a JSON string (sorted keys; null without any).

    >>> batch = {"instruction": ["What is a prime?"], "response": ["A number with two divisors."]}
    >>> add_turns(batch, num_turns=3, max_tokens=64)["instruction_2"]  # doctest: +SKIP
    ['Can you give me an example of a prime number?']
    """
    batch = require_reads(batch, "add_turns")
    if not isinstance(num_turns, int) or isinstance(num_turns, bool) or num_turns < 2:
        raise ValueError(f"add_turns needs num_turns >= 2 (turn 1 is the existing instruction/response), got {num_turns!r}")
    rows = batch_size_of(batch)
    keys = row_keys(batch)
    issues = [_first_turn_issue(batch, i) for i in range(rows)]
    messages = [
        [{"role": "user", "content": batch["instruction"][i]}, {"role": "assistant", "content": batch["response"][i]}]
        if issues[i] is None
        else []
        for i in range(rows)
    ]
    turns: dict[str, list[str | None]] = {f"{column}_{k}": [None] * rows for k in range(2, num_turns + 1) for column in ("instruction", "response")}
    configs: list[dict | None] = [None] * rows

    spec = ModelSpec(model, engine, engine_options or {})
    for llm, mine in engines_for_rows(answering_models(batch, model), spec):
        stop = chat_stops(llm.tokenizer)
        markup = markup_tokens(llm.tokenizer, stop)
        used = engine_record(llm)
        config = record(
            GEN_MT_CONFIGS,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            response_temperature=response_temperature,
            response_max_tokens=response_max_tokens,
            response_repetition_penalty=response_repetition_penalty,
            response_penalize_prompt=response_penalize_prompt,
            early_stop=early_stop,
            sanitize=sanitize,
            system_prompt=follow_up_prefix(llm.tokenizer, _PROBE, system_prompt, chat_template_kwargs)[1],
            input_generator=used["model"],
            model_source=used["model_source"],
            seed=seed,
            engine=used["engine"],
            dtype=used["dtype"],
            chat_template_kwargs=template_kwargs_record(chat_template_kwargs),
        )
        for i in mine:
            configs[i] = config
        for k in range(2, num_turns + 1):
            active = [i for i in mine if issues[i] is None]
            if not active:
                break
            # Follow-up questions: the conversation, then an opened user turn, under the MT prompt.
            prompts = [follow_up_prefix(llm.tokenizer, messages[i], system_prompt, chat_template_kwargs)[0]
                       for i in active]
            sampling = Sampling(
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                stop=(*stop, "\n") if early_stop else stop,
            )
            seeds = [row_seed(seed, f"{keys[i]}/instruction_{k}") for i in active]
            for i, (completion,) in zip(active, llm.generate(prompts, sampling, seeds=seeds)):
                text, cut = clean_instruction(completion.text, early_stop, sanitize)
                turns[f"instruction_{k}"][i] = text
                if why := text_issue(text, "stop" if cut else completion.finish_reason, markup):
                    issues[i] = f"instruction_{k}: {why}"

            # Answers: the plain chat template over the conversation, without the MT prompt.
            active = [i for i in active if issues[i] is None]
            if not active:
                break
            asked = {i: [*messages[i], {"role": "user", "content": turns[f"instruction_{k}"][i]}] for i in active}
            prompts = [chat_prompt(llm.tokenizer, asked[i], chat_template_kwargs=chat_template_kwargs) for i in active]
            sampling = Sampling(
                temperature=response_temperature,
                top_p=top_p,
                max_tokens=response_max_tokens,
                repetition_penalty=response_repetition_penalty,
                penalize_prompt=response_penalize_prompt,
                stop=stop,
            )
            seeds = [row_seed(seed, f"{keys[i]}/response_{k}") for i in active]
            for i, (completion,) in zip(active, llm.generate(prompts, sampling, seeds=seeds)):
                text = completion.text.strip()
                turns[f"response_{k}"][i] = text
                if why := text_issue(text, completion.finish_reason, markup):
                    issues[i] = f"response_{k}: {why}"
                else:
                    messages[i] = [*asked[i], {"role": "assistant", "content": text}]

    conversations = [
        to_conversations(*(m["content"] for m in conversation)) if conversation else _turn_one(batch, i)
        for i, conversation in enumerate(messages)
    ]
    return typed_batch(
        {**turns, "conversations": conversations, "turns_issue": issues, "gen_mt_configs": configs},
        turn_features(num_turns),
    )


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("add_turns", add_turns, "map",
          "turns 2..k: follow-up questions and their answers",
          reads=("instruction", "response"), writes=turn_features(2),
          writes_patterns=("instruction_*", "response_*"), models=(FOLLOW_UP,)),
)
