"""Reasoning data: chat-template keyword arguments through both steps, recorded; thinking split
from the answer (`split_reasoning`); the magpie-reasoning recipe scaled down to the embedded model."""

from __future__ import annotations

import doctest
import json
from pathlib import Path


import datasets
import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM

import magpie_datasets as magpie
from magpie_datasets import recipes
from magpie_datasets.schema import MissingColumnError
from magpie_datasets.stages.reasoning import REASONING_FEATURES
from magpie_datasets.stages import reasoning
from magpie_datasets.stages.reasoning import prompt_state, split_reasoning, split_text
from magpie_datasets.templates import (
    THINK_MARKERS,
    TemplateError,
    chat_prompt,
    magpie_template,
    next_user_prefix,
    reasoning_markers,
    template_kwargs_record,
)
from tests.chat_tokenizers import fixture, fixture_tokenizer, make_tokenizer

ROOT = Path(__file__).parents[1]
QWEN3 = "Qwen__Qwen3-1.7B"
NO_THINKING = {"enable_thinking": False}
USER = [{"role": "user", "content": "{input}"}]

# DeepSeek-R1's way, in a minimal template of ours: the generation prompt opens <think> itself.
R1_STYLE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<｜User｜>{{ m['content'] }}"
    "{% else %}<｜Assistant｜>{{ m['content'].split('</think>')[-1] }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def r1_tokenizer():
    return make_tokenizer(R1_STYLE, bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>",
                          specials=["<｜User｜>", "<｜Assistant｜>"], name="test/r1-style")


