"""LLM tags: answer parsing (examples + hypothesis), the stage on tiny deterministic judges and
on the embedded judge, and rows in the published schema."""

import json
import os

import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


from magpie_datasets.stages.tags import (
    DIFFICULTY_LABELS,
    QUALITY_LABELS,
    TAG_COLUMNS,
    TAG_FEATURES,
    TASK_CATEGORIES,
    parse_tag_answer,
    tag_with_llm,
)
from tests.published_sample import published_dataset
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model

ALLOWED = {
    "task_category": set(TASK_CATEGORIES),
    "input_quality": set(QUALITY_LABELS),
    "difficulty": set(DIFFICULTY_LABELS),
}
LABEL_OF = {"task_category": "task_category", "quality": "input_quality", "difficulty": "difficulty"}


def assert_allowed(tag, parsed):
    label = parsed[LABEL_OF[tag]]
    assert label is None or label in ALLOWED[LABEL_OF[tag]], parsed
    if tag == "task_category":
        assert isinstance(parsed["other_task_category"], list)
        assert set(parsed["other_task_category"]) <= set(TASK_CATEGORIES)
        assert label not in parsed["other_task_category"]
    for name, value in parsed.items():
        if name not in (LABEL_OF[tag], "other_task_category"):
            assert value is None or (isinstance(value, str) and value.strip()), parsed


# --- parsing: examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, category, others",
    [
        ('{"category": "Coding & Debugging", "other_categories": []}', "Coding & Debugging", []),
        ('Here you go:\n```json\n{"category": "coding", "other_categories": ["math", "Math"]}\n```', "Coding & Debugging", ["Math"]),
        ('{"Category": "Coding and Debugging", "other_categories": "Reasoning"}', "Coding & Debugging", ["Reasoning"]),
        ('{"primary_tag": "information-seeking", "other_tags": ["Advice seeking"]}', "Information seeking", ["Advice seeking"]),
        ('{"category": "ROLE_PLAYING", "other_categories": ["Role playing", "dancing"]}', "Role playing", []),
        ('{"category": "Creative writing", "other_categories": ["Brainstor', "Creative writing", []),  # cut off
        ('{"category": "Cooking", "other_categories": ["Planning"]}', None, ["Planning"]),
        ("category: math", "Math", []),
        ("This one is clearly Brainstorming.", "Brainstorming", []),
        ("Either Math or Reasoning.", None, []),  # two labels in prose: no guess
        ("", None, []),
    ],
)
def test_task_category_answers(answer, category, others):
    parsed = parse_tag_answer("task_category", answer)
    assert parsed == {"task_category": category, "other_task_category": others}


@pytest.mark.parametrize(
    "answer, quality, explanation",
    [
        ('{"explanation": "Clear and specific.", "quality": "good"}', "good", "Clear and specific."),
        ('{"explanation": "Vague.", "quality": "Very Poor"}', "very poor", "Vague."),
        ('{"explanation": "ok", "quality": "very_poor"}', "very poor", "ok"),
        ('{"explanation": "Fine.", "quality": "fair"}', "average", "Fine."),
        ('{"quality": ["excellent"], "explanation": 5}', "excellent", "5"),
        ('{"explanation": "The query is good but vague', None, "The query is good but vague"),  # cut: no guess
        ('{"explanation": "x", "quality": "superb-ish"}', None, "x"),
        ("Quality: poor", "poor", None),
        ("The request is of very poor quality.", "very poor", None),  # "poor" inside "very poor"
    ],
)
def test_quality_answers(answer, quality, explanation):
    assert parse_tag_answer("quality", answer) == {"input_quality": quality, "quality_explanation": explanation}


@pytest.mark.parametrize(
    "answer, difficulty",
    [
        ('{"intent": "The user wants x", "knowledge": "k", "difficulty": "very_hard"}', "very hard"),
        ('{"intent": "i", "knowledge": "k", "difficulty": "Very-Easy"}', "very easy"),
        ('{"intent": "i", "knowledge": "k", "difficulty": "difficult"}', "hard"),
        ('{"intent": "i", "knowledge": "k", "difficulty": "  MEDIUM "}', "medium"),
        ('{"intent": "i", "knowledge": "k", "difficulty": 3}', None),
        ('{"intent": "i"} then {"difficulty": "easy"}', "easy"),  # the object with the label wins
    ],
)
def test_difficulty_answers(answer, difficulty):
    assert parse_tag_answer("difficulty", answer)["difficulty"] == difficulty


