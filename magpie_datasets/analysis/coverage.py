"""Coverage (paper §3.1, appendix D.1): how much of reference datasets' ground this dataset covers.

    coverage(ds, {"alpaca": alpaca})
    # {"coverage": {"alpaca": 0.62}, "sample_sizes": {"dataset": 10000, "alpaca": 10000},
    #  "projection": "tsne", "embedding_model": "...", "radius": 0.41, "figure": <Figure>}

Definition. The texts of the dataset and of every reference (each sampled, 10,000 rows by
default) are embedded together with the encoder of `min_neighbor_distance` (unit vectors,
squared-L2 distances as in that column). The dataset's *radius* is the median, over its
sampled rows, of the distance to its nearest other row: the spacing of its own points. A
reference text is *covered* when its nearest dataset text is within that radius, and a
reference's coverage is the share of its texts covered: 1.0 means every reference text has a
dataset text as close as the dataset's texts typically are to one another, 0.0 means the
reference lies in regions the dataset never visits. The number is computed in the embedding
space, not on the 2-D map: the map (t-SNE or UMAP of the same vectors) is for the eye.

Coverage depends on the sample sizes (more dataset rows: a smaller radius but closer
neighbours); compare datasets at equal `sample_size`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..stages.similarity import neighbor_stats
from .texts import Data, embed, texts_of

PROJECTIONS = ("tsne", "umap")
DEFAULT_SAMPLE_SIZE = 10_000
_THREADED_TSNE_POINTS = 5_000
_COLORS = ("#C44E52", "#4C72B0", "#55A868", "#8172B2", "#CCB974", "#64B5CD", "#DD8452")


def coverage(
    ds: Data,
    references: Mapping[str, Data | Sequence[str]],
    *,
    column: str = "instruction",
    sample_size: int | None = DEFAULT_SAMPLE_SIZE,
    embedding_model: str | None = None,
    projection: str = "tsne",
    seed: int = 0,
) -> dict[str, Any]:
    """Coverage of each reference by `ds`, and one 2-D map of all of them (see the module docstring).

    `references`: name -> a Dataset (its `column` is read) or a list of texts. `projection`:
    "tsne" (scikit-learn) or "umap" (umap-learn). `sample_size` rows of each are used
    (None: all). Returns `coverage` {name: share}, `sample_sizes` {"dataset" and each name:
    texts used}, `projection`, `embedding_model`, `radius` and `figure` (a matplotlib Figure).
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection={projection!r}: give one of {PROJECTIONS}.")
    if not references:
        raise ValueError("coverage needs at least one reference: pass references={name: dataset or texts}.")
    if "dataset" in references:
        raise ValueError("'dataset' names the measured dataset in the results: give the reference another name.")
    texts = texts_of(ds, column, sample_size, seed)
    if len(texts) < 2:
        raise ValueError(f"coverage needs at least 2 non-empty texts in the dataset's {column!r}, got {len(texts)}.")
    groups = {"dataset": texts}
    for name, reference in references.items():
        groups[name] = texts_of(reference, column, sample_size, seed)
        if not groups[name]:
            raise ValueError(f"reference {name!r} has no non-empty texts in {column!r}.")
    vectors, model = embed([text for group in groups.values() for text in group], embedding_model)
    bounds = np.cumsum([0, *(len(group) for group in groups.values())])
    parts = {name: vectors[start:end] for name, start, end in zip(groups, bounds[:-1], bounds[1:])}
    radius, shares = covered_shares(parts["dataset"], {name: parts[name] for name in references})
    points = project(vectors, projection, seed)
    figure = coverage_map(points, bounds, list(groups), shares, projection, model)
    return {"coverage": shares, "sample_sizes": {name: len(group) for name, group in groups.items()},
            "projection": projection, "embedding_model": model, "radius": radius, "figure": figure}


def covered_shares(dataset: np.ndarray, references: Mapping[str, np.ndarray]) -> tuple[float, dict[str, float]]:
    """The dataset's radius (median squared-L2 distance to its nearest other row) and each reference's
    share of rows whose nearest dataset row is within it. Exact search (FAISS, flat L2).

    >>> a = np.array([[1.0, 0.0], [0.995, 0.0998]], dtype=np.float32)
    >>> covered_shares(a, {"near": a[:1], "far": np.array([[0.0, 1.0]], dtype=np.float32)})[1]
    {'near': 1.0, 'far': 0.0}
    """
    import faiss

    dataset = np.ascontiguousarray(dataset, dtype=np.float32)
    radius = float(np.median(neighbor_stats(dataset).distance))
    index = faiss.IndexFlatL2(dataset.shape[1])
    index.add(dataset)
    shares = {}
    for name, vectors in references.items():
        distance, _ = index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        shares[name] = float(np.mean(distance[:, 0] <= radius))
    return radius, shares


def project(vectors: np.ndarray, projection: str, seed: int) -> np.ndarray:
    """2-D coordinates of `vectors` by t-SNE (scikit-learn) or UMAP (umap-learn), seeded."""
    n = len(vectors)
    if n < 4:
        raise ValueError(f"a {projection} map needs at least 4 texts in all, got {n}.")
    if projection == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = min(30.0, (n - 1) / 3)  # scikit-learn wants perplexity < n
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        # a small map's iterations are too short for OpenMP threads to pay: on a busy machine
        # they spin-wait far longer than one thread computes
        with threadpool_limits(1 if n < _THREADED_TSNE_POINTS else None):
            return tsne.fit_transform(vectors)
    import umap

    return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", random_state=seed).fit_transform(
        vectors
    )


def coverage_map(points: np.ndarray, bounds: np.ndarray, names: list[str], shares: Mapping[str, float],
                 projection: str, model: str):
    """A scatter of the projected texts, one colour per dataset; the legend gives each reference's coverage."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 6))
    figure.subplots_adjust(left=0.03, right=0.97, top=0.92, bottom=0.03)
    ax = figure.add_subplot()
    # the references first, so the measured dataset is drawn on top of the area it covers
    order = [*range(1, len(names)), 0]
    for i in order:
        label = "this dataset" if i == 0 else f"{names[i]} (coverage {100 * shares[names[i]]:.0f}%)"
        part = points[bounds[i] : bounds[i + 1]]
        ax.scatter(part[:, 0], part[:, 1], s=4, alpha=0.5, color=_COLORS[i % len(_COLORS)], label=label,
                   linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8, markerscale=3)
    ax.set_title(f"{'t-SNE' if projection == 'tsne' else 'UMAP'} of {model.rsplit('/', 1)[-1]} embeddings",
                 fontsize=10)
    return figure
