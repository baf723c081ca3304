"""Every published schema in: one row per variant (built here from the published cards), through
`normalize` and through each stage that reads the columns it carries, on tiny real models."""

import pytest
from datasets import Dataset, Features, List, Value

import magpie_datasets as magpie
from magpie_datasets import filters
from magpie_datasets.schema import (
    GEN_INPUT_CONFIGS,
    NORMALIZED_FEATURES,
    MissingColumnError,
)
from magpie_datasets.stages.columns import VARIANTS, renames, variants_of
from magpie_datasets.stages.columns import require_reads
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model

_s, _f, _i = Value("string"), Value("float64"), Value("int64")
TURNS = List({"from": _s, "value": _s})
MESSAGES = List({"content": _s, "role": _s})  # the DPO cards list `content` first
TAGS = {"intent": _s, "knowledge": _s, "difficulty": _s, "input_quality": _s, "quality_explanation": _s,
        "task_category": _s}
QUESTION = "How do I reverse a list in Python?"
ANSWER = "Use reversed(items) or items[::-1]; both leave the original list untouched."
TAG_VALUES = {"intent": "The user wants to reverse a list.", "knowledge": "Python lists.", "difficulty": "easy",
              "input_quality": "good", "quality_explanation": "Clear.", "task_category": "Coding & Debugging"}
