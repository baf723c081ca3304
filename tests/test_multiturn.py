"""Multi-turn (MAGPIE-MT): the follow-up prompts on real chat templates, and `add_turns` on real models."""



import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM

import magpie_datasets as magpie
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.multiturn import (
    MT_SYSTEM_PROMPT,
    add_turns,
    follow_up_prefix,
    turn_features,
)
from magpie_datasets.templates import chat_prompt
from tests.chat_tokenizers import fixture, fixture_tokenizer

CONVERSATION = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}]
MT = MT_SYSTEM_PROMPT

# The conversation, then an opened user turn, under the MT system prompt where the template has a
# system role. Exactly one BOS, wherever the template puts the system prompt.
FOLLOW_UP = {
    "meta-llama__Meta-Llama-3-8B-Instruct": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + MT + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n",
        MT,
    ),
    "HuggingFaceTB__SmolLM2-1.7B-Instruct": (
        "<|im_start|>system\n" + MT + "<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n",
        MT,
    ),
    # No system role ("System role not supported"): the bare conversation, recorded as None.
    "google__gemma-2-2b-it": (
        "<bos><start_of_turn>user\nHi?<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\n",
        None,
    ),
    # Mistral writes the system prompt at the start of the last user turn: the one being sampled.
    "mistralai__Mistral-7B-Instruct-v0.3": ("<s>[INST] Hi?[/INST] Hello!</s>[INST] " + MT + "\n\n", MT),
    "microsoft__Phi-3-mini-4k-instruct": (
        "<s><|system|>\n" + MT + "<|end|>\n<|user|>\nHi?<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\n",
        MT,
    ),
}


@pytest.mark.parametrize("name", sorted(FOLLOW_UP))
def test_follow_up_prefix_on_real_templates(name):
    tokenizer = fixture_tokenizer(fixture(name))
    prefix, used = follow_up_prefix(tokenizer, CONVERSATION)
    assert (prefix, used) == FOLLOW_UP[name]
    if tokenizer.bos_token:
        assert prefix.startswith(tokenizer.bos_token) and prefix.count(tokenizer.bos_token) == 1
    # The answer to the follow-up is prompted without the MT system prompt.
    answer_prompt = chat_prompt(tokenizer, [*CONVERSATION, {"role": "user", "content": "Why?"}])
    assert MT not in answer_prompt and "Why?" in answer_prompt


def test_follow_up_prefix_without_system_prompt_is_the_bare_conversation():
    tokenizer = fixture_tokenizer(fixture("meta-llama__Meta-Llama-3-8B-Instruct"))
    prefix, used = follow_up_prefix(tokenizer, CONVERSATION, system_prompt=None)
    assert used is None
    assert prefix == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    )


def test_bad_input_fails_clearly():
    with pytest.raises(MissingColumnError, match="generate_responses"):
        add_turns({"instruction": ["Hi?"]})
    with pytest.raises(ValueError, match="num_turns >= 2"):
        add_turns({"instruction": ["Hi?"], "response": ["Hello!"]}, num_turns=1)


def _tiny_chat_model(tmp_path, name):
    """A 2-layer Llama with random weights and a fixture chat template, saved as a local model dir."""
    tokenizer = fixture_tokenizer(fixture(name))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path / name
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("name", ["meta-llama__Meta-Llama-3-8B-Instruct", "google__gemma-2-2b-it"])
def test_add_turns_runs_on_other_template_families(tmp_path, name):
    model = _tiny_chat_model(tmp_path, name)
    ds = Dataset.from_dict({"instruction": ["hello world", "world"], "response": ["hello", "hello hello"]})
    out = ds.map(add_turns, batched=True, fn_kwargs={"model": model, "num_turns": 3, "max_tokens": 6, "response_max_tokens": 6})
    assert out[0]["gen_mt_configs"]["system_prompt"] == FOLLOW_UP[name][1]
    assert out[0]["gen_mt_configs"]["input_generator"] == model
    for row in out:
        # Random weights rarely end a turn within 6 tokens, so most rows stop early: marked, not cut.
        complete = len(row["conversations"]) // 2
        if row["turns_issue"] is None:
            assert complete == 3 and row["response_3"] is not None
        else:
            failed = row["turns_issue"].split(":")[0]  # e.g. "instruction_2"
            assert row[failed] is not None  # the failed text is kept in its column
            assert complete == int(failed.rsplit("_", 1)[1]) - 1
        assert row["conversations"][:2] == [{"from": "human", "value": row["instruction"]}, {"from": "gpt", "value": row["response"]}]


FIRST_TURNS = {  # turn 1 as steps 1-2 write it; rows 0-1 were unusable there
    "uuid": ["u0", "u1", "u2", "u3"],
    "model": [magpie.EMBEDDED_CHAT_MODEL] * 4,
    "instruction": ["", "Tell me", "What is the capital of France?", "How do I boil an egg?"],
    "instruction_issue": ["empty", "max_tokens", None, None],
    "response": ["", "", "The capital of France is Paris.", "Put the egg in boiling water for about 9 minutes."],
    "response_issue": ["no_instruction", "no_instruction", None, None],
}
MT_KWARGS = {"num_turns": 3, "max_tokens": 32, "response_max_tokens": 48, "seed": 5}