def tiny_model(directory: Path, tokenizer) -> str:
    """A 2-layer Llama with random weights and `tokenizer`'s chat template, saved as a local model."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


# ----------------------------------------------------------------------------- chat-template kwargs


def test_qwen3_enable_thinking_false_renders_an_empty_think_block_in_step_2_only():
    tok = fixture_tokenizer(fixture(QWEN3))
    assert chat_prompt(tok, USER) == "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
    assert chat_prompt(tok, USER, chat_template_kwargs=NO_THINKING) == (
        "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    thinking, plain = magpie_template(tok), magpie_template(tok, chat_template_kwargs=NO_THINKING)
    # step 1's pre-query is the same; what follows the user text is the template's no-thinking prompt
    assert thinking.pre_query == plain.pre_query == "<|im_start|>user\n"
    assert plain.post_query == "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert thinking.post_query == "<|im_end|>\n<|im_start|>assistant\n"
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert next_user_prefix(tok, turns, NO_THINKING) == next_user_prefix(tok, turns)  # no generation prompt there


def test_a_template_keyword_reaches_every_rendering():
    tok = make_tokenizer(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% if terse %}Briefly: {% endif %}{% endif %}",
        eos="<|end|>", specials=["<|user|>", "<|assistant|>", "<|system|>"],
    )
    assert chat_prompt(tok, USER, chat_template_kwargs={"terse": True}) == "<|user|>{input}<|end|><|assistant|>Briefly: "
    assert chat_prompt(tok, USER) == "<|user|>{input}<|end|><|assistant|>"
    assert magpie_template(tok, chat_template_kwargs={"terse": True}).post_query == "<|end|><|assistant|>Briefly: "


@pytest.mark.parametrize(
    "given, message",
    [
        ("enable_thinking=False", "must map names to values"),
        ({"add_generation_prompt": False}, "cannot set 'add_generation_prompt'"),
        ({"when": object()}, "must be JSON values"),
    ],
)
def test_bad_chat_template_kwargs_fail_with_one_clear_error(given, message):
    with pytest.raises(TemplateError, match=message):
        chat_prompt(fixture_tokenizer(fixture(QWEN3)), USER, chat_template_kwargs=given)


def test_kwargs_are_recorded_as_sorted_json():
    assert template_kwargs_record({"b": [1, 2], "a": None}) == '{"a": null, "b": [1, 2]}'
    assert template_kwargs_record(None) is None and template_kwargs_record({}) is None


def test_kwargs_pass_through_both_steps_and_are_recorded(tmp_path):
    """A tiny model with Qwen3's real template: the prompt each step used and the row's record."""
    model = tiny_model(tmp_path / "qwen3", fixture_tokenizer(fixture(QWEN3)))
    step1 = {"model": model, "max_tokens": 4, "chat_template_kwargs": NO_THINKING}
    ds = magpie.empty(3).map(magpie.add_magpie_instructions, batched=True, fn_kwargs=step1)
    assert ds["instruction_options"][0]["chat_template_kwargs"] == '{"enable_thinking": false}'
    assert ds["gen_input_configs"][0]["pre_query_template"] == "<|im_start|>user\n"
    ds = ds.map(lambda row: {"instruction": "hello world"})  # random weights: a known question

    answered = ds.map(magpie.generate_responses, batched=True,
                      fn_kwargs={"max_tokens": 4, "chat_template_kwargs": NO_THINKING})
    config = answered[0]["gen_response_configs"]
    assert config["prompt"] == "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert config["chat_template_kwargs"] == '{"enable_thinking": false}'
    assert config["reasoning_markers"] == ["<think>", "</think>"]
    assert config["output_generator"] == model
    default = ds.map(magpie.generate_responses, batched=True, fn_kwargs={"max_tokens": 4})[0]["gen_response_configs"]
    assert default["prompt"] == "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
    assert default["chat_template_kwargs"] is None and default["reasoning_markers"] == ["<think>", "</think>"]

    # the record survives Arrow and Parquet (what the Hub stores)
    answered.to_parquet(tmp_path / "rows.parquet")
    back = Dataset.from_parquet(str(tmp_path / "rows.parquet"))
    assert json.loads(back[0]["gen_response_configs"]["chat_template_kwargs"]) == NO_THINKING
    assert json.loads(back[0]["instruction_options"]["chat_template_kwargs"]) == NO_THINKING

    # thinking was switched off by the template: every row's reasoning is the empty block
    split = answered.map(split_reasoning, batched=True)
    assert split["reasoning"] == ["", "", ""]
    assert split["response"] == [raw.strip() for raw in answered["response"]]
    assert split["response_raw"] == answered["response"]
    assert {c["markers_from"] for c in split["reasoning_configs"]} == {"template"}

    samples = ds.map(magpie.add_response_samples, batched=True,
                     fn_kwargs={"k": 2, "max_tokens": 3, "chat_template_kwargs": NO_THINKING})
    assert samples[0]["gen_response_configs"]["prompt"] == config["prompt"]
    assert samples[0]["gen_response_configs"]["chat_template_kwargs"] == '{"enable_thinking": false}'
    turns = answered.map(magpie.add_turns, batched=True,
                         fn_kwargs={"max_tokens": 3, "response_max_tokens": 3, "chat_template_kwargs": NO_THINKING})
    assert turns[0]["gen_mt_configs"]["chat_template_kwargs"] == '{"enable_thinking": false}'


# ----------------------------------------------------------------------------- reasoning markers


def test_markers_come_from_the_template_where_it_names_them():
    assert reasoning_markers(fixture_tokenizer(fixture(QWEN3))) == ("<think>", "</think>")
    granite = fixture_tokenizer(fixture("ibm-granite__granite-3.2-2b-instruct"))
    assert reasoning_markers(granite) == ("Here is my thought process:", "Here is my response:")
    assert reasoning_markers(r1_tokenizer()) == THINK_MARKERS  # named in the source only
    for name in ("meta-llama__Llama-3.1-8B-Instruct", "Qwen__Qwen2.5-7B-Instruct", "google__gemma-2-2b-it"):
        assert reasoning_markers(fixture_tokenizer(fixture(name))) is None, name


@pytest.mark.parametrize(
    "text, opened, closed, expected",
    [
        ("Paris.", False, False, (None, "Paris.", None)),
        ("<think>\nThe capital.\n</think>\n\nParis.", False, False, ("The capital.", "Paris.", None)),
        ("The capital.\n</think>\n\nParis.", True, False, ("The capital.", "Paris.", None)),
        ("The capital.</think>Paris.", False, False, ("The capital.", "Paris.", None)),  # pre-fill not recorded
        ("<think>The capital.</think>Paris.", True, False, ("The capital.", "Paris.", None)),  # repeated opener
        ("<think>The capital is", False, False, ("The capital is", "", "unterminated")),
        ("The capital is", True, False, ("The capital is", "", "unterminated")),
        ("Paris.", False, True, ("", "Paris.", None)),
        ("<think>\n\n</think>\n\nParis.", False, False, ("", "Paris.", None)),
        ("<think>Hmm.</think>  ", False, False, ("Hmm.", "", "no_answer")),
        ("Sure. <think>Hmm.</think> Paris.", False, False, ("Hmm.", "Sure.  Paris.", None)),
        ("", False, False, (None, "", None)),
        (None, True, False, ("", "", "unterminated")),
    ],
)
def test_split_text(text, opened, closed, expected):
    assert split_text(text, opened=opened, closed=closed) == expected


def test_split_text_with_the_templates_own_markers():
    granite = ("Here is my thought process:", "Here is my response:")
    text = "Here is my thought process:\nAdd them.\nHere is my response:\n4"
    assert split_text(text, granite) == ("Add them.", "4", None)


def test_prompt_state_reads_the_recorded_step_2_prompt():
    r1 = chat_prompt(r1_tokenizer(), USER)
    assert r1 == "<｜begin▁of▁sentence｜><｜User｜>{input}<｜Assistant｜><think>\n"
    assert prompt_state(r1, THINK_MARKERS) == (True, False)
    qwen3 = fixture_tokenizer(fixture(QWEN3))
    assert prompt_state(chat_prompt(qwen3, USER, chat_template_kwargs=NO_THINKING), THINK_MARKERS) == (False, True)
    assert prompt_state(chat_prompt(qwen3, USER), THINK_MARKERS) == (False, False)
    assert prompt_state("<think>{input}", THINK_MARKERS) == (False, False)  # before the instruction: not ours
    assert prompt_state(None, THINK_MARKERS) == (False, False)


def test_split_reasoning_stage_on_a_template_that_opens_think(tmp_path):
    """DeepSeek-R1's way: step 2 records the pre-filled prompt, the output has only </think>."""
    model = tiny_model(tmp_path / "r1", r1_tokenizer())
    ds = Dataset.from_dict({"instruction": ["hello", "world", "hello world"]})
    answered = ds.map(magpie.generate_responses, batched=True, fn_kwargs={"model": model, "max_tokens": 3})
    config = answered[0]["gen_response_configs"]
    assert config["prompt"].endswith("<｜Assistant｜><think>\n") and config["reasoning_markers"] == ["<think>", "</think>"]
    # what an R1 model writes after that prompt, in place of the random tiny model's words
    raw = ["Two words.\n</think>\n\nhello world", "Still thinking about", "</think>world"]
    answered = answered.remove_columns("response").add_column("response", raw)
    out = answered.map(split_reasoning, batched=True)
    assert out["reasoning"] == ["Two words.", "Still thinking about", ""]
    assert out["response"] == ["hello world", "", "world"]
    assert out["reasoning_issue"] == [None, "unterminated", None]
    assert out["response_raw"] == raw and out["conversations"] == answered["conversations"]
    assert out[0]["reasoning_configs"] == {"column": "response", "start": "<think>", "end": "</think>",
                                           "markers_from": "template", "prompt_opens": True}
    for name, feature in REASONING_FEATURES.items():
        assert out.features[name] == feature, name
    again = out.map(split_reasoning, batched=True)  # splits response_raw again: the same columns
    assert again["reasoning"] == out["reasoning"] and again["response"] == out["response"]
    assert again["response_raw"] == raw


