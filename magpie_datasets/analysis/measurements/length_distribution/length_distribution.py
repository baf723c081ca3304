"""Length distribution as an `evaluate` measurement: `magpie_datasets.analysis.length_distribution` on numbers.

    evaluate.load(measurement_path("length_distribution")).compute(data=[1, 2, 6], column="response_length")
    # {"column": "response_length", "count": 3, "mean": 3.0, "median": 2.0, "min": 1.0, "max": 6.0, "histogram": ...}
"""

import evaluate

from magpie_datasets.analysis import length_distribution, measurement_info

_DESCRIPTION = """Count, mean, median, min, max and histogram of a numeric column (e.g. instruction_length), as the
dataset cards of magpie_datasets compute them; nulls and NaN are dropped."""

_KWARGS_DESCRIPTION = """
Args:
    data (list of float): the values.
    column (str): the column's name, echoed in the result.
Returns:
    column, count, mean, median, min, max, histogram ({bin_edges, counts}).
"""

_CITATION = ""


class LengthDistribution(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"data": "float64"}, citation=_CITATION)

    def _compute(self, data, column="data"):
        return length_distribution(data, column)