@pytest.fixture(scope="module")
def three_turns():
    """Turns 2-3 on the embedded model; the first batch has only rows that cannot be continued."""
    ds = Dataset.from_dict(FIRST_TURNS)
    return ds, ds.map(add_turns, batched=True, batch_size=2, fn_kwargs=MT_KWARGS)


def test_three_turns_on_the_embedded_model(three_turns):
    _, out = three_turns
    for name, feature in turn_features(3).items():
        assert out.features[name] == feature, name
    # Batch 1 had nothing to continue (all-None turn columns) and batch 2 still typed fine.
    assert out["turns_issue"][:2] == ["instruction: empty", "instruction: max_tokens"]
    assert out["instruction_2"][:2] == [None, None]
    assert out["conversations"][1] == [{"from": "human", "value": "Tell me"}, {"from": "gpt", "value": ""}]
    config = out[2]["gen_mt_configs"]
    assert config["system_prompt"] == MT and config["input_generator"] == magpie.EMBEDDED_CHAT_MODEL
    assert config["response_max_tokens"] == 48 and config["seed"] == 5 and config["early_stop"] is False
    for row in out.select([2, 3]):
        assert row["conversations"][:2] == [
            {"from": "human", "value": row["instruction"]}, {"from": "gpt", "value": row["response"]}
        ]
        # The small model writes a follow-up (maybe a run-on, then marked) after a real first turn.
        assert row["instruction_2"] and row["instruction_2"] != row["instruction"]
        assert "<|im_" not in row["instruction_2"]
        if row["turns_issue"] is None:
            texts = [row[c] for c in ("instruction", "response", "instruction_2", "response_2", "instruction_3", "response_3")]
            assert [t["value"] for t in row["conversations"]] == texts
            assert [t["from"] for t in row["conversations"]] == ["human", "gpt"] * 3
            assert all(t.strip() and "<|im_" not in t for t in texts)
        else:
            failed = row["turns_issue"].split(":")[0]
            assert row[failed] is not None  # the failed text is kept in its column
            assert len(row["conversations"]) == 2 * (int(failed.rsplit("_", 1)[1]) - 1)


def test_add_turns_is_reproducible(three_turns):
    """Same seed, same follow-up, whatever else was in the batch (the batch seed keys on the first row)."""
    ds, out = three_turns
    again = ds.select([2]).map(add_turns, batched=True, fn_kwargs={**MT_KWARGS, "num_turns": 2})
    assert again["instruction_2"] == out["instruction_2"][2:3]


def test_the_answer_penalty_can_leave_the_conversation_out(three_turns):
    """response_penalize_prompt=False: turn 2's answer is penalised for its own tokens only, so it
    differs from the one penalised for every token of turn 1 too; both settings are recorded."""
    ds, _ = three_turns
    kwargs = {**MT_KWARGS, "num_turns": 2, "response_repetition_penalty": 1.5}
    whole, own = (
        ds.select([2, 3]).map(add_turns, batched=True, fn_kwargs={**kwargs, "response_penalize_prompt": flag})
        for flag in (True, False)
    )
    assert whole["instruction_2"] == own["instruction_2"]  # the same follow-ups were asked
    assert whole["response_2"] != own["response_2"]
    assert [c["response_penalize_prompt"] for c in whole["gen_mt_configs"]] == [True, True]
    assert [c["response_penalize_prompt"] for c in own["gen_mt_configs"]] == [False, False]
    assert own[0]["gen_mt_configs"]["response_repetition_penalty"] == 1.5


def test_an_instruction_prefix_starts_turn_one_only(monkeypatch):
    """Magpie-Prefill with multi-turn: the prefix opens turn 1 (step 1); the follow-up prompts are the
    conversation and an opened user turn, with nothing of the prefix after that opening."""
    from magpie_datasets.engines import load_engine

    prefix = "Write a Python function that"
    ds = magpie.empty(4).map(magpie.add_magpie_instructions, batched=True, fn_kwargs={
        "instruction_prefix": prefix, "max_tokens": 64, "early_stop": True, "seed": 3})
    # a short fixed answer stands for step 2: the follow-up prompts are what is checked here
    ds = ds.add_column("response", ["def f(x):\n    return x"] * len(ds)).add_column("response_issue", [None] * len(ds))
    rows = [i for i, issue in enumerate(ds["instruction_issue"]) if issue is None]
    assert rows and all(ds["instruction"][i].startswith(prefix + " ") for i in rows)

    engine = load_engine(None, "transformers")
    prompts: list[str] = []
    generate = engine.generate

    def recording(texts, sampling, seeds=None):
        prompts.extend(texts)
        return generate(texts, sampling, seeds)

    monkeypatch.setattr(engine, "generate", recording)
    out = ds.map(add_turns, batched=True, fn_kwargs={"num_turns": 2, "max_tokens": 16, "response_max_tokens": 16, "seed": 3})
    follow_ups = [p for p in prompts if p.endswith("<|im_start|>user\n")]  # turn 2's question prompts
    assert follow_ups
    assert len(follow_ups) == sum(issue is None and out["response_issue"][i] is None
                                  for i, issue in enumerate(out["instruction_issue"]))
    for prompt in follow_ups:
        assert prompt.count(prefix) == 1  # turn 1's own text, once; not after the opened user turn
        assert prompt.index(prefix) < prompt.rindex("<|im_start|>assistant\n")
    for i in rows:
        assert out["conversations"][i][0]["value"].startswith(prefix)