CONVERSATION = [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": ANSWER}]


def one_row(features: dict, **values) -> Dataset:
    return Dataset.from_list([values], features=Features(features))


# Llama-3-Magpie-Air-3M-v0.1: input / output / gen_input_config {temperature, top_p}, *_length.
AIR = one_row(
    {"uuid": _s, "model": _s, "gen_input_config": {"temperature": _f, "top_p": _f}, "input": _s, "output": _s,
     "conversations": TURNS, "task_category": _s, "difficulty": _s, "intent": _s, "knowledge": _s,
     "input_quality": _s, "quality_explanation": _s, "llama_guard_2": _s, "reward_model": _s,
     "instruct_reward": _f, "base_output": _s, "base_reward": _f, "reward_difference": _f,
     "min_neighbor_distance": _f, "repeat_count": _i, "min_similar_uuid": _s, "input_length": _i,
     "output_length": _i},
    uuid="a-1", model="meta-llama/Meta-Llama-3-8B-Instruct", gen_input_config={"temperature": 1.0, "top_p": 1.0},
    input=QUESTION, output=ANSWER, conversations=CONVERSATION, **{**TAG_VALUES, "difficulty": "medium"},
    llama_guard_2="safe", reward_model="sfairXC/FsfairX-LLaMA3-RM-v0.1", instruct_reward=1.5,
    base_output="Lists.", base_reward=-3.0, reward_difference=4.5, min_neighbor_distance=0.4, repeat_count=0,
    min_similar_uuid=None, input_length=len(QUESTION), output_length=len(ANSWER),
)

# The Phi-3 / Qwen2 Pro sets: the current columns, `extract_input` in place of `pre_query_template`.
PHI3_CONFIGS = {"temperature": _f, "top_p": _f, "input_generator": _s, "seed": Value("null"), "extract_input": _s}
PHI3 = one_row(
    {"uuid": _s, "model": _s, "gen_input_configs": PHI3_CONFIGS, "instruction": _s, "response": _s,
     "conversations": TURNS, **TAGS, "llama_guard_2": _s, "instruct_reward": _f, "min_neighbor_distance": _f,
     "min_similar_uuid": _s, "instruction_length": _i, "response_length": _i, "language": _s},
    uuid="p-1", model="microsoft/Phi-3-medium-4k-instruct",
    gen_input_configs={"temperature": 1.0, "top_p": 1.0, "input_generator": "microsoft/Phi-3-medium-4k-instruct",
                       "seed": None, "extract_input": "<|user|>\n"},
    instruction=QUESTION, response=ANSWER, conversations=CONVERSATION, **TAG_VALUES, llama_guard_2="safe",
    instruct_reward=2.0, min_neighbor_distance=0.3, min_similar_uuid=None, instruction_length=len(QUESTION),
    response_length=len(ANSWER), language="EN",
)

# Magpie-Reasoning-V2: `conversation_id`, no uuid.
REASONING_V2 = one_row(
    {"conversation_id": _s, "instruction": _s, "response": _s, "conversations": TURNS,
     "gen_input_configs": {"temperature": _f, "top_p": _f, "input_generator": _s, "seed": Value("null"),
                           "pre_query_template": _s}, **TAGS, "language": _s},
    conversation_id="c-1", instruction=QUESTION, response=ANSWER, conversations=CONVERSATION,
    gen_input_configs={"temperature": 1.0, "top_p": 1.0, "input_generator": "meta-llama/Llama-3.3-70B-Instruct",
                       "seed": None, "pre_query_template": "<|start_header_id|>user<|end_header_id|>\n\n"},
    **TAG_VALUES, language="EN",
)

# The *-DPO-* sets: responses, rewards_armorm [{score}], chosen / rejected as whole conversations.
CHOSEN = [{"content": QUESTION, "role": "user"}, {"content": ANSWER, "role": "assistant"}]
REJECTED = [{"content": QUESTION, "role": "user"}, {"content": "Lists cannot be reversed.", "role": "assistant"}]
DPO = one_row(
    {"uuid": _s, "instruction": _s, "gen_input_configs": GEN_INPUT_CONFIGS, **TAGS, "input_length": _i,
     "responses": List(_s), "rewards_armorm": List({"score": _f}), "chosen": MESSAGES, "rejected": MESSAGES},
    uuid="d-1", instruction=QUESTION,
    gen_input_configs={"temperature": 1.0, "top_p": 1.0, "input_generator": "meta-llama/Meta-Llama-3.1-70B-Instruct",
                       "seed": None, "pre_query_template": "<|start_header_id|>user<|end_header_id|>\n\n"},
    **TAG_VALUES, input_length=len(QUESTION), responses=[ANSWER, "Lists cannot be reversed."],
    rewards_armorm=[{"score": 0.21}, {"score": 0.05}], chosen=CHOSEN, rejected=REJECTED,
)

# The release's data_po/ example rows: input_length, gen_input_configs {temperature, top_p}.
DATA_PO = one_row(
    {"uuid": _s, "instruction": _s, "gen_input_configs": {"temperature": _f, "top_p": _f}, **TAGS, "input_length": _i},
    uuid="e-1", instruction=QUESTION, gen_input_configs={"temperature": 1.1, "top_p": 1.0}, **TAG_VALUES,
    input_length=len(QUESTION),
)


@pytest.fixture(scope="module")
def answerer(tmp_path_factory):
    """A tiny chat model whose greedy answer repeats one word (its LM head is zero)."""
    directory = tmp_path_factory.mktemp("answerer")
    tokenizer = byte_tokenizer(CHATML, CHATML_SPECIALS, words=["ok"], name=str(directory))
    return save_tiny_model(directory, tokenizer, "causal", mute=True)


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """A tiny judge answering `coding", ...}` after the task-category prefill."""
    directory = tmp_path_factory.mktemp("judge")
    tokenizer = byte_tokenizer(CHATML, CHATML_SPECIALS, words=['coding", "other_categories": []}'], name=str(directory))
    return save_tiny_model(directory, tokenizer, "causal", mute=True)


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rm")
    return save_tiny_model(directory, byte_tokenizer(CHATML, CHATML_SPECIALS, name=str(directory)), "reward")


# --- normalize --------------------------------------------------------------------------------


def test_air_3m_gets_the_current_columns_and_keeps_its_own():
    out = AIR.map(magpie.normalize, batched=True)
    row = out[0]
    assert (row["instruction"], row["response"]) == (row["input"], row["output"]) == (QUESTION, ANSWER)
    assert (row["instruction_length"], row["response_length"]) == (len(QUESTION), len(ANSWER))
    assert row["gen_input_config"] == {"temperature": 1.0, "top_p": 1.0}  # kept
    assert row["gen_input_configs"] == {"temperature": 1.0, "top_p": 1.0, "input_generator": None, "seed": None,
                                        "pre_query_template": None, "instruction_prefix": None}
    assert set(AIR.column_names) < set(out.column_names)
    assert out.features["gen_input_configs"] == GEN_INPUT_CONFIGS
    assert variants_of(AIR.column_names) == ["input-output", "dpo"]  # input_length is shared with the DPO sets


def test_phi3_extract_input_is_the_pre_query_template():
    row = PHI3.map(magpie.normalize, batched=True)[0]
    assert row["gen_input_configs"]["pre_query_template"] == row["gen_input_configs"]["extract_input"] == "<|user|>\n"
    assert row["gen_input_configs"]["input_generator"] == "microsoft/Phi-3-medium-4k-instruct"
    assert row["instruction"] == QUESTION
    assert variants_of(PHI3.column_names, PHI3.features["gen_input_configs"]) == ["extract-input"]


def test_reasoning_v2_conversation_id_is_the_uuid():
    out = REASONING_V2.map(magpie.normalize, batched=True)
    assert out[0]["uuid"] == out[0]["conversation_id"] == "c-1"
    assert out.column_names == [*REASONING_V2.column_names, "uuid"]  # the struct had every field: untouched


def test_dpo_and_data_po_rows():
    dpo = DPO.map(magpie.normalize, batched=True)
    assert dpo[0]["instruction_length"] == dpo[0]["input_length"] == len(QUESTION)
    assert dpo.column_names == [*DPO.column_names, "instruction_length"]
    po = DATA_PO.map(magpie.normalize, batched=True)
    assert po[0]["gen_input_configs"] == {"temperature": 1.1, "top_p": 1.0, "input_generator": None, "seed": None,
                                          "pre_query_template": None, "instruction_prefix": None}
    assert po[0]["instruction_length"] == len(QUESTION)


def test_current_rows_and_variant_table():
    current = Dataset.from_dict({"uuid": ["u"], "instruction": ["Hi"], "response": ["Yo"]})
    assert current.map(magpie.normalize, batched=True).to_dict() == current.to_dict()
    assert renames(["input", "instruction"]) == {}  # a current column is never shadowed
    for variant in VARIANTS:  # every published name maps to a column some stage writes or reads
        for old, new in variant.columns:
            assert old != new and new in NORMALIZED_FEATURES


# --- automatically, where stages read -----------------------------------------------------------


def test_view_is_lazy_and_keeps_the_batch():
    batch = {"input": ["Hi?"], "output": ["Yo"]}
    view = require_reads(batch, "to_sharegpt")
    assert view["instruction"] is batch["input"] and "instruction" not in batch
    assert require_reads({"instruction": ["x"]}, "tag_language") == {"instruction": ["x"]}


def test_missing_column_names_the_writer_and_the_variants():
    with pytest.raises(MissingColumnError, match=r"Run generate_responses first.*'output' \(the first releases"):
        require_reads({"instruction": ["x"]}, "to_sharegpt")
    with pytest.raises(MissingColumnError, match="Run tag_with_llm first"):
        require_reads({"input": ["x"]}, "min_quality", ("input_quality",))


def test_air_3m_through_the_reading_stages(answerer, judge, reward_model):
    language = AIR.map(magpie.tag_language, batched=True)
    assert language[0]["language"] == "EN" and language[0]["language_configs"]["column"] == "instruction"
    tagged = AIR.map(magpie.tag_with_llm, batched=True, fn_kwargs={"tags": ["task_category"], "model": judge,
                                                                   "max_tokens": 8, "constrained": False})
    assert tagged[0]["task_category"] == "Coding & Debugging" and tagged[0]["input"] == QUESTION
    answered = AIR.map(magpie.generate_responses, batched=True, fn_kwargs={"model": answerer, "max_tokens": 4})
    assert answered[0]["conversations"][0] == {"from": "human", "value": QUESTION}  # asked the `input`
    assert answered[0]["response"].startswith("ok") and answered[0]["output"] == ANSWER
    assert answered[0]["instruction_length"] == len(QUESTION)
    scored = AIR.map(magpie.add_rewards, batched=True, fn_kwargs={"model": reward_model})
    direct = magpie.add_rewards({"instruction": [QUESTION], "response": [ANSWER]}, model=reward_model)
    assert scored[0]["instruct_reward"] == pytest.approx(direct["instruct_reward"][0])
    sharegpt = AIR.remove_columns("conversations").map(magpie.to_sharegpt, batched=True)
    assert sharegpt[0]["conversations"] == CONVERSATION
    messages = AIR.remove_columns("conversations").map(magpie.to_messages, batched=True)
    assert messages[0]["messages"] == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]


