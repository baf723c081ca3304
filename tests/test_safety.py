"""Safety tag: the guard's answer normalisation, and the stage on tiny guard-shaped models
loaded through the real engine code (random weights: shape and fallback; a zero LM head:
a known verdict end to end)."""


import pytest
from datasets import Dataset
from hypothesis import given
from hypothesis import strategies as st


from magpie_datasets.engines import ModelNotAvailableError, load_engine
from magpie_datasets.stages.safety import (
    GUARD_MODEL,
    SAFETY_FEATURES,
    parse_guard_answer,
    tag_safety,
)
from magpie_datasets.templates import chat_prompt
from tests.published_sample import published_dataset
from tests.tiny_models import GUARD_TEMPLATE, byte_tokenizer, save_tiny_model

COLUMNS = {"llama_guard_2", "safety_model", "safety_raw_answer", "safety_configs"}


@pytest.mark.parametrize(
    "answer, verdict",
    [
        ("safe", "safe"),
        ("  Safe.\n", "safe"),
        ("safe<|eot_id|>", "safe"),
        ("unsafe\nS2", "unsafe\nS2"),
        ("unsafe\ns10", "unsafe\nS10"),
        ("UNSAFE\nS1,S3", "unsafe\nS1,S3"),
        ("unsafe\nS1, S1 ,S3", "unsafe\nS1,S3"),
        ("unsafe S4", "unsafe\nS4"),
        ("unsafe\nO3", "unsafe\nO3"),  # Llama Guard 1 codes
        ("unsafe", "unsafe"),
        ("unsafe\nno idea", "unsafe"),
        ("unsafety", None),
        ("It is safe", None),
        ("", None),
        (None, None),
    ],
)
def test_guard_answers_normalise(answer, verdict):
    assert parse_guard_answer(answer) == verdict


@given(st.text())
def test_any_guard_answer_is_safe_unsafe_or_none(answer):
    verdict = parse_guard_answer(answer)
    assert verdict is None or verdict == "safe" or verdict == "unsafe" or (
        verdict.startswith("unsafe\n") and all(c[0] in "SO" and c[1:].isdigit() for c in verdict[7:].split(","))
    )


def guard(directory, words=(), mute=False):
    tokenizer = byte_tokenizer(GUARD_TEMPLATE, words=list(words), name=str(directory))
    return save_tiny_model(directory, tokenizer, "causal", mute=mute)


@pytest.fixture(scope="module")
def random_guard(tmp_path_factory):
    return guard(tmp_path_factory.mktemp("random_guard"))


@pytest.fixture(scope="module")
def unsafe_guard(tmp_path_factory):
    # greedy decoding repeats token 0: "unsafe\nS3\nunsafe\nS3\n..."
    return guard(tmp_path_factory.mktemp("unsafe_guard"), words=["unsafe\nS3\n"], mute=True)


def test_guard_prompt_is_the_guards_own_template(random_guard):
    tokenizer = load_engine(random_guard).tokenizer
    prompt = chat_prompt(tokenizer, [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "Use a tension wrench."}])
    assert prompt.startswith("<s>[INST] Task: decide whether the last Agent message")
    assert "S11: Sexual content." in prompt and "User: How do I pick a lock?\n\nAgent: Use a tension wrench." in prompt


def test_random_guard_gives_shape_types_and_raw_fallback(random_guard):
    batch = {"instruction": ["How do I bake bread?", "", "Tell me a joke"], "response": ["Mix flour.", "x", None]}
    out = tag_safety(batch, model=random_guard, max_tokens=6)
    assert set(out) == COLUMNS and all(len(v) == 3 for v in out.values())
    assert out["safety_model"] == [random_guard, None, random_guard]
    assert out["llama_guard_2"][1] is None and out["safety_raw_answer"][1] is None
    for verdict, raw in zip(out["llama_guard_2"], out["safety_raw_answer"]):
        assert verdict is None or verdict == parse_guard_answer(verdict)
        if verdict is None and raw is not None:
            assert isinstance(raw, str) and parse_guard_answer(raw) is None


def test_known_verdict_end_to_end_and_typed_first_batch(unsafe_guard):
    ds = Dataset.from_dict({"instruction": ["", "How do I make a weapon?"], "response": ["", "Here is how."]})
    out = ds.map(tag_safety, batched=True, batch_size=1, fn_kwargs={"model": unsafe_guard, "max_tokens": 4})
    assert out["llama_guard_2"] == [None, "unsafe\nS3"]
    assert out["safety_model"] == [None, unsafe_guard]
    assert out["safety_raw_answer"] == [None, None]
    for name, feature in SAFETY_FEATURES.items():
        assert out.features[name] == feature


def test_published_rows_are_valid_input(unsafe_guard):
    ds = published_dataset().select(range(2))
    out = ds.map(tag_safety, batched=True, fn_kwargs={"model": unsafe_guard, "max_tokens": 4})
    assert out["llama_guard_2"] == ["unsafe\nS3"] * 2
    assert out.features["llama_guard_2"] == ds.features["llama_guard_2"]


def test_default_guard_offline_is_one_clear_error():
    with pytest.raises(ModelNotAvailableError, match="Meta-Llama-Guard-2-8B"):
        tag_safety({"instruction": ["hi"], "response": ["hello"]})
    assert GUARD_MODEL == "meta-llama/Meta-Llama-Guard-2-8B"
