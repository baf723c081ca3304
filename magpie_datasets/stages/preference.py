"""Preference pairs (MAGPIE-DPO, paper §2): k sampled responses, scored, best vs worst.

    ds = ds.map(magpie.add_response_samples, batched=True)              # responses: k=5 at T=0.8
    ds = ds.map(magpie.add_rewards, batched=True, fn_kwargs={...})      # rewards_<model>: [{score}] * k
    ds = ds.map(magpie.to_preference_pairs, batched=True)               # chosen / rejected / prompt
    dpo = ds.map(magpie.to_preference, batched=True)                    # TRL DPOTrainer's shape

`to_preference_pairs` writes the authors' shape: `chosen`/`rejected` are whole conversations
(user turn + assistant turn). `formats.to_preference` turns them into TRL's
prompt/continuation split and drops the rows marked in `pair_issue`.
"""

from __future__ import annotations

from datasets import Features, Sequence, Value
from ..schema import GEN_RESPONSE_CONFIGS, MESSAGES

from typing import Any, Mapping

from ..engines.models import ModelSpec
from ..schema import batch_size_of, typed_batch
from ..version import versioned
from .answering import answer_instructions
from .columns import require_reads
from .entry import RESPONDER, Stage


# the columns these stages write (MAGPIE-DPO)
SAMPLE_FEATURES = Features(
    {
        "responses": Sequence(Value("string")),
        "response_issues": Sequence(Value("string")),
        "gen_response_configs": GEN_RESPONSE_CONFIGS,
    }
)

PAIR_FEATURES = Features(
    {
        "prompt": MESSAGES,
        "chosen": MESSAGES,
        "rejected": MESSAGES,
        "chosen_score": Value("float64"),
        "rejected_score": Value("float64"),
        "pair_issue": Value("string"),
    }
)


