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

from typing import Any, Mapping

from ..engines.models import ModelSpec
from ..schema import PAIR_FEATURES, SAMPLE_FEATURES, batch_size_of, typed_batch
from ..version import versioned
from .answering import answer_instructions
from .table import require_reads


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

    `model=None` answers with the row's `model` (the one that wrote the instruction), else the
    embedded default, as `generate_responses` does; `chat_template_kwargs` go to its chat template.

    ```
    {"instruction": ["Name a prime."]}
    -> {"responses": [["Seven.", "2 is prime.", ...]],          # k strings; [] without an instruction
        "response_issues": [[None, "max_tokens", ...]],         # per response: None, "empty", "max_tokens", "template_markup"
        "gen_response_configs": [{prompt, temperature, top_p, repetition_penalty, max_tokens,
                                  stop_tokens, output_generator, model_source, engine, dtype, seed,
                                  chat_template_kwargs, reasoning_markers}]}
    ```
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
    `{score}` (or a number) per response, in the same order; `rewards_column=None` picks the
    only `rewards_*` column (the authors' is `rewards_armorm`).

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
