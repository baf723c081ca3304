"""Reward-model scores of responses, and the reward difference to a base model (paper table 5, τ2).

    ds = ds.map(magpie.add_rewards, batched=True, fn_kwargs={"model": "sfairXC/FsfairX-LLaMA3-RM-v0.1"})
    ds = ds.map(magpie.reward_diff, batched=True)

- `loading`: a reward model's settings, the checks that refuse a model that is not one, `load_reward_model`;
- `scoring`: `score_conversations`, batch-independent scores, and `rewards_column_name`;
- `urial`: the few-shot prompt a base model answers from, and its stops;
- `stage`: the `add_rewards` and `reward_diff` stages.

The output `Features` are declared in `stage`, beside the stages' `STAGES` entries.
"""

from ...engines.embedded import EMBEDDED_BASE_MODEL
from .loading import (
    DEFAULT_REWARD_MODEL,
    REWARD_OPTIONS,
    RewardModel,
    RewardModelError,
    load_reward_model,
)
from .scoring import rewards_column_name, score_conversations
from .stage import BASE_CONFIGS, BASE_FEATURES, REWARD_CONFIGS, REWARD_FEATURES, SCORES, add_rewards, reward_diff
from .urial import URIAL_STOP, urial_prompt

__all__ = [
    "BASE_CONFIGS",
    "BASE_FEATURES",
    "DEFAULT_REWARD_MODEL",
    "EMBEDDED_BASE_MODEL",
    "REWARD_CONFIGS",
    "REWARD_FEATURES",
    "REWARD_OPTIONS",
    "SCORES",
    "URIAL_STOP",
    "RewardModel",
    "RewardModelError",
    "add_rewards",
    "load_reward_model",
    "reward_diff",
    "rewards_column_name",
    "score_conversations",
    "urial_prompt",
]
