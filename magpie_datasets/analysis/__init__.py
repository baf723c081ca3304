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

from .ablation import decoding_ablation
from .coverage import coverage
from .distributions import label_distribution, length_distribution
from .diversity import topic_diversity
from .verbs import root_verbs

MEASUREMENTS = ("coverage", "topic_diversity", "root_verbs", "decoding_ablation", "label_distribution",
                "length_distribution")

__all__ = ["MEASUREMENTS", "coverage", "decoding_ablation", "label_distribution", "length_distribution",
           "measurement_path", "root_verbs", "topic_diversity"]


def measurement_path(name: str) -> str:
    """Folder of the `evaluate` measurement `name` inside the installed package, for `evaluate.load`.

    >>> Path(measurement_path("topic_diversity")).name
    'topic_diversity'
    """
    if name not in MEASUREMENTS:
        raise ValueError(f"no measurement {name!r}: give one of {MEASUREMENTS}.")
    return str(Path(__file__).resolve().parent / "measurements" / name)
