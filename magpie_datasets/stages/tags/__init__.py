"""LLM-judged tags of an instruction: task category, input quality, difficulty (paper §3).

    ds = ds.map(magpie.tag_with_llm, batched=True)

- `labels`: the words judges use for each label, and `normalize_label`;
- `prompts`: what the judge is asked per tag (prompt, JSON schema, prefill) and the columns it fills;
- `parse`: `parse_tag_answer`, reading an answer into those columns;
- `stage`: the `tag_with_llm` stage.

The label vocabularies and the output `Features` live in `magpie_datasets.schema`.
"""

from ...schema import DIFFICULTY_LABELS, QUALITY_LABELS, TASK_CATEGORIES
from .labels import (
    CATEGORY_LOOKUP,
    DIFFICULTY_LOOKUP,
    LOOKUPS,
    QUALITY_LOOKUP,
    normalize_label,
)
from .parse import parse_tag_answer
from .prompts import LABEL_COLUMN, TAG_COLUMNS, TAG_SPECS, TAGS
from .stage import TAG_CONFIGS, TAG_FEATURES, tag_with_llm

__all__ = [
    "CATEGORY_LOOKUP",
    "DIFFICULTY_LABELS",
    "DIFFICULTY_LOOKUP",
    "LABEL_COLUMN",
    "LOOKUPS",
    "QUALITY_LABELS",
    "QUALITY_LOOKUP",
    "TAGS",
    "TAG_COLUMNS",
    "TAG_CONFIGS",
    "TAG_FEATURES",
    "TAG_SPECS",
    "TASK_CATEGORIES",
    "normalize_label",
    "parse_tag_answer",
    "tag_with_llm",
]
