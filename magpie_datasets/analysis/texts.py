"""What every measurement reads: a column of a Dataset (or a plain list), sampled, embedded.

    >>> from datasets import Dataset
    >>> column_values(Dataset.from_dict({"instruction": ["a", "b", "c"]}), "instruction", sample_size=2, seed=0)
    ['b', 'c']
    >>> column_values(["x", None, "y"], "instruction")
    ['x', None, 'y']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
from datasets import Dataset

Data: TypeAlias = Dataset | pa.Table | pa.Array | pa.ChunkedArray | Sequence[Any]


def sample_rows(n: int, sample_size: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices of a uniform sample without replacement, or None for all rows.

    >>> sample_rows(5, None, 0) is None, sample_rows(5, 9, 0) is None, sample_rows(5, 2, 0).tolist()
    (True, True, [3, 4])
    """
    if sample_size is not None and sample_size < 1:
        raise ValueError(f"sample_size={sample_size}: give a positive number of rows, or None for all rows.")
    if sample_size is None or sample_size >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=sample_size, replace=False))


def column_array(data: Data, column: str, sample_size: int | None = None, seed: int = 0) -> pa.Array:
    """`column` of a Dataset or pyarrow Table (or the values themselves) as one pyarrow Array, sampled."""
    if isinstance(data, Dataset):
        if column not in data.column_names:
            raise ValueError(f"the dataset has no column {column!r} (it has {data.column_names}); "
                             f"pass column= naming the column to measure.")
        rows = sample_rows(len(data), sample_size, seed)
        part = data.select_columns([column])
        part = part if rows is None else part.select(rows)
        values = part.with_format("arrow")[:][column]  # honours select/shuffle indices
    elif isinstance(data, pa.Table):
        if column not in data.column_names:
            raise ValueError(f"the table has no column {column!r} (it has {data.column_names}); "
                             f"pass column= naming the column to measure.")
        values = data.column(column)
    else:
        values = data if isinstance(data, (pa.Array, pa.ChunkedArray)) else pa.array(list(data))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(data, Dataset):
        rows = sample_rows(len(values), sample_size, seed)
        values = values if rows is None else values.take(pa.array(rows))
    return values


def column_values(data: Data, column: str, sample_size: int | None = None, seed: int = 0) -> list[Any]:
    """`column_array` as a Python list."""
    return column_array(data, column, sample_size, seed).to_pylist()


def texts_of(data: Data, column: str, sample_size: int | None = None, seed: int = 0) -> list[str]:
    """The non-empty strings of `column` (a sample of `sample_size` rows, drawn before dropping empties)."""
    return [text for text in column_values(data, column, sample_size, seed) if isinstance(text, str) and text.strip()]


def embed(texts: list[str], model: str | None) -> tuple[np.ndarray, str]:
    """Unit-normalised float32 embeddings of `texts` and the model's name.

    The embedding model of `min_neighbor_distance` (`engines.embedding`: None = the paper's
    all-mpnet-base-v2 when installed, else the embedded all-MiniLM-L6-v2), so distances here
    and in the `min_neighbor_distance` column are on one scale.
    """
    from ..engines.embedding import embedder

    encoder = embedder(model, stage="analysis")
    vectors = encoder.encode(texts) if texts else np.empty((0, 0), dtype=np.float32)
    return vectors, encoder.model