def test_unknown_tag_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown tag 'safety'"):
        parse_tag_answer("safety", "{}")
    with pytest.raises(ValueError, match="unknown tags"):
        tag_with_llm({"instruction": ["hi"]}, tags=["sentiment"])
    with pytest.raises(TypeError):  # every option is a keyword
        tag_with_llm({"instruction": ["hi"]}, ["quality"])


# --- parsing: properties -------------------------------------------------------------------

KEYS = ["category", "other_categories", "quality", "explanation", "difficulty", "intent", "knowledge", "label", "x"]
LABEL_WORDS = [*TASK_CATEGORIES, *QUALITY_LABELS, *DIFFICULTY_LABELS, "coding", "very_hard", "Fair", "none", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20) | st.sampled_from(LABEL_WORDS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def judge_answers(draw):
    """Text around a JSON object with our keys, any values, maybe cut off anywhere."""
    obj = draw(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=5))
    text = draw(st.text(max_size=30)) + json.dumps(obj, ensure_ascii=draw(st.booleans())) + draw(st.text(max_size=30))
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    return text[: cut if draw(st.booleans()) else len(text)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag=st.sampled_from(["task_category", "quality", "difficulty"]), answer=st.text())
def test_any_text_parses_to_an_allowed_label_or_none(tag, answer):
    assert_allowed(tag, parse_tag_answer(tag, answer))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag=st.sampled_from(["task_category", "quality", "difficulty"]), answer=judge_answers())
def test_any_json_like_answer_parses_to_an_allowed_label_or_none(tag, answer):
    assert_allowed(tag, parse_tag_answer(tag, answer))


@settings(max_examples=100, deadline=None)
@given(label=st.sampled_from(DIFFICULTY_LABELS), spelling=st.sampled_from([str.upper, str.title, lambda s: s.replace(" ", "_"), lambda s: f"  {s}\t"]))
def test_label_spellings_normalise_to_the_label(label, spelling):
    answer = json.dumps({"intent": "i", "knowledge": "k", "difficulty": spelling(label)})
    assert parse_tag_answer("difficulty", answer)["difficulty"] == label


# --- the stage on tiny judges whose answer is known -----------------------------------------


def echo_judge(directory, word):
    """A real tiny chat model whose greedy answer is `word` repeated (its LM head is all zero).
    Its tests pass `constrained=False`: they check the free-answer path (prefill, stop, parse)."""
    tokenizer = byte_tokenizer(CHATML, CHATML_SPECIALS, words=[word], name=str(directory))
    return save_tiny_model(directory, tokenizer, "causal", mute=True)


@pytest.fixture(scope="module")
def coding_judge(tmp_path_factory):
    # After the prefill `{"category": "` the judge writes `coding", "other_categories": ["Math"]}`
    # and the "}" stop ends it: the full path prompt -> engine -> stop -> parse is exercised.
    return echo_judge(tmp_path_factory.mktemp("coding_judge"), 'coding", "other_categories": ["Math"]}')


@pytest.fixture(scope="module")
def garbage_judge(tmp_path_factory):
    return echo_judge(tmp_path_factory.mktemp("garbage_judge"), "zq")


def test_known_answer_goes_through_prefill_stop_and_parse(coding_judge):
    out = tag_with_llm({"instruction": ["Fix my loop", "  "]}, tags=["task_category"], model=coding_judge, max_tokens=8, constrained=False)
    assert set(out) == {*TAG_COLUMNS["task_category"], "tag_configs"}
    assert out["task_category"] == ["Coding & Debugging", None]
    assert out["other_task_category"] == [["Math"], []]
    assert out["task_category_generator"] == [coding_judge, None]
    assert out["task_category_raw_answer"] == [None, None]
    configs, unsent = out["tag_configs"]
    assert unsent is None  # the empty instruction was not sent
    assert configs == {"tags": ["task_category"], "column": "instruction", "model": coding_judge,
                       "model_source": os.path.abspath(coding_judge), "engine": "transformers", "dtype": "float32",
                       "constrained": False, "max_tokens": 8}