@versioned
def add_response_samples(
    batch: Mapping[str, list],
    *,
    k: int = 5,
    model: str | None = None,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    temperature: float = 0.8,
    top_p: float = 1.0,
    max_tokens: int = 4096,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, list]:
    """k sampled answers per `instruction` through the model's chat template (paper: k=5, T=0.8).

    Input: a batch with `instruction` (and, optionally, `uuid` and the `model` that wrote it);
    Output: `responses`, `response_issues` and `gen_response_configs`. The first step of the
    preference pairs of the MAGPIE-DPO sets (paper §2): score `responses` with
    `add_rewards(column="responses")`, then pair with `to_preference_pairs`.

    ```
    {"instruction": ["Name a prime."]}
    -> {"responses": [["Seven.", "2 is prime.", ...]],          # k strings; [] without an instruction
        "response_issues": [[None, "max_tokens", ...]],         # per response: None, "empty", "max_tokens", "template_markup"
        "gen_response_configs": [{prompt, temperature, top_p, repetition_penalty, max_tokens,
                                  stop_tokens, output_generator, model_source, engine, dtype, seed,
                                  chat_template_kwargs, reasoning_markers}]}
    ```

    Args:
        k (`int`, *optional*, defaults to `5`): how many responses are sampled per instruction, the
            length of each row's `responses` and `response_issues` (an empty instruction gets []). 5 is
            the paper's (and the release's DPO sets', `builders/magpie-pro-dpo.yaml`). Must be an int
            >= 1 (else `ValueError`). Not recorded in `gen_response_configs`.
        model (`str`, *optional*, defaults to `None`): the responder. None = each row's own `model`
            column (the model that wrote the instruction), or the embedded SmolLM2-135M-Instruct where
            the batch has no `model` column, as `generate_responses` does; otherwise a local directory
            or a Hub id (offline: in the local cache). The release's DPO sets answer with
            Llama-3-8B-Instruct. Recorded in `gen_response_configs.output_generator` and `model_source`.
        engine (`str`, *optional*, defaults to `"transformers"`): the engine that runs the model,
            "transformers" or "vllm" (which cannot run inside `num_proc` workers). Recorded in
            `gen_response_configs.engine`.
        engine_options (`Mapping[str, Any]`, *optional*, defaults to `None`): the engine's load options
            (None = none): transformers takes `dtype`, `device`, `batch_size`, `trust_remote_code`,
            `attn_implementation`; vLLM any `vllm.LLM` argument (`tensor_parallel_size`,
            `gpu_memory_utilization`, ...). The compute dtype is recorded in `gen_response_configs.dtype`.
        temperature (`float`, *optional*, defaults to `0.8`): the sampling temperature of every
            response; 0.8 is the paper's for preference data (paper §2). 0 is greedy, which gives k
            equal texts, so `to_preference_pairs` then marks the row "single_distinct_response".
            Recorded in `gen_response_configs.temperature`.
        top_p (`float`, *optional*, defaults to `1.0`): nucleus sampling's probability mass; 1.0 = no
            cut, as in the release. Recorded in `gen_response_configs.top_p`.
        max_tokens (`int`, *optional*, defaults to `4096`): the most new tokens of one response (the
            paper's step-2 cap); a response cut there gets "max_tokens" in `response_issues`. Recorded
            in `gen_response_configs.max_tokens`.
        repetition_penalty (`float`, *optional*, defaults to `1.0`): penalty on tokens already in the
            prompt or response (the stop / end-of-turn tokens are spared); 1.0 = off, the release's
            step-2 setting. Recorded in `gen_response_configs.repetition_penalty`.
        seed (`int`, *optional*, defaults to `0`): the run's seed; each row's samples are seeded by a
            hash of it and the row's `uuid` (its instruction text without one), so a row gets the same
            responses whatever the batching, `num_proc` or a resume. Recorded in
            `gen_response_configs.seed`.
        chat_template_kwargs (`Mapping[str, Any]`, *optional*, defaults to `None`): extra keyword
            arguments for every rendering of the responder's chat template (e.g. Qwen3's
            `{"enable_thinking": False}`); None = none. Recorded in
            `gen_response_configs.chat_template_kwargs` as a JSON string with sorted keys; the
            reasoning markers the template then names go to `gen_response_configs.reasoning_markers`.
    """
    batch = require_reads(batch, "add_response_samples")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"add_response_samples needs k >= 1 responses per instruction, got {k!r}")
    responses, issues, configs = answer_instructions(
        batch, spec=ModelSpec(model, engine, engine_options or {}), n=k, temperature=temperature,
        top_p=top_p, repetition_penalty=repetition_penalty, max_tokens=max_tokens, seed=seed,
        chat_template_kwargs=chat_template_kwargs,
    )
    return typed_batch(
        {"responses": responses, "response_issues": issues, "gen_response_configs": configs}, SAMPLE_FEATURES
    )


def rewards_column_of(columns, rewards_column: str | None = None) -> str:
    """The rewards column to pair on: `rewards_column`, or the one `rewards_*` column present."""
    if rewards_column is not None:
        if rewards_column not in columns:
            raise ValueError(
                f"to_preference_pairs: no column {rewards_column!r} (columns: {sorted(columns)}). "
                "Score the responses with add_rewards first, or name the rewards column you have."
            )
        return rewards_column
    found = sorted(c for c in columns if c.startswith("rewards_"))
    if len(found) != 1:
        raise ValueError(
            f"to_preference_pairs needs one rewards column to pair on; found {found or 'none'} among "
            f"{sorted(columns)}. Score `responses` with add_rewards (e.g. -> 'rewards_armorm'), or pass "
            "rewards_column=... to pick one."
        )
    return found[0]


def _score(value: Any, row: int, column: str) -> float:
    score = value.get("score") if isinstance(value, Mapping) else value
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        raise ValueError(
            f"to_preference_pairs: row {row} of this batch has {value!r} in {column!r}; expected "
            "{'score': number} (as add_rewards writes) or a number per response."
        )
    return float(score)