def test_split_reasoning_without_configs_and_with_given_markers():
    batch = {"response": ["<think>a</think>b", "Here is my thought process: x Here is my response: y", None]}
    default = split_reasoning(batch)
    assert default["reasoning"] == ["a", None, None] and default["response"] == ["b", batch["response"][1], ""]
    assert [c["markers_from"] for c in default["reasoning_configs"]] == ["default"] * 3
    given = split_reasoning(batch, markers=["Here is my thought process:", "Here is my response:"])
    assert given["reasoning"] == [None, "x", None] and given["response"][1] == "y"
    assert given["reasoning_configs"][1]["markers_from"] == "given"
    assert given["response"][0] == "<think>a</think>b"


@pytest.mark.parametrize("markers", ["<think>", ["<think>"], ["<t>", "<t>"], ["", "</t>"]])
def test_bad_markers_fail_with_one_clear_error(markers):
    with pytest.raises(ValueError, match=r"markers must be \[start, end\]"):
        split_reasoning({"response": ["x"]}, markers=markers)


def test_split_reasoning_names_the_stage_that_writes_response():
    with pytest.raises(MissingColumnError, match="Run generate_responses first"):
        split_reasoning({"instruction": ["x"]})


def test_doctests_of_the_reasoning_module():
    result = doctest.testmod(reasoning, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# ----------------------------------------------------------------------------- the recipe


def test_the_recipe_has_the_published_models_and_splits_after_step_2():
    recipe = recipes.load_recipe(ROOT / "builders" / "magpie-reasoning.yaml")
    assert recipe.models == {"generator": "meta-llama/Llama-3.3-70B-Instruct",
                             "responder": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"}
    assert recipe.num_rows == 250_000 and recipe.license == "llama3.3"
    names = [s.stage for s in recipe.stages]
    assert names.index("split_reasoning") == names.index("generate_responses") + 1
    step2 = recipes.resolve_kwargs(recipe, recipe.stages[names.index("generate_responses")])
    assert step2["model"] == "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"


@pytest.mark.slow
def test_the_recipe_runs_scaled_down_on_the_embedded_model():
    """Minutes on 2 busy cores: two rows, 16 tokens a step, on SmolLM2 (offline)."""
    recipe = recipes.load_recipe(ROOT / "builders" / "magpie-reasoning.yaml")
    ds, log = recipes.run_recipe(recipe, num_rows=2, model="embedded", max_tokens=16)
    assert len(ds) == 2 and [entry["stage"] for entry in log] == [
        "empty", "add_magpie_instructions", "generate_responses", "split_reasoning", "tag_language"]
    assert {"reasoning", "response", "response_raw", "reasoning_issue", "reasoning_configs", "language"} <= set(ds.features)
    # SmolLM2 names no reasoning markers and writes none: the answer is the whole text
    assert ds["gen_response_configs"][0]["reasoning_markers"] is None
    assert ds["gen_response_configs"][0]["temperature"] == 0.6 and ds["gen_response_configs"][0]["max_tokens"] == 16
    for row in ds:
        assert row["reasoning_configs"]["markers_from"] == "default"
        if "<think>" not in row["response_raw"] and "</think>" not in row["response_raw"]:
            assert row["reasoning"] is None and row["response"] == row["response_raw"].strip()


def test_the_generate_command_passes_chat_template_kwargs_to_both_steps():
    from magpie_datasets import cli

    parser = cli.build_parser()
    args = parser.parse_args(["generate", "--num-rows", "2", "--output", "x",
                              "--chat-template-kwargs", '{"enable_thinking": false}'])
    (_, step1), (_, step2) = cli.generate_steps(args)
    assert step1["chat_template_kwargs"] == step2["chat_template_kwargs"] == NO_THINKING
    plain = cli.generate_steps(parser.parse_args(["generate", "--num-rows", "2", "--output", "x"]))
    assert all("chat_template_kwargs" not in kwargs for _, kwargs in plain)
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--num-rows", "2", "--output", "x", "--chat-template-kwargs", "[1]"])
