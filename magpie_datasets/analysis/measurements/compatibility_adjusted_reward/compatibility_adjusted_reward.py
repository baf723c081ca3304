"""Compatibility-Adjusted Reward as an `evaluate` measurement: `magpie_datasets.analysis.compatibility_adjusted_reward`.

    evaluate.load(measurement_path("compatibility_adjusted_reward")).compute(rewards=[0.9, 0.7], losses=[1.2, 1.6])
    # {"rows": 2, "scored": 2, "mean_reward": 0.8, "mean_base_loss": 1.4, "beta": 3.0, "car": 0.153...}
"""

import evaluate

from magpie_datasets.analysis import compatibility_adjusted_reward, measurement_info

_DESCRIPTION = """A response generator's mean reward discounted by the base model's mean loss on its answers,
CAR = r / (1 + beta * L) (Xu et al., arXiv 2411.07133); answers without a reward or a loss are left out."""

_KWARGS_DESCRIPTION = """
Args:
    rewards (list of float): each answer's reward-model score.
    losses (list of float): the base model's mean negative log-likelihood per token of each answer.
    beta (float): the weight of the loss (default 3.0).
Returns:
    rows, scored, mean_reward, mean_base_loss, beta, car.
"""

_CITATION = """@inproceedings{xu2025stronger, title={Stronger Models are Not Always Stronger Teachers for Instruction
Tuning}, author={Xu, Zhangchen and Jiang, Fengqing and Niu, Luyao and Lin, Bill Yuchen and Poovendran, Radha},
booktitle={NAACL}, year={2025}}"""


class CompatibilityAdjustedReward(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"rewards": "float64", "losses": "float64"}, citation=_CITATION)

    def _compute(self, rewards, losses, beta=3.0):
        return compatibility_adjusted_reward(rewards, losses, beta)