@versioned
def to_preference_pairs(batch: Mapping[str, list], *, rewards_column: str | None = None) -> dict[str, list]:
    """Chosen = the highest-scored response, rejected = the lowest, as whole conversations.

    Input: `instruction`, `responses` (k strings), and a rewards column holding one
    `{score}` (or a number) per response, in the same order; Output: `prompt`, `chosen`,
    `rejected`, `chosen_score`, `rejected_score` and `pair_issue`.

    Args:
        rewards_column (`str`, *optional*, defaults to `None`): the column whose scores rank the
            responses: one `{score}` (or a number) per entry of `responses`, in the same order, as
            `add_rewards(column="responses")` writes it (the paper's ArmoRM-Llama3-8B-v0.1 gives
            `rewards_armorm`, the published DPO sets' column). None = the batch's only `rewards_*`
            column (none or several is a `ValueError` naming them). A score count that differs from
            the response count is a `ValueError`. Only distinct non-empty responses compete (a repeated
            text keeps its first score); the chosen and rejected scores are copied to `chosen_score` /
            `rejected_score`.

    >>> pairs = to_preference_pairs({"instruction": ["Sky?"], "responses": [["Blue.", "Green."]],
    ...                              "rewards_armorm": [[{"score": 0.9}, {"score": -0.3}]]})
    >>> pairs["chosen"][0][1], pairs["rejected_score"], pairs["pair_issue"]
    ({'role': 'assistant', 'content': 'Blue.'}, [-0.3], [None])

    ```
    {"instruction": ["Sky?"], "responses": [["Blue.", "Green.", "Blue!"]],
     "rewards_armorm": [[{"score": 0.9}, {"score": -0.3}, {"score": 0.5}]]}
    -> {"prompt":   [[{"role": "user", "content": "Sky?"}]],
        "chosen":   [[{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}]],
        "rejected": [[{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Green."}]],
        "chosen_score": [0.9], "rejected_score": [-0.3], "pair_issue": [None]}
    ```

    Rows that cannot be paired are kept with `chosen`/`rejected`/scores None and `pair_issue`
    saying why: "no_responses", "single_distinct_response" (all k texts are the same) or
    "tie" (the distinct responses all scored the same). `prompt` is the user turn as a message
    list (TRL's conversational prompt). For `trl.DPOTrainer` use `formats.to_preference`, which
    moves the shared user turn out of chosen/rejected and drops rows with a `pair_issue`.
    """
    batch = require_reads(batch, "to_preference_pairs", ("instruction", "responses"))
    column = rewards_column_of(batch.keys(), rewards_column)
    out: dict[str, list] = {name: [] for name in PAIR_FEATURES}
    for row in range(batch_size_of(batch)):
        responses = list(batch["responses"][row] or [])
        rewards = list(batch[column][row] or [])
        if len(rewards) != len(responses):
            raise ValueError(
                f"to_preference_pairs: row {row} of this batch has {len(responses)} responses but "
                f"{len(rewards)} scores in {column!r}; score the same `responses` column again."
            )
        user = {"role": "user", "content": batch["instruction"][row]}
        best: dict[str, float] = {}  # distinct text -> its score (a repeated text keeps its first score)
        for text, reward in zip(responses, rewards):
            if text and text.strip():
                best.setdefault(text, _score(reward, row, column))
        issue = None
        if not best:
            issue = "no_responses"
        elif len(best) == 1:
            issue = "single_distinct_response"
        else:
            chosen = max(best, key=best.__getitem__)  # first of equal maxima, in response order
            rejected = min(best, key=best.__getitem__)
            if best[chosen] == best[rejected]:
                issue = "tie"
        out["prompt"].append([user])
        out["pair_issue"].append(issue)
        for side, text in (("chosen", None if issue else chosen), ("rejected", None if issue else rejected)):
            out[side].append(None if text is None else [user, {"role": "assistant", "content": text}])
            out[f"{side}_score"].append(None if text is None else best[text])
    return typed_batch(out, PAIR_FEATURES)


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("add_response_samples", add_response_samples, "map",
          "k sampled answers per instruction, for preference pairs",
          reads=("instruction",), writes=SAMPLE_FEATURES, models=(RESPONDER,)),
    Stage("to_preference_pairs", to_preference_pairs, "map",
          "chosen = best-scored response, rejected = worst", reads=("instruction", "responses", "rewards_*"),
          writes=PAIR_FEATURES),
)
