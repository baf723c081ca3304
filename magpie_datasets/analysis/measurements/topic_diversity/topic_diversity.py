"""Topic diversity as an `evaluate` measurement: `magpie_datasets.analysis.topic_diversity` on a list of texts.

    evaluate.load(measurement_path("topic_diversity")).compute(data=["Sort a list", "Bake bread", "Sort a list"])
    # {"topic_diversity": 0.6..., "sample_size": 3, "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}
"""

import evaluate

from magpie_datasets.analysis import measurement_info, topic_diversity

_DESCRIPTION = """Mean pairwise cosine distance of sentence embeddings of the texts (UltraChat's topic
diversity, Magpie paper table 6), on a uniform sample. Higher is more diverse; duplicated texts lower it."""

_KWARGS_DESCRIPTION = """
Args:
    data (list of str): the texts (e.g. a dataset's instructions).
    sample_size (int or None): texts sampled (default 10,000; None: all).
    embedding_model (str or None): a sentence-transformers folder or cached Hub id (default: the
        model of magpie_datasets' min_neighbor_distance).
    seed (int): the sample's seed.
Returns:
    topic_diversity (float), sample_size (int), embedding_model (str).
"""


class TopicDiversity(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"data": "string"})

    def _compute(self, data, sample_size=10_000, embedding_model=None, seed=0):
        return topic_diversity(data, sample_size=sample_size, embedding_model=embedding_model, seed=seed)
