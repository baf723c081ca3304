"""Topic diversity (UltraChat's metric, paper table 6): mean pairwise cosine distance of embeddings.

    topic_diversity(ds)  # {"topic_diversity": 0.87, "sample_size": 10000, "embedding_model": "..."}

For unit vectors v_1..v_n the mean cosine similarity over the n(n-1) ordered pairs i != j is
(|sum v|^2 - n) / (n(n-1)), so the mean distance 1 - that is exact and takes O(n d) time,
never an n x n matrix. 0 means every text says the same thing; unrelated texts give about
1 (the embeddings of English sentences are rarely orthogonal, so real data scores below 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .texts import Data, embed, texts_of

DEFAULT_SAMPLE_SIZE = 10_000


def topic_diversity(
    ds: Data,
    *,
    column: str = "instruction",
    sample_size: int | None = DEFAULT_SAMPLE_SIZE,
    embedding_model: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean pairwise cosine distance of the embedded `column` on a sample of `sample_size` rows.

    ```
    Dataset{"instruction": ["Sort a list in Python", "Bake bread at home", "Sort a list in Python"]}
    -> {"topic_diversity": 0.6..., "sample_size": 3, "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}
    ```
    `ds`: a Dataset or a list of texts; empty and null texts are left out, and `sample_size`
    counts the texts measured. `embedding_model`: as `min_neighbor_distance`'s `model`.
    """
    texts = texts_of(ds, column, sample_size, seed)
    if len(texts) < 2:
        raise ValueError(f"topic_diversity needs at least 2 non-empty texts in {column!r}, got {len(texts)}.")
    vectors, model = embed(texts, embedding_model)
    return {"topic_diversity": mean_pairwise_cosine_distance(vectors), "sample_size": len(texts),
            "embedding_model": model}


def mean_pairwise_cosine_distance(vectors: np.ndarray) -> float:
    """1 - mean cosine similarity over pairs of distinct rows, for unit-normalised rows.

    >>> mean_pairwise_cosine_distance(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    0.666...
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    total = vectors.sum(axis=0)
    mean_similarity = (total @ total - np.einsum("ij,ij->", vectors, vectors)) / (n * (n - 1))
    return float(1.0 - mean_similarity)
