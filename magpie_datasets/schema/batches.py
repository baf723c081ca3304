"""Row and batch helpers: `*_configs` records, Arrow-typed output columns, required-column checks."""

from __future__ import annotations

from typing import Any, Mapping

import pyarrow as pa
from datasets import List, Sequence
from datasets.features.features import get_nested_type


def record(struct: Mapping[str, Any], **values: Any) -> dict[str, Any]:
    """A stage's settings as one row's `*_configs` value, each cast to its field's type.

    Every field of `struct` must be given (None allowed) and nothing else, so a setting added
    to a stage cannot go unrecorded or be recorded under a name the Features lack.

    >>> from datasets import Value
    >>> record({"seed": Value("int64"), "top_p": Value("float64")}, seed=3, top_p=1)
    {'seed': 3, 'top_p': 1.0}
    >>> record({"seed": Value("int64")}, seed=3, temperature=1.0)
    Traceback (most recent call last):
    ...
    ValueError: record(): temperature not in this config's fields (seed); missing: none
    """
    extra, missing = sorted(set(values) - set(struct)), sorted(set(struct) - set(values))
    if extra or missing:
        raise ValueError(
            f"record(): {', '.join(extra) or 'nothing'} not in this config's fields ({', '.join(struct)}); "
            f"missing: {', '.join(missing) or 'none'}"
        )
    return {name: _cast(feature, values[name]) for name, feature in struct.items()}


def _cast(feature: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(feature, (List, Sequence)):
        return [_cast(feature.feature, v) for v in value]
    dtype = getattr(feature, "dtype", None)
    if dtype in ("float64", "float32"):
        return float(value)
    if dtype in ("int64", "int32"):
        return int(value)
    if dtype == "bool":
        return bool(value)
    if dtype == "string":
        return str(value)
    return value


class TypedList(list):
    """A plain list that also tells Arrow its type.

    `Dataset.map` infers a column's type from the first batch it writes; a column
    that is all None there (no issue, no tag yet) would be typed null and the
    next batch with a value would fail. Arrow asks `__arrow_array__` instead.
    """

    def __init__(self, values, pa_type: pa.DataType):
        super().__init__(values)
        self.pa_type = pa_type

    def __arrow_array__(self, type=None):
        return pa.array(list(self), type=self.pa_type)


def typed_batch(columns: Mapping[str, list], features: Mapping[str, Any]) -> dict[str, list]:
    """Give each output column whose name is in `features` its declared Arrow type.

    >>> from magpie_datasets.schema import RESPONSE_FEATURES
    >>> out = typed_batch({"response_issue": [None, None]}, RESPONSE_FEATURES)
    >>> out["response_issue"], out["response_issue"].pa_type
    ([None, None], DataType(string))
    """
    return {
        name: TypedList(values, get_nested_type(features[name])) if name in features else values
        for name, values in columns.items()
    }


class MissingColumnError(KeyError):
    """A stage was given a batch without a column it reads."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


# Raised and caught as magpie_datasets.schema.MissingColumnError: tracebacks keep that name.
MissingColumnError.__module__ = "magpie_datasets.schema"


def require_columns(batch: Mapping[str, Any], needed: Mapping[str, str], stage: str) -> None:
    """Raise one clear error when `batch` lacks a column; `needed` maps column -> producing stage.

    >>> require_columns({"instruction": ["hi"]}, {"response": "generate_responses"}, "tag_safety")
    Traceback (most recent call last):
    ...
    magpie_datasets.schema.MissingColumnError: tag_safety needs column 'response', ... Run generate_responses first, ...
    """
    present = set(batch.keys())
    for column, producer in needed.items():
        if column not in present:
            raise MissingColumnError(
                f"{stage} needs column {column!r}, which this dataset does not have "
                f"(columns: {sorted(present)}). Run {producer} first, or rename your column "
                f"with ds.rename_column(..., {column!r})."
            )


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """Number of rows in a batch (a dict of equal-length lists)."""
    for values in batch.values():
        return len(values)
    return 0
