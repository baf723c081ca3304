"""Rewards: tiny reward models made here (random weights, byte tokenizer, chat template) through
the real loading code; list scoring for preference data; wrong models fail clearly;
reward_diff with a tiny base model and with the embedded Gemma-3-270M base model."""

import json
import math
import shutil

import pytest
from datasets import Dataset


from magpie_datasets.engines import ModelNotAvailableError
from magpie_datasets.stages.rewards import (
    BASE_FEATURES,
    EMBEDDED_BASE_MODEL,
    REWARD_FEATURES,
    URIAL_STOP,
    RewardModelError,
    add_rewards,
    reward_diff,
    rewards_column_name,
    score_conversations,
    urial_prompt,
)
from tests.published_sample import published_dataset
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model

QUESTIONS = ["What is 2+2?", "Name a colour.", "Say hi."]
ANSWERS = ["4", "Blue is a colour.", "Hi there!"]


def chat_tokenizer(name):
    return byte_tokenizer(CHATML, CHATML_SPECIALS, name=str(name))


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-rm")
    return save_tiny_model(directory, chat_tokenizer(directory), "reward")


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-base")
    return save_tiny_model(directory, byte_tokenizer(None, name=str(directory)), "causal", seed=1)


def test_scores_are_finite_deterministic_and_differ(reward_model):
    out = add_rewards({"instruction": QUESTIONS, "response": ANSWERS}, model=reward_model)
    assert set(out) == {"instruct_reward", "reward_model", "reward_configs"}
    scores = out["instruct_reward"]
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert len(set(scores)) == 3
    assert add_rewards({"instruction": QUESTIONS, "response": ANSWERS}, model=reward_model)["instruct_reward"] == scores
    assert out["reward_model"] == [reward_model] * 3
    assert out["reward_configs"] == [{"column": "response", "model": reward_model, "model_source": reward_model,
                                      "dtype": "float32", "max_length": 4096}] * 3
    other = add_rewards({"instruction": QUESTIONS[:1], "response": ["5"]}, model=reward_model)["instruct_reward"][0]
    assert other != scores[0]


def test_scores_do_not_depend_on_batching(reward_model):
    conversations = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in zip(QUESTIONS, ANSWERS)]
    together = score_conversations(conversations, reward_model, engine_options={"batch_size": 8})
    alone = [score_conversations([c], reward_model)[0] for c in conversations]
    assert together == pytest.approx(alone, abs=1e-5)


def test_missing_rows_get_none_and_types_hold_in_map(reward_model):
    ds = Dataset.from_dict({"instruction": ["", "Name a colour.", "Say hi."], "response": ["x", "Blue.", None]})
    out = ds.map(add_rewards, batched=True, batch_size=1, fn_kwargs={"model": reward_model})
    assert out["instruct_reward"][0] is None and out["instruct_reward"][2] is None
    assert isinstance(out["instruct_reward"][1], float)
    assert out["reward_model"] == [None, reward_model, None]
    assert out["reward_configs"][0] is None and out["reward_configs"][2] is None
    assert out["reward_configs"][1]["model"] == reward_model
    for name, feature in REWARD_FEATURES.items():
        assert out.features[name] == feature


def test_list_of_responses_gives_one_score_each(reward_model):
    batch = {"instruction": QUESTIONS[:2] + [""], "responses": [ANSWERS, ["Red."], []]}
    out = add_rewards(batch, model=reward_model, column="responses")
    name = rewards_column_name(reward_model)
    assert list(out) == [name, "reward_configs"] and name.startswith("rewards_")
    assert [c and c["column"] for c in out["reward_configs"]] == ["responses", "responses", None]
    first, second, third = out[name]
    assert [set(s) for s in first] == [{"score"}] * 3 and len(second) == 1 and third is None
    single = add_rewards({"instruction": [QUESTIONS[0]] * 3, "response": ANSWERS}, model=reward_model)
    assert [s["score"] for s in first] == pytest.approx(single["instruct_reward"], abs=1e-5)
    renamed = add_rewards(batch, model=reward_model, column="responses", output_column="rewards_tiny")
    assert list(renamed) == ["rewards_tiny", "reward_configs"]
    ds = Dataset.from_dict(batch).map(add_rewards, batched=True, fn_kwargs={"model": reward_model, "column": "responses"})
    assert ds[0][name] == first


