"""First-token control (Sampling.first_token_bias / first_token_temperature) and the step-1
presets of the template families (Llama-3.1's de-markdown bias, the authors' assistant stops).

Tiny real models: a "mute" one (every logit ties, so greedy picks the lowest id left: words[0]
unless biased away) whose first-token argmax is a markdown header, and a random one whose
continuation after a forced first token is checked against plain greedy decoding.
"""

from __future__ import annotations

import pytest

from magpie_datasets import add_magpie_instructions
from magpie_datasets.engines import Sampling
from magpie_datasets.engines.transformers_engine import TransformersEngine
from magpie_datasets.templates import first_token_bias_ids, magpie_template
from tests.chat_tokenizers import fixture, fixture_tokenizer
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model

HEADERS = ["##", "#", "###", "####"]
LLAMA_SPECIALS = ["<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>"]


def llama31_tokenizer(words):
    """A byte tokenizer with Llama-3.1's real chat template and special tokens."""
    return byte_tokenizer(
        fixture("meta-llama__Llama-3.1-8B-Instruct")["chat_template"], specials=LLAMA_SPECIALS, words=words,
        bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>", adds_bos=True,
        name="test/tiny-llama-3.1",
    )


@pytest.fixture(scope="module")
def header_model(tmp_path_factory):
    """Mute Llama-3.1-templated model: greedy always writes "##" (id 0) unless it is biased away.
    Its BPE cannot merge "####" into one token (it encodes as "##" "##"), so the preset, which
    skips texts a tokenizer splits, covers "#", "##", "###" here; "####" (id 4) is above "What"."""
    return save_tiny_model(tmp_path_factory.mktemp("header"), llama31_tokenizer([*HEADERS[:3], "What", "####"]), mute=True)


@pytest.fixture(scope="module")
def random_llm(tmp_path_factory):
    """A random tiny model on single-byte tokens: text and tokens map one to one."""
    path = save_tiny_model(tmp_path_factory.mktemp("random"), byte_tokenizer(CHATML, specials=CHATML_SPECIALS), seed=3)
    return TransformersEngine(path)


def token_ids(llm, text):
    return llm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_the_bias_moves_a_header_first_token_and_nothing_after(header_model):
    llm = TransformersEngine(header_model)
    prompt = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    headers = {llm.tokenizer.convert_tokens_to_ids(h): -9999.999 for h in HEADERS}
    [[plain]] = llm.generate([prompt], Sampling(temperature=0, max_tokens=4))
    [[biased]] = llm.generate([prompt], Sampling(temperature=0, max_tokens=4, first_token_bias=headers))
    assert plain.text == "##" * 4  # the first-token argmax is a header
    assert biased.text == "What" + "##" * 3  # first token moved; the three after are greedy's again


def test_a_forced_first_token_leaves_the_continuation_to_greedy(random_llm):
    prompt = "<|im_start|>user\n"
    [[plain]] = random_llm.generate([prompt], Sampling(temperature=0, max_tokens=12))
    forced = "x" if not plain.text.startswith("x") else "y"
    [[biased]] = random_llm.generate(
        [prompt], Sampling(temperature=0, max_tokens=12, first_token_bias={token_ids(random_llm, forced)[0]: 1e4})
    )
    [[after]] = random_llm.generate([prompt + forced], Sampling(temperature=0, max_tokens=11))
    assert biased.text[0] == forced != plain.text[0]
    assert biased.text == forced + after.text  # the bias reached the first token only
    assert biased.completion_tokens == 12


def test_first_token_temperature_changes_the_first_token_only(random_llm):
    prompt, n = "<|im_start|>user\n", 64
    # every run keeps its first token to one-character ASCII tokens, so a text's first character is its
    # first token; T=0.02 sharpens the random model's flat logits into a few likely tokens
    texts = [random_llm.tokenizer.decode([i]) for i in range(len(random_llm.tokenizer))]
    ascii_only = {i: -1e4 for i, text in enumerate(texts) if not (len(text) == 1 and text.isascii())}

    def run(**options):
        return random_llm.generate([prompt], Sampling(first_token_bias=ascii_only, **options))[0]

    [greedy] = run(temperature=0, max_tokens=1)
    plain = run(n=n, max_tokens=8, seed=5, temperature=0.02)
    cold = run(n=n, max_tokens=8, seed=5, temperature=0.02, first_token_temperature=1e-4)
    same = run(n=n, max_tokens=8, seed=5, temperature=0.02, first_token_temperature=0.02)
    assert [c.text for c in same] == [c.text for c in plain]  # the same temperature: the same samples
    assert len({c.text[0] for c in plain}) > 5  # sampled: many first tokens
    assert {c.text[0] for c in cold} == {greedy.text}  # a near-zero first temperature: its argmax
    # each sample draws from its own stream: where the first tokens agree, so does the rest
    agree = [(p.text, c.text) for p, c in zip(plain, cold) if p.text[0] == c.text[0]]
    assert agree and all(p == c for p, c in agree)
    assert len({c.text[1:] for c in cold}) > n // 2  # later tokens still sampled at T=0.02


