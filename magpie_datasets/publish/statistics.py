"""What a dataset card says about the rows: provenance, per-column statistics, license, size.

    >>> from datasets import Dataset
    >>> ds = Dataset.from_dict({"model": ["Qwen/Qwen2.5-7B-Instruct"] * 4, "language": ["EN", "EN", "EN", "ZH"]})
    >>> summarize(ds)
    [{'column': 'language', 'text': 'EN 75%, ZH 25%'}]
    >>> column_provenance(ds)
    [{'column': 'model', 'values': ['Qwen/Qwen2.5-7B-Instruct'], 'count': 1}]
    >>> license_for_model(generating_models(ds)[0]), size_category(len(ds))
    (('apache-2.0', None), 'n<1K')

Which columns get statistics, and as what, is the stage table's `charts`
(`magpie_datasets.stages.table`): a bar chart's column gets its value shares, a histogram's its
mean, median and range. Provenance is read from the rows only: the columns that name models,
engines, templates and decoding settings, and every field of the `*_configs` / `*_options`
structs in which stages record their settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features

from ..analysis import distributions
from ..stages.table import STAGES, Chart

# First match on the lower-cased model id wins: (substring, Hub license id, license_name for "other").
MODEL_LICENSES: list[tuple[str, str, str | None]] = [
    ("llama-3.3", "llama3.3", None),
    ("llama-3.2", "llama3.2", None),
    ("llama-3.1", "llama3.1", None),
    ("llama-3", "llama3", None),
    ("qwen2.5-72b", "other", "qwen"),
    ("qwen2.5-3b", "other", "qwen-research"),
    ("qwen2-72b", "other", "tongyi-qianwen"),
    ("qwen", "apache-2.0", None),
    ("smollm", "apache-2.0", None),
    ("gemma", "gemma", None),
    ("phi-3", "mit", None),
    ("mistral-7b", "apache-2.0", None),
]

# Columns whose distinct values say how the rows were made (top level or one struct level down).
_PROVENANCE_NAMES = {
    "model", "model_source", "engine", "dtype", "seed", "temperature", "top_p", "repetition_penalty",
    "max_tokens", "stop_tokens", "system_prompt", "early_stop", "sanitize", "pre_query_template",
    "extract_input", "prompt", "input_generator", "output_generator",
}
_PROVENANCE_SUFFIXES = ("_generator", "_model", "_engine", "_template")
# Structs of a stage's settings (schema.record): every field of them is provenance.
_SETTINGS_SUFFIXES = ("_configs", "_options")
# Where the models that wrote instructions and responses are named.
_GENERATOR_PATHS = ("model", "gen_input_configs.input_generator", "gen_response_configs.output_generator")
_NUMERIC_DTYPES = ("int8", "int16", "int32", "int64", "float16", "float32", "float64")

_SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
]


def license_for_model(model: str | None) -> tuple[str, str | None]:
    """Hub license id (and `license_name` when it is "other") of a generating model.

    >>> license_for_model("meta-llama/Meta-Llama-3.1-70B-Instruct")
    ('llama3.1', None)
    >>> license_for_model("someone/unknown-7b")
    ('other', None)
    """
    name = (model or "").lower()
    for pattern, license_id, license_name in MODEL_LICENSES:
        if pattern in name:
            return license_id, license_name
    return "other", None


def size_category(num_rows: int) -> str:
    """The Hub's `size_categories` bucket for a row count.

    >>> size_category(1234)
    '1K<n<10K'
    """
    for limit, label in _SIZE_CATEGORIES:
        if num_rows < limit:
            return label
    return "n>1B"


def card_charts() -> list[Chart]:
    """Every chart of the stage table, one per column: bar charts first, then histograms, in stage order.

    >>> [c.column for c in card_charts()][:3]
    ['task_category', 'input_quality', 'difficulty']
    """
    charts: dict[str, Chart] = {}
    for entry in STAGES:
        for chart in entry.charts:
            if chart.kind not in _KIND_CHECKS:
                raise ValueError(f"stage {entry.name}: chart of {chart.column!r} has kind {chart.kind!r}; "
                                 f"give one of {sorted(_KIND_CHECKS)}.")
            charts.setdefault(chart.column, chart)
    return sorted(charts.values(), key=lambda c: c.kind != "bar")


def charts_for(ds: Dataset | Snapshot) -> list[Chart]:
    """The `card_charts()` whose column `ds` has, typed for the chart (strings for a bar, numbers for a histogram).

    >>> [c.column for c in charts_for(Dataset.from_dict({"language": ["EN"], "response_length": [3]}))]
    ['language', 'response_length']
    """
    features = ds.features
    return [c for c in card_charts() if c.column in features and _KIND_CHECKS[c.kind](features[c.column])]


def generating_models(ds: Dataset | Snapshot) -> list[str]:
    """Distinct models that wrote instructions or responses (`model`, `*.input_generator`, ...).

    >>> generating_models(Dataset.from_dict({"model": ["Qwen/Qwen2.5-7B-Instruct", None]}))
    ['Qwen/Qwen2.5-7B-Instruct']
    """
    ds = snapshot(ds)
    models: list[str] = []
    for path in _GENERATOR_PATHS:
        for value in _distinct(ds, path):
            if isinstance(value, str) and value and value not in models:
                models.append(value)
    return models


def column_provenance(ds: Dataset | Snapshot) -> list[dict[str, Any]]:
    """Distinct values of the columns that record models, engines, templates, decoding and stage settings.

    >>> column_provenance(Dataset.from_dict({"safety_configs": [{"model": "me/guard"}, {"model": "me/guard"}]}))
    [{'column': 'safety_configs.model', 'values': ['me/guard'], 'count': 1}]
    """
    ds = snapshot(ds)
    items = []
    for path in _provenance_paths(ds.features):
        values = _distinct(ds, path)
        if values and any(v is not None for v in values):
            items.append({"column": path, "values": values, "count": len(values)})
    return items


def summarize(ds: Dataset | Snapshot) -> list[dict[str, str]]:
    """One line per chart column with values: value shares (bar), or mean / median / range (histogram).

    >>> summarize(Dataset.from_dict({"response_length": [1, 2, 6]}))
    [{'column': 'response_length', 'text': 'mean 3, median 2, min 1, max 6 (3 values)'}]
    """
    ds = snapshot(ds)
    rows = []
    for chart in charts_for(ds):
        if chart.kind == "bar":
            counts = _value_counts(ds, chart.column)
            total = sum(counts.values())
            if total:
                top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
                text = ", ".join(f"{_clean(k)} {100 * v / total:.0f}%" for k, v in top)
                rows.append({"column": chart.column, "text": text + (", ..." if len(counts) > 4 else "")})
        else:
            values = _arrow_column(ds, chart.column)
            stats = distributions.length_distribution(values, chart.column) if values is not None else {"count": 0}
            if stats["count"]:
                rows.append({
                    "column": chart.column,
                    "text": f"mean {stats['mean']:.3g}, median {stats['median']:.3g}, "
                            f"min {stats['min']:.3g}, max {stats['max']:.3g} ({stats['count']:,} values)",
                })
    return rows


@dataclass(frozen=True)
class Snapshot:
    """The (small) columns a card reads, gathered once into one pyarrow table."""

    features: Any
    table: pa.Table
    first_row: dict[str, Any] | None

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    def __len__(self) -> int:
        return self.table.num_rows


def snapshot(ds: Dataset | Snapshot) -> Snapshot:
    """The chart, model and provenance columns of `ds` (not the long texts) as one table.

    After a filter a Dataset holds an indices mapping; one pyarrow `take` gathers the rows,
    where reading them through datasets' formatted access is far slower on large sets.
    A Snapshot is returned as it is.
    """
    if isinstance(ds, Snapshot):
        return ds
    wanted = {"model", *(c.column for c in card_charts()),
              *(p.partition(".")[0] for p in _provenance_paths(ds.features))}
    names = [name for name in ds.column_names if name in wanted]
    table = ds.data.table.select(names)
    indices = ds._indices  # private, but the only way to a plain take; None when rows are contiguous
    table = table.take(indices.column(0)) if indices is not None else table
    return Snapshot(Features({n: ds.features[n] for n in names}), table, ds[0] if len(ds) else None)


# ----------------------------------------------------------------------------- helpers


def _provenance_paths(features: Mapping[str, Any]) -> list[str]:
    def wanted(name: str) -> bool:
        return name in _PROVENANCE_NAMES or name.endswith(_PROVENANCE_SUFFIXES)

    paths = []
    for name, feature in features.items():
        if isinstance(feature, dict):
            settings = name.endswith(_SETTINGS_SUFFIXES)
            paths += [f"{name}.{sub}" for sub, field in feature.items()
                      if (settings or wanted(sub)) and not isinstance(field, dict)]
        elif wanted(name) and _is_scalar(feature):
            paths.append(name)
    return paths


def _arrow_column(ds: Snapshot, path: str) -> pa.Array | None:
    """`path` ("col" or "struct.field") as one pyarrow Array, or None when absent."""
    top, _, sub = path.partition(".")
    if top not in ds.column_names:
        return None
    feature = ds.features[top]
    if sub and not (isinstance(feature, dict) and sub in feature):
        return None
    column = ds.table.column(top).combine_chunks()
    return column.field(sub) if sub else column


def _distinct(ds: Snapshot, path: str) -> list[Any]:
    """Distinct values in order of first appearance (computed in arrow for scalars, so large sets stay fast)."""
    column = _arrow_column(ds, path)
    if column is None:
        return []
    if not pa.types.is_nested(column.type):
        return pc.unique(column).to_pylist()
    seen: dict[str, Any] = {}
    for value in column.to_pylist():
        seen.setdefault(json.dumps(value, sort_keys=True, default=str), value)
    return list(seen.values())


def _value_counts(ds: Snapshot, column: str) -> dict[str, int]:
    """Rows per non-empty value of a string column (`analysis.label_distribution`), commonest first."""
    values = _arrow_column(ds, column)
    return {} if values is None else distributions.label_distribution(values, column)["counts"]


def _numbers(ds: Snapshot, column: str) -> np.ndarray:
    """Finite values of a numeric column as a float array (nulls and NaN dropped)."""
    values = _arrow_column(ds, column)
    return np.empty(0) if values is None else distributions.finite_numbers(values)


def _is_string(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string")


def _is_numeric(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in _NUMERIC_DTYPES


def _is_scalar(feature: Any) -> bool:
    return hasattr(feature, "dtype") and not isinstance(feature, dict)


def _clean(value: str) -> str:
    """A label as it may stand in a Markdown table cell."""
    return str(value).replace("\n", " ").replace("|", "\\|")


_KIND_CHECKS = {"bar": _is_string, "histogram": _is_numeric}
