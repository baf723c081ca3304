"""Steps 1 and 2 through `Dataset.map`, on the real embedded model."""


import pytest
from datasets import Dataset


import magpie_datasets as magpie
from magpie_datasets import engines
from magpie_datasets.schema import (
    INSTRUCTION_FEATURES,
    RESPONSE_FEATURES,
    MissingColumnError,
)
from magpie_datasets.stages.generate import clean_instruction, text_issue
from magpie_datasets.templates import magpie_template

STEP1 = {"max_tokens": 40, "seed": 7}
STEP2 = {"max_tokens": 32}
ISSUES = {None, "empty", "max_tokens", "template_markup", "no_instruction"}


@pytest.fixture(scope="module")
def instructions():
    return magpie.empty(6).map(magpie.add_magpie_instructions, batched=True, batch_size=3, fn_kwargs=STEP1)


@pytest.fixture(scope="module")
def answered(instructions):
    return instructions.map(magpie.generate_responses, batched=True, batch_size=4, fn_kwargs=STEP2)


def test_empty_gives_stable_unique_placeholders():
    a, b = magpie.empty(5), magpie.empty(5)
    assert a["uuid"] == b["uuid"] and len(set(a["uuid"])) == 5
    assert len(magpie.empty(0)) == 0
    with pytest.raises(ValueError, match="row count"):
        magpie.empty(-1)


def test_step1_columns_types_and_configs(instructions):
    for name, feature in INSTRUCTION_FEATURES.items():
        assert instructions.features[name] == feature, name
    row = instructions[0]
    llm = engines.load_engine(None)
    template = magpie_template(llm.tokenizer)
    assert row["model"] == llm.model_id == magpie.EMBEDDED_CHAT_MODEL
    assert row["gen_input_configs"] == {
        "temperature": 1.0,
        "top_p": 1.0,
        "input_generator": llm.model_id,
        "seed": 7,
        "pre_query_template": template.pre_query,
        "instruction_prefix": None,
    }
    assert row["instruction_options"]["max_tokens"] == 40
    assert row["instruction_options"]["engine"] == "transformers"
    assert len(set(instructions["uuid"])) == 6
    assert set(instructions["uuid"]).isdisjoint(magpie.empty(6)["uuid"])
    assert set(instructions["instruction_issue"]) <= ISSUES
    # The model writes real queries: most rows are non-empty and free of template markup.
    texts = [t for t, issue in zip(instructions["instruction"], instructions["instruction_issue"]) if issue != "empty"]
    assert len(texts) >= 4
    assert all("<|im_start|>" not in t and "<|im_end|>" not in t for t in instructions["instruction"])


def test_step1_is_reproducible_with_a_seed(instructions):
    again = magpie.empty(6).map(
        magpie.add_magpie_instructions, batched=True, batch_size=3, fn_kwargs=STEP1, load_from_cache_file=False
    )
    assert again["instruction"] == instructions["instruction"]
    other = magpie.empty(6).map(
        magpie.add_magpie_instructions,
        batched=True,
        batch_size=3,
        fn_kwargs={**STEP1, "seed": 8},
        load_from_cache_file=False,
    )
    assert other["instruction"] != instructions["instruction"]
    # Batches get different seeds, so rows are not copies of each other.
    assert len(set(instructions["instruction"])) >= 4


def test_step2_columns_and_conversations(answered):
    for name, feature in RESPONSE_FEATURES.items():
        assert answered.features[name] == feature, name
    for row in answered:
        assert row["conversations"] == [
            {"from": "human", "value": row["instruction"]},
            {"from": "gpt", "value": row["response"]},
        ]
        assert row["instruction_length"] == len(row["instruction"])
        assert row["response_length"] == len(row["response"])
        assert row["response_issue"] in ISSUES
        config = row["gen_response_configs"]
        assert config["temperature"] == 0.0 and config["max_tokens"] == 32
        assert "{input}" in config["prompt"] and config["prompt"].endswith("assistant\n")
        assert "<|im_end|>" in config["stop_tokens"]
        assert config["output_generator"] == magpie.EMBEDDED_CHAT_MODEL
    usable = [r for r in answered if r["instruction_issue"] is None and r["response"]]
    assert usable, "no row got a non-empty response"