def test_bad_first_token_settings_fail_clearly(random_llm):
    with pytest.raises(ValueError, match="first_token_temperature needs temperature > 0"):
        Sampling(temperature=0, first_token_temperature=1.2)
    with pytest.raises(ValueError, match="must be a number > 0"):
        Sampling(first_token_temperature=0)
    with pytest.raises(ValueError, match="must map token ids"):
        Sampling(first_token_bias={"#": -1.0})
    with pytest.raises(ValueError, match="outside this model's vocabulary"):
        random_llm.generate(["<|im_start|>user\n"], Sampling(max_tokens=2, first_token_bias={10**6: -1.0}))
    with pytest.raises(ValueError, match="'ab' is 2 tokens"):
        first_token_bias_ids(random_llm.tokenizer, {"ab": -1.0})
    assert first_token_bias_ids(random_llm.tokenizer, {"ab": -1.0, "a": 2}, skip_missing=True) == [
        ("a", token_ids(random_llm, "a")[0], 2.0)
    ]


def test_llama31_preset_is_on_by_default_without_a_system_prompt_and_recorded(header_model):
    batch = {"uuid": ["r0", "r1"]}
    step = {"model": header_model, "temperature": 0.0, "max_tokens": 3}
    preset = add_magpie_instructions(batch, **step)
    off = add_magpie_instructions(batch, **step, first_token_bias={})
    own = add_magpie_instructions(batch, **step, system_prompt="Be brief.")
    assert preset["instruction"] == ["What####"] * 2  # "What", then the mute model's "##"
    assert off["instruction"] == ["######"] * 2 and own["instruction"] == ["######"] * 2
    recorded = preset["instruction_options"][0]["first_token_bias"]
    assert [(b["token"], b["token_id"], b["bias"]) for b in recorded] == [
        ("#", 1, -9999.999), ("##", 0, -9999.999), ("###", 2, -9999.999)]
    assert off["instruction_options"][0]["first_token_bias"] == []
    assert own["instruction_options"][0]["first_token_bias"] == []
    texts = add_magpie_instructions(batch, **step, first_token_bias={"##": -50, "#": -50.0})["instruction"]
    assert texts == ["###" + "##" * 2] * 2  # "##" and "#" (ids 0, 1) biased: "###" is the lowest id left


def test_first_token_temperature_is_recorded(header_model):
    out = add_magpie_instructions({"uuid": ["r0"]}, model=header_model, max_tokens=2, first_token_temperature=1.2)
    assert out["instruction_options"][0]["first_token_temperature"] == 1.2
    assert add_magpie_instructions({"uuid": ["r0"]}, model=header_model, max_tokens=2)[
        "instruction_options"][0]["first_token_temperature"] is None


def test_the_family_presets_come_from_the_template():
    llama31 = fixture_tokenizer(fixture("meta-llama__Llama-3.1-8B-Instruct"))
    assert magpie_template(llama31).first_token_bias == tuple((h, -9999.999) for h in ("#", "##", "###", "####"))
    assert magpie_template(llama31, system_prompt="template").first_token_bias == ()
    llama33 = magpie_template(fixture_tokenizer(fixture("meta-llama__Llama-3.3-70B-Instruct")))
    assert llama33.family == "llama-3.1" and llama33.first_token_bias
    llama3 = magpie_template(fixture_tokenizer(fixture("meta-llama__Meta-Llama-3-8B-Instruct")))
    assert llama3.first_token_bias == () and llama3.assistant_stop == ("assistant",)
    qwen2 = magpie_template(fixture_tokenizer(fixture("Qwen__Qwen2-7B-Instruct")))
    assert qwen2.assistant_stop == ("Assistant", "assistant")
    for derived in ("HuggingFaceTB__SmolLM2-1.7B-Instruct", "microsoft__phi-4"):
        template = magpie_template(fixture_tokenizer(fixture(derived)))
        assert template.family is None and template.assistant_stop == () and template.first_token_bias == ()
    # step 2's stops (engines.models) are the template's `stop`, which never holds a role name
    assert not {"assistant", "Assistant"} & set(magpie_template(llama31).stop)


@pytest.fixture(scope="module")
def assistant_model(tmp_path_factory):
    """Mute model with Llama-3's template that writes "assistant" as plain text (id 0)."""
    tok = byte_tokenizer(
        fixture("meta-llama__Meta-Llama-3-8B-Instruct")["chat_template"], specials=LLAMA_SPECIALS,
        words=["assistant", "Hi"], bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|end_of_text|>",
        name="test/tiny-llama-3",
    )
    return save_tiny_model(tmp_path_factory.mktemp("assistant"), tok, mute=True)


def test_step1_stops_at_a_role_name_leaking_as_text(assistant_model, tmp_path):
    step = {"temperature": 0.0, "max_tokens": 6, "first_token_bias": {"assistant": -100}}
    llama3 = add_magpie_instructions({"uuid": ["r0"]}, model=assistant_model, **step)
    assert llama3["instruction"] == ["Hi"]  # "Hi", then the header text "assistant": cut there
    tok = byte_tokenizer(CHATML, specials=CHATML_SPECIALS, words=["assistant", "Hi"], name="test/tiny-chatml")
    chatml = add_magpie_instructions({"uuid": ["r0"]}, model=save_tiny_model(tmp_path, tok, mute=True), **step)
    assert chatml["instruction"] == ["Hi" + "assistant" * 5]  # a derived template: no such stop