def test_garbage_answer_keeps_raw_text_and_never_fails(garbage_judge):
    out = tag_with_llm({"instruction": ["Write a poem", "Sum 2+2"]}, model=garbage_judge, max_tokens=6, constrained=False)
    assert set(out) == {c for tag in TAG_COLUMNS.values() for c in tag} | {"tag_configs"}
    assert [c["tags"] for c in out["tag_configs"]] == [["task_category", "quality", "difficulty"]] * 2
    for label in ("task_category", "input_quality", "difficulty"):
        assert out[label] == [None, None]
    raw = out["quality_raw_answer"][0]
    assert raw.startswith('{"quality": "') and "zq" in raw
    assert out["difficulty_raw_answer"][1].startswith('{"difficulty": "')
    assert out["quality_generator"] == [garbage_judge, garbage_judge]


def test_first_batch_all_none_keeps_types_in_dataset_map(coding_judge):
    ds = Dataset.from_dict({"instruction": ["", None, "Debug this", "Write SQL"]})
    out = ds.map(tag_with_llm, batched=True, batch_size=2, fn_kwargs={"tags": ["task_category"], "model": coding_judge, "max_tokens": 8, "constrained": False})
    for name in TAG_COLUMNS["task_category"]:
        assert out.features[name] == TAG_FEATURES[name], name
    assert out["task_category"] == [None, None, "Coding & Debugging", "Coding & Debugging"]
    assert out["other_task_category"] == [[], [], ["Math"], ["Math"]]
    assert out.features["tag_configs"] == TAG_FEATURES["tag_configs"]
    assert out["tag_configs"][:2] == [None, None]  # a batch with no row sent loads no judge
    assert {c["max_tokens"] for c in out["tag_configs"][2:]} == {8}


@pytest.fixture(scope="module")
def random_judge(tmp_path_factory):
    """A tiny chat model with random weights: left free, it answers gibberish."""
    tokenizer = byte_tokenizer(CHATML, CHATML_SPECIALS)
    return save_tiny_model(tmp_path_factory.mktemp("random_judge"), tokenizer, "causal", seed=3)


def test_constrained_decoding_makes_a_random_judge_name_allowed_labels(random_judge):
    rows = {"instruction": ["Write a poem", "Sum 2+2", "Plan a trip"]}
    free = tag_with_llm(rows, model=random_judge, max_tokens=64, constrained=False)
    assert free["input_quality"] == [None] * 3  # gibberish gives no label ...
    assert [c["constrained"] for c in free["tag_configs"]] == [False] * 3
    out = tag_with_llm(rows, model=random_judge, max_tokens=64)
    for column, allowed in ALLOWED.items():  # ... the schema-masked answer always names one
        assert all(label in allowed for label in out[column]), (column, out[column])
    assert out["quality_raw_answer"] == [None] * 3
    assert [c["constrained"] for c in out["tag_configs"]] == [True] * 3  # the transformers engine can constrain
    for others, label in zip(out["other_task_category"], out["task_category"]):
        assert set(others) <= set(TASK_CATEGORIES) and label not in others


def test_missing_column_names_the_producer():
    with pytest.raises(KeyError, match="add_magpie_instructions"):
        tag_with_llm({"prompt": ["hi"]})


def test_published_rows_are_valid_input(coding_judge):
    ds = published_dataset().select(range(3))
    out = ds.map(tag_with_llm, batched=True, fn_kwargs={"tags": ["task_category"], "model": coding_judge, "max_tokens": 8, "constrained": False})
    assert out["task_category"] == ["Coding & Debugging"] * 3
    assert out.features["task_category"] == ds.features["task_category"]
    assert out.features["other_task_category"] == ds.features["other_task_category"]
    assert out["input_quality"] == ds["input_quality"]  # untouched tags stay as published


# --- the embedded judge ----------------------------------------------------------------------


def test_embedded_judge_gives_only_allowed_labels_or_none():
    instructions = ["Write a Python function that reverses a string.", "What is the capital of Australia?"]
    out = Dataset.from_dict({"instruction": instructions}).map(
        tag_with_llm, batched=True, fn_kwargs={"max_tokens": 24}
    )
    for column, allowed in ALLOWED.items():
        assert set(out[column]) <= allowed | {None}, (column, out[column])
    for row in out:
        assert set(row["other_task_category"]) <= set(TASK_CATEGORIES)
        assert row["task_category_generator"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert row["tag_configs"]["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert "sha256:" in row["tag_configs"]["model_source"] and row["tag_configs"]["max_tokens"] == 24
        for tag, label in LABEL_OF.items():
            # an unreadable answer is kept; a readable one is not repeated
            assert (row[label] is None) == (row[f"{tag}_raw_answer"] is not None), row
