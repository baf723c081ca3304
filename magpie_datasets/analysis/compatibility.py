"""Compatibility-Adjusted Reward (Xu et al., arXiv 2411.07133): a response generator's mean reward
discounted by the base model's loss on its answers, `CAR = r / (1 + beta * L)`.

    compatibility_adjusted_reward(rewards=[0.9, 0.7], losses=[1.2, 1.6], beta=3.0)
    -> {"rows": 2, "scored": 2, "mean_reward": 0.8, "mean_base_loss": 1.4, "beta": 3.0, "car": 0.153...}

`runners.responders.compare_responders` computes the rewards and losses (`add_rewards`, the base
model's mean negative log-likelihood per answer token) for several candidates and ranks them by it.
The paper's beta was not in the sources this project could read; 3.0 is our default.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_BETA = 3.0


def car(mean_reward: float, mean_loss: float, beta: float = DEFAULT_BETA) -> float:
    """`mean_reward / (1 + beta * mean_loss)`.

    >>> car(2.0, 0.5, beta=2.0), car(2.0, 1.0, beta=2.0)  # same reward: the lower loss wins
    (1.0, 0.6666666666666666)
    """
    return mean_reward / (1.0 + beta * mean_loss)


def compatibility_adjusted_reward(
    rewards: Sequence[float | None], losses: Sequence[float | None], beta: float = DEFAULT_BETA
) -> dict:
    """Mean reward, mean base-model loss and CAR over the answers that have both (None: not scored).

    >>> result = compatibility_adjusted_reward([2.0, 1.0, None], [0.5, 0.5, 0.1], beta=2.0)
    >>> result["scored"], result["mean_reward"], result["mean_base_loss"], result["car"]
    (2, 1.5, 0.5, 0.75)
    """
    if len(rewards) != len(losses):
        raise ValueError(f"compatibility_adjusted_reward needs one loss per reward, got {len(rewards)} and {len(losses)}")
    pairs = [(float(r), float(loss)) for r, loss in zip(rewards, losses) if r is not None and loss is not None]
    mean_reward = sum(r for r, _ in pairs) / len(pairs) if pairs else None
    mean_loss = sum(loss for _, loss in pairs) / len(pairs) if pairs else None
    return {
        "rows": len(rewards),
        "scored": len(pairs),
        "mean_reward": mean_reward,
        "mean_base_loss": mean_loss,
        "beta": beta,
        "car": None if mean_reward is None or mean_loss is None else car(mean_reward, mean_loss, beta),
    }
