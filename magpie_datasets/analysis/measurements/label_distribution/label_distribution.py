"""Label distribution as an `evaluate` measurement: `magpie_datasets.analysis.label_distribution` on labels.

    evaluate.load(measurement_path("label_distribution")).compute(data=["good", "poor", "good"], column="input_quality")
    # {"column": "input_quality", "counts": {"good": 2, "poor": 1}, "shares": {...}, "labelled": 3, "unlabelled": 0}
"""

import evaluate

from magpie_datasets.analysis import label_distribution, measurement_info

_DESCRIPTION = """Rows per label of a string column, as the dataset cards of magpie_datasets count them: the given
order first, then the other labels by count; null and empty values are counted apart."""

_KWARGS_DESCRIPTION = """
Args:
    data (list of str): the labels.
    column (str): the column's name, echoed in the result.
    order (list of str or None): labels to put first.
Returns:
    column, counts (dict), shares (dict), labelled (int), unlabelled (int).
"""

_CITATION = ""


class LabelDistribution(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"data": "string"}, citation=_CITATION)

    def _compute(self, data, column="data", order=None):
        return label_distribution(data, column, order=order)
