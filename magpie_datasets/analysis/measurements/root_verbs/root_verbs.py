"""Root verbs and direct objects as an `evaluate` measurement: `magpie_datasets.analysis.root_verbs` on texts.

    evaluate.load(measurement_path("root_verbs")).compute(data=["Write a poem about the sea"])
    # {"root_verbs": [{"verb": "write", "count": 1, "objects": [{"noun": "poem", "count": 1}]}], ...}
"""

import evaluate

from magpie_datasets.analysis import measurement_info, root_verbs

_DESCRIPTION = """The commonest root verbs of the texts' first sentences and, for each, its commonest direct-object
nouns, parsed with spaCy's English pipeline, with a two-ring sunburst (Magpie paper fig. 10, after Self-Instruct)."""

_KWARGS_DESCRIPTION = """
Args:
    data (list of str): the texts.
    top_verbs (int): verbs kept (default 20).
    top_objects (int): objects kept per verb (default 5).
    sample_size (int or None): texts sampled (default None: all).
    seed (int): the sample's seed.
Returns:
    root_verbs (list of {verb, count, objects: [{noun, count}]}), parsed (int), with_root_verb (int),
    parser (str), figure (matplotlib Figure).
"""

_CITATION = """@article{wang2022selfinstruct, title={Self-Instruct: Aligning Language Models with Self-Generated
Instructions}, author={Wang, Yizhong and others}, journal={arXiv preprint arXiv:2212.10560}, year={2022}}"""


class RootVerbs(evaluate.Measurement):
    def _info(self):
        return measurement_info(_DESCRIPTION, _KWARGS_DESCRIPTION, {"data": "string"}, citation=_CITATION)

    def _compute(self, data, top_verbs=20, top_objects=5, sample_size=None, seed=0):
        return root_verbs(data, top_verbs=top_verbs, top_objects=top_objects, sample_size=sample_size, seed=seed)