def test_air_3m_through_the_filters():
    two = Dataset.from_list([AIR[0], {**AIR[0], "uuid": "a-2", "input": "Here is a list:", "output_length": 9}],
                            features=AIR.features)
    assert two.filter(filters.not_ending_with(":"))["uuid"] == ["a-1"]
    assert two.filter(filters.not_ending_with(":"), batched=True)["uuid"] == ["a-1"]
    assert two.filter(filters.PAPER["air-filter"])["uuid"] == ["a-1", "a-2"]
    assert two.filter(filters.PAPER["air-300k"], batched=True)["uuid"] == ["a-1"]
    top = filters.longest(two, 1)  # ranks on output_length, read as response_length
    assert top["uuid"] == ["a-1"] and top["response_length"] == [len(ANSWER)]
    assert filters.dedup(two)["uuid"] == ["a-1", "a-2"]
    assert filters.apply_recipe(two, "air-filter", k=1)["uuid"] == ["a-1"]


def test_min_neighbor_distance_on_air_3m_and_reasoning_v2():
    air = Dataset.from_list([AIR[0], {**AIR[0], "uuid": "a-2"}, {**AIR[0], "uuid": "a-3", "input": "Bake bread."}],
                            features=AIR.features)
    out = magpie.min_neighbor_distance(air)
    assert out["instruction"] == air["input"]  # the Dataset is renamed, not copied
    assert out["min_similar_uuid"] == ["a-1", "a-1", None] and out["repeat_count"] == [1, 1, 0]
    v2 = Dataset.from_list([REASONING_V2[0], {**REASONING_V2[0], "conversation_id": "c-2"}],
                           features=REASONING_V2.features)
    out = magpie.min_neighbor_distance(v2)
    assert out["uuid"] == ["c-1", "c-2"] and out["min_similar_uuid"] == ["c-1", "c-1"]


