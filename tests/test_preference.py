"""Preference pairs (MAGPIE-DPO): k samples, pairing on rewards, and the whole path on real models."""



import pytest
from datasets import Dataset

import magpie_datasets as magpie
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.formats import to_preference
from magpie_datasets.stages.preference import (
    PAIR_FEATURES,
    SAMPLE_FEATURES,
    add_response_samples,
    to_preference_pairs,
)
from magpie_datasets.stages.rewards import add_rewards


def msg(role, content):
    return {"role": role, "content": content}


def scores(*values):
    return [{"score": v} for v in values]


def test_pairs_pick_highest_and_lowest_as_conversations():
    batch = {
        "instruction": ["Sky?"],
        "responses": [["Blue.", "Green.", "Blue!"]],
        "rewards_armorm": [scores(0.9, -0.3, 0.5)],
    }
    out = to_preference_pairs(batch)
    assert out["prompt"] == [[msg("user", "Sky?")]]
    assert out["chosen"] == [[msg("user", "Sky?"), msg("assistant", "Blue.")]]
    assert out["rejected"] == [[msg("user", "Sky?"), msg("assistant", "Green.")]]
    assert (out["chosen_score"], out["rejected_score"], out["pair_issue"]) == ([0.9], [-0.3], [None])


def test_unpairable_rows_are_kept_and_marked():
    batch = {
        "instruction": ["a", "b", "c", "d", "e"],
        "responses": [["x", "x", "x"], ["x", "y"], [], ["", "  "], ["x", "y", "x"]],
        "rewards_fsfairx": [scores(1, 1, 1), scores(2.0, 2.0), [], scores(0, 0), [1.5, -1, 7.0]],
    }
    out = to_preference_pairs(batch)
    assert out["pair_issue"] == ["single_distinct_response", "tie", "no_responses", "no_responses", None]
    assert out["chosen"][:4] == out["rejected"][:4] == out["chosen_score"][:4] == [None] * 4
    assert out["prompt"][2] == [msg("user", "c")]
    # A repeated text keeps its first score (7.0 for the second "x" is ignored); plain numbers are accepted.
    assert out["chosen"][4][1]["content"] == "x" and out["rejected"][4][1]["content"] == "y"
    assert (out["chosen_score"][4], out["rejected_score"][4]) == (1.5, -1.0)


def test_rewards_column_is_found_or_named():
    batch = {"instruction": ["a"], "responses": [["x", "y"]], "rewards_a": [scores(1, 2)], "rewards_b": [scores(2, 1)]}
    with pytest.raises(ValueError, match="rewards_a.*rewards_b"):
        to_preference_pairs(batch)
    assert to_preference_pairs(batch, rewards_column="rewards_b")["chosen"][0][1]["content"] == "x"
    with pytest.raises(ValueError, match="none"):
        to_preference_pairs({"instruction": ["a"], "responses": [["x"]]})
    with pytest.raises(ValueError, match="2 responses but 1 scores"):
        to_preference_pairs({"instruction": ["a"], "responses": [["x", "y"]], "rewards_a": [scores(1)]})
    with pytest.raises(ValueError, match="expected"):
        to_preference_pairs({"instruction": ["a"], "responses": [["x", "y"]], "rewards_a": [[{"s": 1}, {"s": 2}]]})
    with pytest.raises(MissingColumnError, match="add_response_samples"):
        to_preference_pairs({"instruction": ["a"], "rewards_a": [[]]})
    with pytest.raises(ValueError, match="k >= 1"):
        add_response_samples({"instruction": ["a"]}, k=0)


def test_pairs_through_dataset_map_with_an_unpaired_first_batch():
    ds = Dataset.from_dict(
        {
            "instruction": ["a", "b", "c"],
            "responses": [["x", "x"], ["x", "y"], ["p", "q"]],
            "rewards_armorm": [scores(0, 0), scores(0.25, 0.5), scores(3, -3)],
        }
    )
    out = ds.map(to_preference_pairs, batched=True, batch_size=1)
    for name, feature in PAIR_FEATURES.items():
        assert out.features[name] == feature, name
    assert out["pair_issue"] == ["single_distinct_response", None, None]
    assert out["chosen"][1] == [msg("user", "b"), msg("assistant", "y")]
    # formats.to_preference takes these rows as they are: TRL's split, unpaired rows dropped.
    dpo = out.map(to_preference, batched=True).select_columns(["prompt", "chosen", "rejected"])
    assert dpo.to_list() == [
        {"prompt": [msg("user", "b")], "chosen": [msg("assistant", "y")], "rejected": [msg("assistant", "x")]},
        {"prompt": [msg("user", "c")], "chosen": [msg("assistant", "p")], "rejected": [msg("assistant", "q")]},
    ]


@pytest.fixture(scope="module")
def sampled():
    ds = Dataset.from_dict(
        {"instruction": ["Name three colors.", "What is 2 + 2?", "", "Write a haiku about rain."]}
    )
    return ds.map(add_response_samples, batched=True, batch_size=2, fn_kwargs={"k": 3, "max_tokens": 24, "seed": 1})


def test_response_samples_on_the_embedded_model(sampled):
    for name, feature in SAMPLE_FEATURES.items():
        assert sampled.features[name] == feature, name
    assert [len(r) for r in sampled["responses"]] == [3, 3, 0, 3]
    assert [len(r) for r in sampled["response_issues"]] == [3, 3, 0, 3]
    config = sampled[0]["gen_response_configs"]
    assert config["temperature"] == 0.8 and config["max_tokens"] == 24
    assert config["output_generator"] == magpie.EMBEDDED_CHAT_MODEL
    assert "{input}" in config["prompt"]
    # Sampling at T=0.8 gives different answers to the same instruction.
    assert sum(len(set(r)) > 1 for r in sampled["responses"]) >= 2
    again = sampled.map(
        add_response_samples, batched=True, batch_size=2, load_from_cache_file=False,
        fn_kwargs={"k": 3, "max_tokens": 24, "seed": 1},
    )
    assert again["responses"] == sampled["responses"]


def _tiny_reward_model(tmp_path):
    """A LlamaForSequenceClassification (num_labels=1) with random weights and the embedded tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from magpie_datasets.engines.embedded import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path / "tiny-rm"
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_pairs_from_the_embedded_model_and_a_tiny_reward_model(sampled, tmp_path):
    reward_model = _tiny_reward_model(tmp_path)
    scored = sampled.map(
        add_rewards, batched=True, fn_kwargs={"model": reward_model, "column": "responses"}
    )
    column = next(c for c in scored.column_names if c.startswith("rewards_"))
    assert [None if r is None else len(r) for r in scored[column]] == [3, 3, None, 3]  # no instruction: None
    pairs = scored.map(to_preference_pairs, batched=True, batch_size=2)
    assert pairs["pair_issue"][2] == "no_responses"
    paired = [row for row in pairs if row["pair_issue"] is None]
    assert paired, pairs["pair_issue"]
    for row in paired:
        assert row["chosen_score"] > row["rejected_score"]
        assert row["chosen"][0] == row["rejected"][0] == {"role": "user", "content": row["instruction"]}
        assert {row["chosen"][1]["content"], row["rejected"][1]["content"]} <= set(row["responses"])
        assert row["chosen"][1]["content"] != row["rejected"][1]["content"]
