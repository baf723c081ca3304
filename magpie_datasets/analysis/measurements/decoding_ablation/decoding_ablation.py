"""Decoding ablation as an `evaluate` measurement: `magpie_datasets.analysis.decoding_ablation` on columns.

    evaluate.load(measurement_path("decoding_ablation")).compute(
        temperature=[1.0, 1.0], top_p=[1.0, 1.0], input_quality=["good", "poor"], difficulty=["easy", "hard"],
        min_neighbor_distance=[0.3, 0.5])
    # {"configurations": [{"temperature": 1.0, "top_p": 1.0, "rows": 2, "mean_quality": 3.0, ...}]}

`temperature` and `top_p` are the measurement's inputs; the three other columns are optional
keyword arguments, one value per row (leave out a column the dataset lacks).
"""

import evaluate

from magpie_datasets.analysis import measurement_info
from magpie_datasets.analysis.ablation import ablation

_DESCRIPTION = """Per step-1 decoding setting (temperature, top-p): row count, mean input quality (1 = very poor ...
5 = excellent), mean difficulty (1 = very easy ... 5 = very hard) and mean min_neighbor_distance (Magpie paper
fig. 11)."""

_KWARGS_DESCRIPTION = """
Args:
    temperature, top_p (list of float): gen_input_configs.temperature and .top_p per row.
    input_quality, difficulty (list of str, optional): the labels per row (None: the column is absent).
    min_neighbor_distance (list of float, optional): per row (None: the column is absent).
Returns:
    configurations (list of {temperature, top_p, rows, mean_quality, mean_difficulty, mean_min_neighbor_distance}).
"""


class DecodingAblation(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"temperature": "float64", "top_p": "float64"})

    def _compute(self, temperature, top_p, input_quality=None, difficulty=None, min_neighbor_distance=None):
        return ablation(temperature, top_p, input_quality, difficulty, min_neighbor_distance)
