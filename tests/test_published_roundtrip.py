"""Published Magpie data (exact schema, local fixture) goes through our stages and back out unchanged in type."""

from __future__ import annotations



import re

import datasets
import pytest
import yaml
from datasets import Dataset, Features, Value, concatenate_datasets

from magpie_datasets import schema
from magpie_datasets.publish.hub import load_dataset, save_for_hub
from magpie_datasets.stages.formats import to_messages
from tests.published_sample import (
    PUBLISHED_FEATURES,
    PUBLISHED_FEATURES_YAML,
    published_dataset,
    published_rows,
    write_published_repo,
)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")  # uuid5


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def test_fixture_has_the_published_features_and_consistent_rows():
    assert Features._from_yaml_list(yaml.safe_load(PUBLISHED_FEATURES_YAML)) == PUBLISHED_FEATURES
    assert list(PUBLISHED_FEATURES)[:6] == ["uuid", "model", "gen_input_configs", "instruction", "response",
                                            "conversations"]
    assert PUBLISHED_FEATURES["gen_input_configs"]["seed"] == Value("null")  # as published
    rows = published_rows()
    assert len(rows) == 20
    uuids = {row["uuid"] for row in rows}
    for row in rows:
        assert list(row) == list(PUBLISHED_FEATURES)
        assert UUID_RE.match(row["uuid"])
        assert row["instruction_length"] == len(row["instruction"])
        assert row["response_length"] == len(row["response"])
        assert row["conversations"] == schema.to_conversations(row["instruction"], row["response"])
        assert row["min_similar_uuid"] is None or row["min_similar_uuid"] in uuids


def test_published_repo_through_a_stage_and_a_filter_saves_and_loads_with_the_same_features(tmp_path):
    source = load_dataset(write_published_repo(tmp_path / "published"), split="train")
    assert source.features == PUBLISHED_FEATURES

    staged = source.map(to_messages, batched=True)  # a stage of ours on published rows
    assert staged.features["messages"] == datasets.List({"role": Value("string"), "content": Value("string")})
    kept = staged.filter(  # the paper's row rules, on published columns
        lambda row: row["input_quality"] in ("good", "excellent")
        and row["instruct_reward"] > -10
        and row["min_similar_uuid"] in (None, row["uuid"])
        and not row["instruction"].endswith(":")
    )
    assert 0 < len(kept) < len(source)

    out = save_for_hub(kept, tmp_path / "ours", repo_id="me/magpie-filtered")
    back = load_dataset(out, split="train")
    assert back.features == kept.features
    assert {name: back.features[name] for name in PUBLISHED_FEATURES} == dict(PUBLISHED_FEATURES)
    assert back.to_list() == kept.to_list()
    assert back[0]["gen_input_configs"]["seed"] is None


def test_our_schema_types_match_the_published_ones_on_shared_columns():
    """Shared columns have the published type; the published `null` (no value ever
    recorded, e.g. `gen_input_configs.seed`) accepts any type, as `datasets` aligns it."""
    ours = {**schema.INSTRUCTION_FEATURES, **schema.RESPONSE_FEATURES}
    shared = [name for name in PUBLISHED_FEATURES if name in ours]
    assert {"uuid", "model", "gen_input_configs", "instruction", "response", "conversations",
            "instruction_length", "response_length"} <= set(shared)

    def compatible(published, own) -> bool:
        if published == Value("null"):
            return True
        if isinstance(published, dict):
            return isinstance(own, dict) and all(k in own and compatible(v, own[k]) for k, v in published.items())
        return published == own

    mismatched = [name for name in shared if not compatible(PUBLISHED_FEATURES[name], ours[name])]
    assert mismatched == []

    # and the published rows concatenate with rows in our schema
    row = {name: None for name in shared}
    row.update(uuid="u", model="m", instruction="i", response="r", instruction_length=1, response_length=1,
               conversations=schema.to_conversations("i", "r"),
               gen_input_configs={"temperature": 1.0, "top_p": 1.0, "input_generator": "m", "seed": 7,
                                  "pre_query_template": "<|im_start|>user\n"})
    own_rows = Dataset.from_list([row], features=Features({name: ours[name] for name in shared}))
    published = published_dataset().select_columns(shared)
    both = concatenate_datasets([published, own_rows])
    assert len(both) == 21 and both[-1]["gen_input_configs"]["seed"] == 7
