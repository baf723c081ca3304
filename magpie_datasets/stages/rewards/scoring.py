"""Scoring conversations with a reward model, batch-independently, and naming list-score columns.

    score_conversations([[{"role": "user", "content": "Name a prime."},
                          {"role": "assistant", "content": "7"}]], "sfairXC/FsfairX-LLaMA3-RM-v0.1")
    # -> [1.83]
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...templates import chat_prompt
from .loading import RewardModelError, load_reward_model, reward_options


def _scalar(output, model: str) -> list[float]:
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
    engine_options: Mapping[str, Any] | None = None,
) -> list[float]:
    """One reward per conversation ([{role, content}, ...]), rendered through the model's chat template.

    `engine_options` are the reward model's settings (`loading.REWARD_OPTIONS`). Scores do not
    depend on batching: rows are right-padded with the model's pad id (causal attention never
    sees the padding), and a row is scored alone when the model has no pad id or the row itself
    ends with it.
    """
    import torch

    options = reward_options(engine_options)
    batch_size, max_length = options["batch_size"], options["max_length"]
    reward_model, tokenizer, _ = load_reward_model(model, options)
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


def score_pairs(pairs: Sequence[tuple[str, Any]], model: str, engine_options: Mapping[str, Any]) -> list[float]:
    """One reward per (instruction, response) pair, the response None or not text counting as ""."""
    if not pairs:
        return []
    conversations = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a if isinstance(a, str) else ""}]
        for q, a in pairs
    ]
    return score_conversations(conversations, model, engine_options)


def rewards_column_name(model: str) -> str:
    """`rewards_<short name>`, the column of list scores.

    >>> rewards_column_name("RLHFlow/ArmoRM-Llama3-8B-v0.1")
    'rewards_armorm'
    """
    name = os.path.basename(os.path.normpath(model)).split("-")[0].lower()
    name = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return f"rewards_{name or 'model'}"