def test_raw_conversation_id_rows_dedup():
    raw = Dataset.from_dict({"conversation_id": ["c-1", "c-2", "c-3"], "instruction": ["a", "a", "b"],
                             "min_similar_conversation_id": ["c-1", "c-1", None]})
    assert raw.filter(filters.is_unique)["conversation_id"] == ["c-1", "c-3"]
    assert filters.dedup(raw)["uuid"] == ["c-1", "c-3"]


def test_phi3_and_data_po_through_stages(judge, answerer):
    assert PHI3.filter(filters.PAPER["pro-300k"])["uuid"] == ["p-1"]
    assert PHI3.map(magpie.to_messages, batched=True)[0]["messages"][0] == {"role": "user", "content": QUESTION}
    tagged = DATA_PO.map(magpie.tag_with_llm, batched=True, fn_kwargs={"tags": ["task_category"], "model": judge,
                                                                       "max_tokens": 8, "constrained": False})
    assert tagged[0]["task_category"] == "Coding & Debugging"
    sampled = DATA_PO.map(magpie.add_response_samples, batched=True,
                          fn_kwargs={"k": 2, "model": answerer, "max_tokens": 3, "temperature": 0.0})
    assert len(sampled[0]["responses"]) == 2 and all(r.startswith("ok") for r in sampled[0]["responses"])


def test_dpo_rows_through_the_preference_stages(reward_model):
    dpo = DPO.map(magpie.to_preference, batched=True)
    assert dpo[0]["prompt"] == [{"role": "user", "content": QUESTION}]
    assert dpo[0]["chosen"] == [{"role": "assistant", "content": ANSWER}]
    pairs = DPO.remove_columns(["chosen", "rejected"]).map(magpie.to_preference_pairs, batched=True)
    assert pairs[0]["chosen"][1]["content"] == ANSWER and pairs[0]["rejected_score"] == 0.05
    rescored = DPO.map(magpie.add_rewards, batched=True,
                       fn_kwargs={"model": reward_model, "column": "responses", "output_column": "rewards_tiny"})
    assert len(rescored[0]["rewards_tiny"]) == 2
