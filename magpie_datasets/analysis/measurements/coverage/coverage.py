"""Coverage as an `evaluate` measurement: `magpie_datasets.analysis.coverage` on lists of texts.

    evaluate.load(measurement_path("coverage")).compute(data=texts, reference_sets={"alpaca": alpaca_texts})
    # {"coverage": {"alpaca": 0.62}, "sample_sizes": {...}, "projection": "tsne", ..., "figure": <Figure>}

The references go in `reference_sets` (name -> list of texts): `evaluate` reserves `references`.
"""

import evaluate

from magpie_datasets.analysis import coverage, measurement_info

_DESCRIPTION = """Share of each reference's texts whose nearest text of this dataset, in a joint sentence
embedding, is within the dataset's radius (the median distance from its texts to their nearest other text),
and a 2-D map (t-SNE or UMAP) of the dataset against the references (Magpie paper §3.1, appendix D.1)."""

_KWARGS_DESCRIPTION = """
Args:
    data (list of str): the dataset's texts.
    reference_sets (dict of str to list of str): the references, by name.
    sample_size (int or None): texts sampled from each (default 10,000; None: all).
    embedding_model (str or None): a sentence-transformers folder or cached Hub id.
    projection (str): "tsne" or "umap".
    seed (int): the samples' and the projection's seed.
Returns:
    coverage (dict name -> float), sample_sizes (dict), projection, embedding_model, radius (float),
    figure (matplotlib Figure).
"""


class Coverage(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"data": "string"})

    def _compute(self, data, reference_sets=None, sample_size=10_000, embedding_model=None, projection="tsne",
                 seed=0):
        if not reference_sets:
            raise ValueError("coverage needs reference_sets={name: list of texts}.")
        return coverage(data, reference_sets, sample_size=sample_size, embedding_model=embedding_model,
                        projection=projection, seed=seed)