def test_step2_is_greedy_and_deterministic(answered):
    again = answered.map(magpie.generate_responses, batched=True, batch_size=4, fn_kwargs=STEP2, load_from_cache_file=False)
    assert again["response"] == answered["response"]


def test_max_tokens_is_flagged_not_dropped():
    ds = Dataset.from_dict({"instruction": ["Write a long story about a dragon.", ""]})
    out = ds.map(magpie.generate_responses, batched=True, fn_kwargs={"max_tokens": 3})
    assert len(out) == 2
    assert out["response_issue"] == ["max_tokens", "no_instruction"]
    assert out["response"][1] == ""


def test_second_map_hits_the_datasets_cache(tmp_path):
    ds = Dataset.from_dict({"instruction": ["Name a colour.", "Say hi."]})
    ds.save_to_disk(tmp_path / "in")
    ds = Dataset.load_from_disk(tmp_path / "in")  # a file-backed dataset, so map results are cached
    first = ds.map(magpie.generate_responses, batched=True, fn_kwargs=STEP2)
    engines._engines.clear()
    second = ds.map(magpie.generate_responses, batched=True, fn_kwargs=STEP2)
    assert second._fingerprint == first._fingerprint
    assert second["response"] == first["response"]
    assert not engines._engines, "the cached map loaded a model"
    other = ds.map(magpie.generate_responses, batched=True, fn_kwargs={"max_tokens": 33})
    assert other._fingerprint != first._fingerprint


def test_reanswers_rows_in_the_published_schema():
    published = Dataset.from_dict(
        {
            "uuid": ["u1"],
            "model": ["meta-llama/Meta-Llama-3-70B-Instruct"],
            "instruction": ["What is 2 + 2?"],
            "response": ["4"],
            "conversations": [[{"from": "human", "value": "What is 2 + 2?"}, {"from": "gpt", "value": "4"}]],
            "instruction_length": [14],
            "response_length": [1],
        }
    )
    out = published.map(
        magpie.generate_responses, batched=True, fn_kwargs={**STEP2, "model": magpie.EMBEDDED_CHAT_MODEL}
    )
    row = out[0]
    assert row["uuid"] == "u1" and row["model"] == "meta-llama/Meta-Llama-3-70B-Instruct"
    assert row["gen_response_configs"]["output_generator"] == magpie.EMBEDDED_CHAT_MODEL
    assert row["conversations"][1]["value"] == row["response"]
    # Named default: the instruction's own model, which is not available offline -> clear error.
    with pytest.raises(engines.ModelNotAvailableError, match="Meta-Llama-3-70B-Instruct"):
        published.map(magpie.generate_responses, batched=True, load_from_cache_file=False)


def test_missing_columns_name_the_stage():
    with pytest.raises(MissingColumnError, match="add_magpie_instructions"):
        Dataset.from_dict({"text": ["x"]}).map(magpie.generate_responses, batched=True)
    with pytest.raises(MissingColumnError, match=r"magpie.empty"):
        Dataset.from_dict({"text": ["x"]}).map(magpie.add_magpie_instructions, batched=True)


def test_clean_instruction_options():
    text = "How do I sort a list?\nAnswer: use sorted()."
    assert clean_instruction(text, early_stop=False, sanitize=False) == (text, False)
    assert clean_instruction(text, early_stop=True, sanitize=False) == ("How do I sort a list?", True)
    assert clean_instruction(text, early_stop=False, sanitize=True) == ("How do I sort a list?", True)
    assert clean_instruction("Solve x+1=2.\n## Step 1: subtract", False, True) == ("Solve x+1=2.", True)
    assert clean_instruction("  Explain Answers in exams.  ", False, True) == ("Explain Answers in exams.", False)


def test_text_issue():
    assert text_issue("  ", "stop", ()) == "empty"
    assert text_issue("hi <|im_end|>", "stop", ("<|im_end|>",)) == "template_markup"
    assert text_issue("hi", "length", ()) == "max_tokens"
    assert text_issue("hi", "stop", ("<|im_end|>",)) is None


def _build(batch_size: int, num_proc: int | None = None) -> Dataset:
    step2 = {"max_tokens": 16, "temperature": 0.8, "seed": 3}  # sampled, so step 2's seeds count too
    ds = magpie.empty(16).map(
        magpie.add_magpie_instructions, batched=True, batch_size=batch_size, num_proc=num_proc,
        fn_kwargs={"max_tokens": 16, "seed": 5}, load_from_cache_file=False,
    )
    return ds.map(magpie.generate_responses, batched=True, batch_size=batch_size, num_proc=num_proc,
                  fn_kwargs=step2, load_from_cache_file=False)


