"""Label and length distributions: what the dataset card's bar charts and histograms show.

    >>> label_distribution(["good", "poor", "good", None, ""], "input_quality", order=["poor", "good"])
    {'column': 'input_quality', 'counts': {'poor': 1, 'good': 2}, 'shares': {'poor': 0.333..., 'good': 0.666...}, 'labelled': 3, 'unlabelled': 2}
    >>> length_distribution([1, 2, 6], "response_length")["mean"]
    3.0

The card (`publish.statistics`, `publish.plots`) counts through these two functions, so a
notebook that calls them gets the card's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .texts import Data, column_array


def label_distribution(ds: Data, column: str, order: Sequence[str] | None = None) -> dict[str, Any]:
    """Rows per label of a string column: `order`'s labels first, then the others by count (ties: first seen).

    Null and empty values are not labels: they are counted in `unlabelled`. `shares` are of
    the labelled rows. `ds`: a Dataset, a pyarrow Table, or the values themselves.
    """
    values = column_array(ds, column)
    if len(values) and not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
                            or pa.types.is_null(values.type)):
        raise ValueError(f"label_distribution: column {column!r} holds {values.type}, not labels (strings); "
                         f"use length_distribution for numbers.")
    counted = {c["values"]: c["counts"] for c in pc.value_counts(values).to_pylist()
               if c["values"] is not None and c["values"] != ""}
    labels = [label for label in (order or ()) if label in counted]
    labels += sorted((label for label in counted if label not in labels), key=lambda label: -counted[label])
    total = sum(counted.values())
    return {
        "column": column,
        "counts": {label: counted[label] for label in labels},
        "shares": {label: counted[label] / total for label in labels},
        "labelled": total,
        "unlabelled": len(values) - total,
    }


def length_distribution(ds: Data, column: str) -> dict[str, Any]:
    """Count, mean, median, min, max and a histogram of a numeric column (string column: character lengths).

    Nulls and NaN are dropped. The histogram has `histogram_bins(count)` equal-width bins.

    >>> length_distribution(["ab", "abcd"], "instruction")["max"]
    4.0
    """
    values = finite_numbers(column_array(ds, column))
    if not values.size:
        return {"column": column, "count": 0, "mean": None, "median": None, "min": None, "max": None,
                "histogram": {"bin_edges": [], "counts": []}}
    counts, edges = np.histogram(values, bins=histogram_bins(values.size))
    return {
        "column": column,
        "count": int(values.size),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
        "histogram": {"bin_edges": edges.tolist(), "counts": counts.tolist()},
    }


def histogram_bins(count: int) -> int:
    """Bins of the card's histograms: twice the square root of the count, 5 to 50.

    >>> histogram_bins(3), histogram_bins(400), histogram_bins(10**6)
    (5, 40, 50)
    """
    return min(50, max(5, int(math.sqrt(count)) * 2))


def finite_numbers(values: pa.Array) -> np.ndarray:
    """Finite values as float64 (nulls and NaN dropped); strings give their lengths in characters."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.utf8_length(values)
    if pa.types.is_null(values.type):
        return np.empty(0)
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise ValueError(f"length_distribution: values of type {values.type} are neither numbers nor strings.")
    array = pc.drop_null(values).to_numpy(zero_copy_only=False).astype(float)
    return array[np.isfinite(array)]
