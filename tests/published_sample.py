"""A local stand-in for a published Magpie dataset (e.g. Magpie-Align/Magpie-Gemma2-Pro-200K-Filtered).

`PUBLISHED_FEATURES` has exactly the column names, order and types of the authors'
Pro-*-Filtered cards (transcribed in `PUBLISHED_FEATURES_YAML` from the README
`dataset_info` of Magpie-Gemma2-Pro-200K-Filtered; Magpie-Qwen2-Pro-300K-Filtered and
Magpie-Phi3-Pro-300K-Filtered have the same list with `extract_input` in place of
`pre_query_template`). Note `gen_input_configs.seed` is published as dtype 'null'.

`rows.jsonl` holds 20 hand-written rows in that schema: several task categories,
qualities and difficulties, two near-duplicates (one pointing at itself, one at the
first), one unsafe row, two very poor ones, Chinese and Spanish rows.

    published_dataset()            -> Dataset (20 rows, PUBLISHED_FEATURES)
    write_published_repo(tmp_path) -> dir laid out like the Hub repo; load_dataset(dir) reads it
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from datasets import Dataset, Features, List, Value

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "published_sample"
ROWS_FILE = FIXTURE_DIR / "rows.jsonl"

_s, _f, _i = Value("string"), Value("float64"), Value("int64")

PUBLISHED_FEATURES = Features(
    {
        "uuid": _s,
        "model": _s,
        "gen_input_configs": {
            "temperature": _f,
            "top_p": _f,
            "input_generator": _s,
            "seed": Value("null"),
            "pre_query_template": _s,
        },
        "instruction": _s,
        "response": _s,
        "conversations": List({"from": _s, "value": _s}),
        "task_category": _s,
        "other_task_category": List(_s),
        "task_category_generator": _s,
        "difficulty": _s,
        "intent": _s,
        "knowledge": _s,
        "difficulty_generator": _s,
        "input_quality": _s,
        "quality_explanation": _s,
        "quality_generator": _s,
        "llama_guard_2": _s,
        "reward_model": _s,
        "instruct_reward": _f,
        "min_neighbor_distance": _f,
        "repeat_count": _i,
        "min_similar_uuid": _s,
        "instruction_length": _i,
        "response_length": _i,
        "language": _s,
    }
)

# The published card's `dataset_info.features`, as the Hub shows it (names, order, dtypes).
PUBLISHED_FEATURES_YAML = """\
- name: uuid
  dtype: string
- name: model
  dtype: string
- name: gen_input_configs
  struct:
  - name: temperature
    dtype: float64
  - name: top_p
    dtype: float64
  - name: input_generator
    dtype: string
  - name: seed
    dtype: 'null'
  - name: pre_query_template
    dtype: string
- name: instruction
  dtype: string
- name: response
  dtype: string
- name: conversations
  list:
  - name: from
    dtype: string
  - name: value
    dtype: string
- name: task_category
  dtype: string
- name: other_task_category
  sequence: string
- name: task_category_generator
  dtype: string
- name: difficulty
  dtype: string
- name: intent
  dtype: string
- name: knowledge
  dtype: string
- name: difficulty_generator
  dtype: string
- name: input_quality
  dtype: string
- name: quality_explanation
  dtype: string
- name: quality_generator
  dtype: string
- name: llama_guard_2
  dtype: string
- name: reward_model
  dtype: string
- name: instruct_reward
  dtype: float64
- name: min_neighbor_distance
  dtype: float64
- name: repeat_count
  dtype: int64
- name: min_similar_uuid
  dtype: string
- name: instruction_length
  dtype: int64
- name: response_length
  dtype: int64
- name: language
  dtype: string
"""


def published_rows() -> list[dict]:
    """The 20 fixture rows as plain dicts."""
    with ROWS_FILE.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def published_dataset() -> Dataset:
    """The fixture rows as a `Dataset` with `PUBLISHED_FEATURES`."""
    return Dataset.from_list(published_rows(), features=PUBLISHED_FEATURES)


def write_published_repo(directory: str | Path) -> Path:
    """Write the fixture as the Hub repository looks (data/train-*.parquet + README.md YAML).

    `load_dataset(str(directory), split="train")` then reads it the way
    `load_dataset("Magpie-Align/...")` reads the real one.
    """
    directory = Path(directory)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    ds = published_dataset()
    ds.to_parquet(str(directory / "data" / "train-00000-of-00001.parquet"))
    metadata = {
        "dataset_info": {
            "features": yaml.safe_load(PUBLISHED_FEATURES_YAML),
            "splits": [{"name": "train", "num_bytes": ds.data.nbytes, "num_examples": len(ds)}],
        },
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    }
    text = "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n\nFixture.\n"
    (directory / "README.md").write_text(text, encoding="utf-8")
    return directory