def test_rewards_column_names():
    assert rewards_column_name("RLHFlow/ArmoRM-Llama3-8B-v0.1") == "rewards_armorm"
    assert rewards_column_name("sfairXC/FsfairX-LLaMA3-RM-v0.1") == "rewards_fsfairx"
    assert rewards_column_name("/tmp/x/Skywork-Reward-Llama-3.1-8B/") == "rewards_skywork"


def test_causal_lm_is_refused_clearly(base_model, tmp_path):
    with pytest.raises(RewardModelError, match="LlamaForCausalLM, not a sequence-classification reward model"):
        add_rewards({"instruction": ["hi"], "response": ["hello"]}, model=base_model)
    # The same checkpoint without `architectures`: it would load with a random head; refused too.
    bare = shutil.copytree(base_model, tmp_path / "bare")
    config = json.loads((bare / "config.json").read_text())
    del config["architectures"]
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(RewardModelError, match="no trained reward head"):
        add_rewards({"instruction": ["hi"], "response": ["hello"]}, model=str(bare))


CUSTOM_CODE = '''
from dataclasses import dataclass
import torch
from transformers import LlamaForSequenceClassification
from transformers.utils import ModelOutput


@dataclass
class RewardOutput(ModelOutput):
    score: torch.FloatTensor = None


class TinyGatedReward(LlamaForSequenceClassification):
    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask)
        return RewardOutput(score=out.logits[:, 0] + 100.0)
'''


@pytest.fixture(scope="module")
def custom_code_model(tmp_path_factory, reward_model):
    directory = tmp_path_factory.mktemp("tiny-armorm")
    shutil.copytree(reward_model, directory, dirs_exist_ok=True)
    (directory / "modeling_tiny.py").write_text(CUSTOM_CODE)
    config = json.loads((directory / "config.json").read_text())
    config["architectures"] = ["TinyGatedReward"]
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_tiny.TinyGatedReward"}
    (directory / "config.json").write_text(json.dumps(config))
    return str(directory)


def test_custom_code_needs_trust_remote_code(custom_code_model, reward_model):
    batch = {"instruction": QUESTIONS[:1], "response": ANSWERS[:1]}
    with pytest.raises(RewardModelError, match="trust_remote_code=True"):
        add_rewards(batch, model=custom_code_model)
    trusted = add_rewards(batch, model=custom_code_model, engine_options={"trust_remote_code": True})["instruct_reward"][0]
    plain = add_rewards(batch, model=reward_model)["instruct_reward"][0]
    assert trusted == pytest.approx(plain + 100.0, abs=1e-4)  # its own `.score` was used


def test_unknown_engine_option_is_one_clear_error(reward_model):
    batch = {"instruction": ["hi"], "response": ["hello"]}
    with pytest.raises(ValueError, match="unknown engine_options key 'tensor_parallel_size'.*batch_size, max_length"):
        add_rewards(batch, model=reward_model, engine_options={"tensor_parallel_size": 2})
    with pytest.raises(ValueError, match="reward_diff: unknown engine_options key 'batchsize'"):
        reward_diff(batch, model=reward_model, engine_options={"batchsize": 2})
    with pytest.raises(TypeError):  # the reward model's settings go in engine_options only
        add_rewards(batch, model=reward_model, trust_remote_code=True)


def test_unavailable_reward_model_is_one_clear_error():
    with pytest.raises(ModelNotAvailableError, match="not available"):
        add_rewards({"instruction": ["hi"], "response": ["hello"]}, model="someone/no-such-reward-model")


