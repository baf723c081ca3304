"""The paper's analyses of a dataset (paper §3, appendix D), as functions and as `evaluate` measurements.

    from magpie_datasets import analysis
    analysis.topic_diversity(ds)          # {"topic_diversity": 0.87, "sample_size": 10000, ...}
    analysis.coverage(ds, {"alpaca": alpaca})
    analysis.root_verbs(ds)               # top root verbs and their direct objects, with a sunburst
    analysis.decoding_ablation(ds)        # quality / difficulty / distance per (temperature, top_p)
    analysis.label_distribution(ds, "task_category"), analysis.length_distribution(ds, "response_length")

    import evaluate
    evaluate.load(analysis.measurement_path("topic_diversity")).compute(data=ds["instruction"])

Each measurement module (`measurements/<name>/<name>.py`, shipped in the package) calls the
function of the same name, so both give the same numbers. Heavy libraries (sentence-transformers,
FAISS, scikit-learn, umap-learn, spaCy) are imported only when a measurement runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..extras import install_line, installed
from .ablation import decoding_ablation
from .coverage import PROJECTIONS, coverage
from .compatibility import compatibility_adjusted_reward
from .distributions import label_distribution, length_distribution
from .diversity import topic_diversity
from .verbs import PIPELINES, root_verbs

MEASUREMENTS = ("coverage", "topic_diversity", "root_verbs", "decoding_ablation", "label_distribution",
                "length_distribution", "compatibility_adjusted_reward")

__all__ = ["MEASUREMENTS", "compatibility_adjusted_reward", "coverage", "unavailable", "decoding_ablation", "label_distribution", "length_distribution",
           "measurement_info", "measurement_path", "root_verbs", "topic_diversity"]

MAGPIE_CITATION = """@article{xu2024magpie, title={Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned
LLMs with Nothing}, author={Xu, Zhangchen and others}, journal={arXiv preprint arXiv:2406.08464}, year={2024}}"""


def measurement_path(name: str) -> str:
    """Folder of the `evaluate` measurement `name` inside the installed package, for `evaluate.load`.

    >>> Path(measurement_path("topic_diversity")).name
    'topic_diversity'
    """
    if name not in MEASUREMENTS:
        raise ValueError(f"no measurement {name!r}: give one of {MEASUREMENTS}.")
    return str(Path(__file__).resolve().parent / "measurements" / name)


def measurement_info(description: str, inputs: str, features: Mapping[str, str], citation: str = MAGPIE_CITATION) -> Any:
    """The `evaluate.MeasurementInfo` of one of our measurement modules: its texts, and its input
    columns as `{name: dtype of a datasets.Value}`; the citation defaults to the Magpie paper.

    >>> measurement_info("Mean length.", "data: lengths", {"data": "float64"}).features
    {'data': Value('float64')}
    """
    import datasets
    import evaluate

    return evaluate.MeasurementInfo(
        module_type="measurement", description=description, citation=citation, inputs_description=inputs,
        features=datasets.Features({name: datasets.Value(dtype) for name, dtype in features.items()}),
    )


def unavailable(*, references: bool = False, projection: str = "tsne") -> dict[str, str]:
    """The analyses this install cannot run, each with why and the line that installs what it needs.

    The card leaves these out and says so; the preflight reports them before a build starts.
    `references`: whether a coverage map is wanted; `projection`: its "tsne" or "umap".

    ```
    unavailable(references=True, projection="umap")   # on an install without the analysis extra
    -> {"root_verbs": "spaCy and its small English pipeline are not installed (pip install ...)",
        "coverage": "umap-learn is not installed (...)"}
    ```
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection={projection!r}: give one of {PROJECTIONS}.")
    missing = {}
    if not installed("spacy") or not any(installed(name) for name in PIPELINES):
        missing["root_verbs"] = f"spaCy and its small English pipeline are not installed ({install_line('analysis')})"
    projector = {"tsne": ("sklearn", "scikit-learn"), "umap": ("umap", "umap-learn")}[projection]
    if references and not installed(projector[0]):
        missing["coverage"] = f"{projector[1]} is not installed ({install_line('analysis')})"
    return missing
