"""Decoding ablation (paper fig. 11): quality, difficulty and diversity per step-1 decoding setting.

    >>> rows = {"gen_input_configs": [{"temperature": 1.0, "top_p": 1.0}, {"temperature": 1.0, "top_p": 1.0},
    ...                               {"temperature": 1.25, "top_p": 0.99}],
    ...         "input_quality": ["good", "excellent", "poor"], "difficulty": ["easy", None, "hard"]}
    >>> decoding_ablation(Dataset.from_dict(rows))["configurations"]
    [{'temperature': 1.0, 'top_p': 1.0, 'rows': 2, 'mean_quality': 4.5, 'mean_difficulty': 2.0, 'mean_min_neighbor_distance': None}, {'temperature': 1.25, 'top_p': 0.99, 'rows': 1, 'mean_quality': 2.0, 'mean_difficulty': 4.0, 'mean_min_neighbor_distance': None}]

Rows are grouped by (`gen_input_configs.temperature`, `gen_input_configs.top_p`), sorted.
Scores follow the label order: quality 1 = very poor ... 5 = excellent, difficulty 1 = very
easy ... 5 = very hard. A mean is over the rows of the group that have a value (a known label,
or a non-null finite distance); None when none has, or when the column is absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from ..schema import DIFFICULTY_LABELS, QUALITY_LABELS

QUALITY_SCORES = {label: i + 1 for i, label in enumerate(QUALITY_LABELS)}
DIFFICULTY_SCORES = {label: i + 1 for i, label in enumerate(DIFFICULTY_LABELS)}
_COLUMNS = ("input_quality", "difficulty", "min_neighbor_distance")


def decoding_ablation(ds: Dataset) -> dict[str, Any]:
    """One entry per (temperature, top_p) of step 1: its row count and mean quality, difficulty, distance."""
    features = ds.features.get("gen_input_configs")
    if not isinstance(features, dict) or not {"temperature", "top_p"} <= set(features):
        raise ValueError("decoding_ablation groups rows by gen_input_configs.temperature and .top_p, which this "
                         "dataset lacks: run add_magpie_instructions (step 1), which records them.")
    present = [name for name in _COLUMNS if name in ds.column_names]
    table = ds.select_columns(["gen_input_configs", *present]).with_format("arrow")[:]
    configs = table.column("gen_input_configs").combine_chunks()
    columns = {name: table.column(name).to_pylist() if name in present else None for name in _COLUMNS}
    return ablation(configs.field("temperature").to_pylist(), configs.field("top_p").to_pylist(),
                    columns["input_quality"], columns["difficulty"], columns["min_neighbor_distance"])


def ablation(
    temperature: Sequence[float | None],
    top_p: Sequence[float | None],
    input_quality: Sequence[str | None] | None = None,
    difficulty: Sequence[str | None] | None = None,
    min_neighbor_distance: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """`decoding_ablation` on columns given as lists (None for an absent column)."""
    groups: dict[tuple, list[int]] = {}
    for row, key in enumerate(zip(temperature, top_p)):
        groups.setdefault(key, []).append(row)
    configurations = []
    for key in sorted(groups, key=lambda k: tuple((v is None, v or 0.0) for v in k)):
        rows = groups[key]
        configurations.append({
            "temperature": key[0],
            "top_p": key[1],
            "rows": len(rows),
            "mean_quality": _mean(input_quality, rows, QUALITY_SCORES.get),
            "mean_difficulty": _mean(difficulty, rows, DIFFICULTY_SCORES.get),
            "mean_min_neighbor_distance": _mean(min_neighbor_distance, rows, _finite),
        })
    return {"configurations": configurations}


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _mean(values: Sequence[Any] | None, rows: list[int], score) -> float | None:
    if values is None:
        return None
    scores = [s for s in (score(values[row]) if values[row] is not None else None for row in rows) if s is not None]
    return sum(scores) / len(scores) if scores else None