def test_reward_diff_with_a_base_model(reward_model, base_model):
    ds = Dataset.from_dict({"instruction": ["", *QUESTIONS], "response": ["", *ANSWERS]})
    out = ds.map(
        reward_diff, batched=True, batch_size=2,
        fn_kwargs={"model": reward_model, "base_model": base_model, "max_tokens": 6},
    )
    assert out["base_output"][0] is None and out["reward_difference"][0] is None
    for row in out.select(range(1, 4)):
        assert isinstance(row["base_output"], str) and row["base_model"] == base_model
        assert row["reward_difference"] == row["instruct_reward"] - row["base_reward"]
        assert all(stop not in row["base_output"] for stop in URIAL_STOP)
        assert row["base_configs"] == {"base_model": base_model, "model_source": base_model, "engine": "transformers",
                                       "dtype": "float32", "prompt": urial_prompt("{instruction}"), "max_tokens": 6}
        assert row["reward_configs"]["model"] == reward_model
    assert out["base_configs"][0] is None
    for name, feature in {**REWARD_FEATURES, **BASE_FEATURES}.items():
        assert out.features[name] == feature
    # The base answer is scored by the same reward model as the instruction's response.
    again = add_rewards({"instruction": QUESTIONS, "response": out["base_output"][1:]}, model=reward_model)
    assert again["instruct_reward"] == pytest.approx(out["base_reward"][1:], abs=1e-5)


def test_reward_diff_reuses_an_existing_instruct_reward(reward_model, base_model):
    batch = {"instruction": QUESTIONS[:2], "response": ANSWERS[:2], "instruct_reward": [10.0, 20.0], "reward_model": [reward_model] * 2}
    out = reward_diff(batch, model=reward_model, base_model=base_model, max_tokens=4)
    assert out["instruct_reward"] == [10.0, 20.0]
    assert out["reward_difference"] == [10.0 - out["base_reward"][0], 20.0 - out["base_reward"][1]]
    assert out["reward_configs"] == [None, None]  # reused: the batch does not say how they were scored
    again = reward_diff({**batch, "reward_configs": [{"model": reward_model}] * 2}, model=reward_model,
                        base_model=base_model, max_tokens=4)
    assert again["reward_configs"] == [{"model": reward_model}] * 2  # reused with the rewards


def test_published_rows_are_valid_input(reward_model, base_model):
    ds = published_dataset().select(range(2))
    out = ds.map(add_rewards, batched=True, fn_kwargs={"model": reward_model})
    assert out.features["instruct_reward"] == ds.features["instruct_reward"]
    assert out["reward_model"] == [reward_model] * 2 and out["instruct_reward"] != ds["instruct_reward"]
    diff = ds.map(reward_diff, batched=True, fn_kwargs={"model": reward_model, "base_model": base_model, "max_tokens": 4})
    assert diff["reward_difference"] == [a - b for a, b in zip(diff["instruct_reward"], diff["base_reward"])]


def test_urial_prompt_shape():
    prompt = urial_prompt("  How tall is Everest? ", bos="<bos>")
    assert prompt.startswith("<bos>Below are conversations")
    assert prompt.count("# User:\n") == 4 and prompt.count("# Assistant:\n") == 4
    assert prompt.endswith("# User:\nHow tall is Everest?\n\n# Assistant:\n")


def test_embedded_gemma_base_model_answers(reward_model):
    out = reward_diff({"instruction": ["What is the capital of France?"], "response": ["Paris."]}, model=reward_model, max_tokens=12)
    assert out["base_model"] == [EMBEDDED_BASE_MODEL]
    assert out["base_configs"][0]["base_model"] == EMBEDDED_BASE_MODEL
    assert "sha256:" in out["base_configs"][0]["model_source"]
    assert isinstance(out["base_output"][0], str) and out["base_output"][0].strip()
    assert "# User:" not in out["base_output"][0]
    assert out["reward_difference"][0] == out["instruct_reward"][0] - out["base_reward"][0]