def test_rows_do_not_depend_on_batch_boundaries():
    # each row is seeded by (seed, its uuid): the CLI's batches of 64 and Dataset.map's 1000 agree
    runs = {size: _build(size) for size in (8, 16, 1000)}
    reference = runs[1000]
    assert len(set(reference["instruction"])) >= 10  # distinct samples, not one seed copied
    for size, ds in runs.items():
        assert ds["instruction"] == reference["instruction"], size
        assert ds["response"] == reference["response"], size


def test_early_stop_stops_generation_at_the_first_newline():
    from magpie_datasets.engines.base import generated_tokens

    def run(early_stop):
        before = generated_tokens()
        ds = magpie.empty(8).map(
            magpie.add_magpie_instructions, batched=True,
            fn_kwargs={"max_tokens": 64, "seed": 1, "early_stop": early_stop}, load_from_cache_file=False,
        )
        return ds, generated_tokens() - before

    full, full_tokens = run(False)
    early, early_tokens = run(True)
    assert any("\n" in text for text in full["instruction"])  # the seed gives multi-line samples
    assert all("\n" not in text for text in early["instruction"])
    assert all(row["early_stop"] for row in early["instruction_options"])
    assert early_tokens < full_tokens  # the engine stopped there, not cut afterwards
    for cut, whole in zip(early["instruction"], full["instruction"]):
        assert cut == whole.split("\n", 1)[0].strip() or not cut  # same sample, up to its first newline


PREFIX = "Write a Python function that"


def test_instruction_prefix_starts_every_instruction_and_the_model_continues_it():
    """Magpie-Prefill: 16 rows of step 1 on the embedded model, the user turn started with a prefix."""
    out = magpie.empty(16).map(magpie.add_magpie_instructions, batched=True,
                               fn_kwargs={"instruction_prefix": PREFIX, "max_tokens": 24, "seed": 5})
    for row in out:
        assert row["instruction"].startswith(PREFIX + " ") or row["instruction"].startswith(PREFIX + ","), row
        assert len(row["instruction"]) > len(PREFIX) + 3 and row["instruction_issue"] != "empty"  # continued
        assert row["gen_input_configs"]["instruction_prefix"] == PREFIX
        assert row["gen_input_configs"]["pre_query_template"] == magpie_template(engines.load_engine().tokenizer).pre_query
    assert len(set(out["instruction"])) > 8  # sampled continuations, not one text


def test_an_instruction_prefix_mix_is_drawn_per_row_and_recorded():
    mix = [{"prefix": PREFIX, "weight": 3}, {"prefix": "Implement a class that"}]
    step = {"instruction_prefix": mix, "max_tokens": 8, "seed": 5}
    out = magpie.empty(12).map(magpie.add_magpie_instructions, batched=True, fn_kwargs=step)
    drawn = [row["gen_input_configs"]["instruction_prefix"] for row in out]
    assert set(drawn) == {PREFIX, "Implement a class that"}
    assert all(row["instruction"].startswith(p) for row, p in zip(out, drawn))
    again = magpie.empty(12).map(magpie.add_magpie_instructions, batched=True, batch_size=5, fn_kwargs=step)
    assert [row["gen_input_configs"]["instruction_prefix"] for row in again] == drawn  # per row, whatever the batch


def test_a_bad_instruction_prefix_fails_before_the_model_loads(monkeypatch):
    from magpie_datasets.engines.models import ModelSpec

    monkeypatch.setattr(ModelSpec, "load", lambda self: pytest.fail("the model loaded before the mix was checked"))
    with pytest.raises(ValueError, match=r"instruction_prefix\[0\] must be a dict with a string `prefix`"):
        magpie.add_magpie_instructions({"uuid": ["u"]}, instruction_prefix=[{"text": PREFIX}])
    with pytest.raises(ValueError, match="instruction_prefix lists a prefix twice"):
        magpie.add_magpie_instructions({"uuid": ["u"]}, instruction_prefix=[{"prefix": "a"}, {"prefix": "a"}])
