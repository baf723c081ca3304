"""Reward-model scores of responses, and the reward difference to a base model (DESIGN §5).

    ds = ds.map(magpie.add_rewards, batched=True, fn_kwargs={"model": "sfairXC/FsfairX-LLaMA3-RM-v0.1"})
    ds = ds.map(magpie.reward_diff, batched=True, fn_kwargs={"model": "sfairXC/FsfairX-LLaMA3-RM-v0.1"})

Any Hugging Face `AutoModelForSequenceClassification` with one output (or a custom-code one
exposing `.score`, like ArmoRM, with `trust_remote_code=True`) scores the pair
(instruction, response) rendered through the reward model's own chat template. `reward_diff`
answers each instruction with a *base* model from a few-shot URIAL-style prompt (ours) and
scores that answer with the same reward model: `reward_difference = instruct_reward -
base_reward` (the paper's τ2 filter keeps rows where the chat model beat the base model).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping, Sequence

from datasets import Features, List, Value

from ..engines import cached_model, load_engine, resolve_model
from ..engines.base import Sampling
from ..engines.embedded import EMBEDDED_BASE_MODEL, gemma_base_dir
from ..schema import require_columns, typed_batch
from ..templates import chat_prompt
from ..version import versioned

DEFAULT_REWARD_MODEL = "sfairXC/FsfairX-LLaMA3-RM-v0.1"  # the reward model of the authors' Pro datasets

REWARD_FEATURES = Features({"instruct_reward": Value("float64"), "reward_model": Value("string")})
SCORES = List({"score": Value("float64")})  # one {score} per response, e.g. `rewards_armorm`
BASE_FEATURES = Features(
    {
        "base_output": Value("string"),
        "base_reward": Value("float64"),
        "reward_difference": Value("float64"),
        "base_model": Value("string"),
    }
)


class RewardModelError(ValueError):
    """The named model cannot be used as a reward model (wrong type, needs remote code, ...)."""


# --- loading ---------------------------------------------------------------------------------


def _read_config(path: str) -> dict:
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise RewardModelError(f"{path} has no config.json, so it is not a Hugging Face model directory.")
    with open(config_file, encoding="utf-8") as f:
        return json.load(f)


def _check_reward_config(model: str, config: dict, trust_remote_code: bool) -> None:
    """Fail before loading any weights when the checkpoint is not a sequence classifier."""
    remote = (config.get("auto_map") or {}).get("AutoModelForSequenceClassification")
    if remote:
        if not trust_remote_code:
            raise RewardModelError(
                f"Reward model {model!r} runs its own code ({remote}). Read that code, then pass "
                "trust_remote_code=True (fn_kwargs={'trust_remote_code': True}) to allow it."
            )
        return
    architectures = config.get("architectures") or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise RewardModelError(
            f"{model!r} is a {', '.join(architectures)}, not a sequence-classification reward model "
            "(an AutoModelForSequenceClassification with one output). Name a reward model such as "
            f"{DEFAULT_REWARD_MODEL!r} or RLHFlow/ArmoRM-Llama3-8B-v0.1 (with trust_remote_code=True)."
        )


def load_reward_model(model: str, trust_remote_code: bool = False, dtype: str | None = None, device: str | None = None):
    """(model, tokenizer) of a reward model, loaded once per process (until `release_engines()`);
    weights never downloaded offline."""
    return cached_model(
        ("reward", model, trust_remote_code, dtype, device),
        lambda: _load_reward_model(model, trust_remote_code, dtype, device),
    )


def _load_reward_model(model: str, trust_remote_code: bool, dtype: str | None, device: str | None):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not isinstance(model, str) or not model:
        raise RewardModelError(f"add_rewards needs a reward model name or directory, got {model!r}.")
    path = resolve_model(model)
    _check_reward_config(model, _read_config(path), trust_remote_code)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    try:
        reward_model, info = AutoModelForSequenceClassification.from_pretrained(
            path, output_loading_info=True, **kwargs
        )
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise RewardModelError(
                f"Reward model {model!r} needs its own code: pass trust_remote_code=True after reading it."
            ) from err
        raise RewardModelError(f"{model!r} cannot be loaded as a sequence-classification model: {err}") from err
    # A causal LM without `architectures` in its config loads with a fresh, random head: refuse it.
    head = [k for k in info.get("missing_keys", []) if k.split(".")[0] in {"score", "classifier", "v_head"}]
    if head:
        raise RewardModelError(
            f"{model!r} has no trained reward head (missing weights: {', '.join(sorted(head))}); it is not a "
            "reward model. Name a sequence-classification reward model."
        )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    reward_model.to(device).eval()
    return reward_model, tokenizer


# --- scoring ---------------------------------------------------------------------------------


def _scalar(output, model: str):
    """The reward per row: `.score` (ArmoRM-style custom heads) or the single logit."""
    score = getattr(output, "score", None)
    if score is None:
        logits = output.logits if hasattr(output, "logits") else output[0]
        if logits.shape[-1] != 1:
            raise RewardModelError(
                f"{model!r} has {logits.shape[-1]} outputs per sequence; a reward model has one "
                "(or exposes `.score`). Name a reward model."
            )
        score = logits[:, 0]
    return score.reshape(-1).float().tolist()


def score_conversations(
    conversations: Sequence[Sequence[Mapping[str, str]]],
    model: str,
    trust_remote_code: bool = False,
    batch_size: int = 8,
    max_length: int | None = 4096,
    dtype: str | None = None,
    device: str | None = None,
) -> list[float]:
    """One reward per conversation ([{role, content}, ...]), rendered through the model's chat template.

    Scores do not depend on batching: rows are right-padded with the model's pad id (causal
    attention never sees the padding), and a row is scored alone when the model has no pad id
    or the row itself ends with it.
    """
    import torch

    reward_model, tokenizer = load_reward_model(model, trust_remote_code, dtype, device)
    ids = []
    for messages in conversations:
        text = chat_prompt(tokenizer, messages, add_generation_prompt=False)
        row = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.append(row[:max_length] if max_length else row)
    pad = reward_model.config.pad_token_id
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    alone = [i for i in order if pad is None or not ids[i] or ids[i][-1] == pad]
    together = [i for i in order if i not in set(alone)]
    groups = [[i] for i in alone] + [together[s : s + batch_size] for s in range(0, len(together), batch_size)]
    scores: list[float] = [0.0] * len(ids)
    device_of = next(reward_model.parameters()).device
    with torch.inference_mode():
        for group in groups:
            width = max(len(ids[i]) for i in group)
            input_ids = torch.tensor([ids[i] + [pad or 0] * (width - len(ids[i])) for i in group], device=device_of)
            mask = torch.tensor([[1] * len(ids[i]) + [0] * (width - len(ids[i])) for i in group], device=device_of)
            for i, value in zip(group, _scalar(reward_model(input_ids=input_ids, attention_mask=mask), model)):
                scores[i] = value
    return scores


def rewards_column_name(model: str) -> str:
    """`rewards_<short name>` for list scores: "RLHFlow/ArmoRM-Llama3-8B-v0.1" -> "rewards_armorm"."""
    name = os.path.basename(os.path.normpath(model)).split("-")[0].lower()
    name = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return f"rewards_{name or 'model'}"


def _is_list_column(values: Sequence[Any], column: str) -> bool:
    kinds = {isinstance(v, (list, tuple)) for v in values if v is not None}
    if len(kinds) > 1:
        raise ValueError(f"add_rewards: column {column!r} mixes single responses and lists of responses.")
    return kinds == {True}


@versioned
def add_rewards(
    batch: Mapping[str, list],
    model: str = DEFAULT_REWARD_MODEL,
    column: str = "response",
    output_column: str | None = None,
    trust_remote_code: bool = False,
    batch_size: int = 8,
    max_length: int | None = 4096,
    dtype: str | None = None,
    device: str | None = None,
) -> dict[str, list]:
    """Score (instruction, response) with a reward model.

    ```
    {"instruction": ["Name a prime."], "response": ["7"]}
    -> {"instruct_reward": [1.83], "reward_model": ["sfairXC/FsfairX-LLaMA3-RM-v0.1"]}
    {"instruction": ["Name a prime."], "responses": [["7", "9"]]}     # column="responses"
    -> {"rewards_armorm": [[{"score": 0.12}, {"score": -0.40}]]}      # model=".../ArmoRM-Llama3-8B-v0.1"
    ```
    A missing instruction or a None response gives None. `output_column` renames the output
    (default `instruct_reward`, or `rewards_<short model name>` for lists).
    """
    require_columns(batch, {"instruction": "add_magpie_instructions", column: "generate_responses"}, "add_rewards")
    instructions = [q if isinstance(q, str) else "" for q in batch["instruction"]]
    responses = list(batch[column])
    options = dict(trust_remote_code=trust_remote_code, batch_size=batch_size, max_length=max_length, dtype=dtype, device=device)

    if _is_list_column(responses, column):
        pairs = [(i, j) for i, rs in enumerate(responses) if instructions[i].strip() for j in range(len(rs or []))]
        scores = _score_pairs([(instructions[i], responses[i][j]) for i, j in pairs], model, options)
        out: list[list | None] = [[] if instructions[i].strip() else None for i in range(len(responses))]
        for (i, j), score in zip(pairs, scores):
            out[i].append({"score": score})
        name = output_column or rewards_column_name(model)
        return typed_batch({name: out}, {name: SCORES})

    todo = [i for i, r in enumerate(responses) if instructions[i].strip() and isinstance(r, str)]
    rewards: list[float | None] = [None] * len(responses)
    for i, score in zip(todo, _score_pairs([(instructions[i], responses[i]) for i in todo], model, options)):
        rewards[i] = score
    name = output_column or "instruct_reward"
    return typed_batch(
        {name: rewards, "reward_model": [model if r is not None else None for r in rewards]},
        {**REWARD_FEATURES, name: Value("float64")},
    )


def _score_pairs(pairs: Sequence[tuple[str, Any]], model: str, options: Mapping[str, Any]) -> list[float | None]:
    if not pairs:
        return []
    conversations = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a if isinstance(a, str) else ""}]
        for q, a in pairs
    ]
    return score_conversations(conversations, model, **options)


# --- base model answers (URIAL-style in-context alignment) -----------------------------------

URIAL_HEADER = (
    "Below are conversations between a curious user and an AI assistant. The assistant gives "
    "accurate, well-organised and friendly answers, says so when it is not sure, and politely "
    "declines requests that could cause harm.\n\n"
)
USER_HEADER = "# User:\n"
ASSISTANT_HEADER = "# Assistant:\n"
URIAL_EXAMPLES = (
    (
        "Why do we see lightning before we hear thunder?",
        "Light travels about a million times faster than sound. The flash reaches you almost "
        "instantly, while the sound covers roughly one kilometre every three seconds, so the "
        "thunder arrives later. Counting the seconds between the two and dividing by three gives "
        "the storm's distance in kilometres.",
    ),
    (
        "Write a Python function that returns the largest number in a list.",
        "Here is a short version that also handles an empty list:\n\n"
        "def largest(numbers):\n"
        "    if not numbers:\n"
        "        return None\n"
        "    return max(numbers)\n\n"
        "For example, largest([3, 9, 4]) returns 9.",
    ),
    (
        "Give me three ideas for a rainy Sunday at home.",
        "1. Cook something new together, such as fresh pasta or a curry.\n"
        "2. Build a blanket fort and watch a film series.\n"
        "3. Start a jigsaw puzzle or a board game tournament with snacks.",
    ),
)
# The base model continues the pattern; the next example header ends its answer.
URIAL_STOP = ("\n# User:", "# User:", "\n# Assistant:")


def urial_prompt(instruction: str, bos: str | None = None) -> str:
    """Our few-shot prompt that makes a base model answer `instruction` like an assistant."""
    shots = "".join(f"{USER_HEADER}{q}\n\n{ASSISTANT_HEADER}{a}\n\n" for q, a in URIAL_EXAMPLES)
    return f"{bos or ''}{URIAL_HEADER}{shots}{USER_HEADER}{instruction.strip()}\n\n{ASSISTANT_HEADER}"


@versioned
def reward_diff(
    batch: Mapping[str, list],
    model: str = DEFAULT_REWARD_MODEL,
    base_model: str | None = None,
    base_engine: str = "transformers",
    max_tokens: int = 1024,
    column: str = "response",
    trust_remote_code: bool = False,
    batch_size: int = 8,
    max_length: int | None = 4096,
    dtype: str | None = None,
    device: str | None = None,
    base_engine_options: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """Answer each instruction with a base model (greedy, URIAL prompt) and compare rewards.

    ```
    {"instruction": ["Name a prime."], "response": ["7"]}
    -> {"instruct_reward": [1.83], "reward_model": [...], "base_output": ["2 is the smallest prime."],
        "base_reward": [0.91], "reward_difference": [0.92], "base_model": ["google/gemma-3-270m"]}
    ```
    `base_model=None` is the embedded Gemma-3-270M base model. `instruct_reward` is reused when
    the batch has it from the same reward model, else computed.
    """
    require_columns(batch, {"instruction": "add_magpie_instructions", column: "generate_responses"}, "reward_diff")
    options = dict(trust_remote_code=trust_remote_code, batch_size=batch_size, max_length=max_length, dtype=dtype, device=device)
    instructions = [q if isinstance(q, str) else "" for q in batch["instruction"]]
    rows = len(instructions)

    # Reuse rewards this reward model already gave; score the other rows.
    rewards = list(batch["instruct_reward"]) if "instruct_reward" in batch else [None] * rows
    scorers = list(batch["reward_model"]) if "reward_model" in batch else [None] * rows
    missing = [i for i in range(rows) if rewards[i] is None or scorers[i] != model or column != "response"]
    if missing:
        sub = {"instruction": [instructions[i] for i in missing], column: [batch[column][i] for i in missing]}
        scored = add_rewards(sub, model=model, column=column, **options)
        if "instruct_reward" not in scored:
            raise ValueError(f"reward_diff compares one response per row; column {column!r} holds lists.")
        for i, reward, scorer in zip(missing, scored["instruct_reward"], scored["reward_model"]):
            rewards[i], scorers[i] = reward, scorer
    instruct = {"instruct_reward": rewards, "reward_model": scorers}

    if base_model is None:
        base_name, base_path = EMBEDDED_BASE_MODEL, gemma_base_dir()
    else:
        base_name = base_path = base_model
    todo = [i for i in range(rows) if instructions[i].strip()]
    outputs: list[str | None] = [None] * rows
    if todo:
        llm = load_engine(base_path, base_engine, **dict(base_engine_options or {}))
        bos = getattr(llm.tokenizer, "bos_token", None)
        prompts = [urial_prompt(instructions[i], bos) for i in todo]
        sampling = Sampling(temperature=0.0, max_tokens=max_tokens, stop=URIAL_STOP, seed=0)
        for i, (completion,) in zip(todo, llm.generate(prompts, sampling)):
            outputs[i] = completion.text.strip()
    base_rewards: list[float | None] = [None] * rows
    for i, score in zip(todo, _score_pairs([(instructions[i], outputs[i]) for i in todo], model, options)):
        base_rewards[i] = score
    differences = [
        a - b if a is not None and b is not None else None for a, b in zip(instruct["instruct_reward"], base_rewards)
    ]
    return typed_batch(
        {
            **instruct,
            "base_output": outputs,
            "base_reward": base_rewards,
            "reward_difference": differences,
            "base_model": [base_name if o is not None else None for o in outputs],
        },
        {**REWARD_FEATURES, **BASE_FEATURES},
    )
