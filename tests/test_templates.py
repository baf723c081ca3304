"""Chat-template introspection on the 22 real chat templates in tests/fixtures/chat_templates."""

from __future__ import annotations

import datetime
import importlib.util
import json

import pytest
from transformers import AutoTokenizer

from magpie_datasets.templates import (
    ChatTemplate,
    TemplateError,
    chat_prompt,
    describe,
    magpie_template,
    next_user_prefix,
)
from tests.chat_tokenizers import (
    ADDS_BOS,
    FIXTURE_NAMES,
    FIXTURES_DIR,
    fixture,
    fixture_tokenizer,
    make_tokenizer,
)


LLAMA3 = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
QWEN25 = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)

# The authors' published pre-query strings (magpie-align configs/model_configs.json).
PUBLISHED = {
    "meta-llama__Meta-Llama-3-8B-Instruct": ("llama-3", LLAMA3),
    "meta-llama__Llama-3.1-8B-Instruct": ("llama-3.1", LLAMA3),
    "meta-llama__Llama-3.3-70B-Instruct": ("llama-3.1", LLAMA3),
    # Same template as 3.1 but dated with today's date: the bare header keeps runs reproducible.
    "meta-llama__Llama-3.2-3B-Instruct": ("llama-3.1", LLAMA3),
    "Qwen__Qwen2-7B-Instruct": ("qwen2", "<|im_start|>user\n"),
    "Qwen__Qwen2.5-7B-Instruct": ("qwen2.5", QWEN25),
    "google__gemma-2-2b-it": ("gemma-2", "<bos><start_of_turn>user\n\n"),
    "microsoft__Phi-3-mini-4k-instruct": ("phi-3", "<s> <|user|>\n"),
    "microsoft__Phi-3.5-mini-instruct": ("phi-3", "<s> <|user|>\n"),
    "mistralai__Mistral-7B-Instruct-v0.3": ("mistral-v0.3", "<s> [INST] "),
    "01-ai__Yi-1.5-34B-Chat": ("yi-1.5", "<|startoftext|><|im_start|>user\n"),
    "meta-llama__Llama-2-7b-chat-hf": ("llama-2", "<s> [INST] "),
}


def _granite_pre_queries() -> set[str]:
    # strftime_now('%B %d, %Y') at render time; accept either side of a midnight.
    days = {datetime.datetime.now() + datetime.timedelta(days=d) for d in (0, -1)}
    return {
        "<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024.\nToday's Date: "
        + day.strftime("%B %d, %Y")
        + ".\nYou are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|>"
        for day in days
    }


# Derived pre-queries (no known family): exactly what the template writes before the user text.
DERIVED = {
    "HuggingFaceTB__SmolLM2-1.7B-Instruct": {
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\n"
    },
    "microsoft__phi-4": {"<|im_start|>user<|im_sep|>"},
    "Qwen__Qwen3-1.7B": {"<|im_start|>user\n"},
    "allenai__OLMo-2-1124-13B-Instruct": {"<|endoftext|><|user|>\n"},
    "tiiuae__Falcon3-3B-Instruct": {"<|user|>\n"},
    "deepseek-ai__DeepSeek-V2-Lite-Chat": {"<｜begin▁of▁sentence｜>User: "},
    "google__gemma-3-1b-it": {"<bos><start_of_turn>user\n"},
    "ibm-granite__granite-3.2-2b-instruct": _granite_pre_queries(),
    "mistralai__Mistral-Nemo-Instruct-2407": {"<s>[INST]"},
    "lmsys__vicuna-7b-v1.5": {
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: "
    },
}

POST_QUERY = {
    "Qwen__Qwen2-7B-Instruct": "<|im_end|>\n<|im_start|>assistant\n",
    "meta-llama__Llama-3.1-8B-Instruct": "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "google__gemma-2-2b-it": "<end_of_turn>\n<start_of_turn>model\n",
    "microsoft__Phi-3-mini-4k-instruct": "<|end|>\n<|assistant|>\n",
    "mistralai__Mistral-7B-Instruct-v0.3": "[/INST]",
    "meta-llama__Llama-2-7b-chat-hf": " [/INST]",
    "01-ai__Yi-1.5-34B-Chat": "<|im_end|>\n<|im_start|>assistant\n",
    "deepseek-ai__DeepSeek-V2-Lite-Chat": "\n\nAssistant:",
    "microsoft__phi-4": "<|im_end|><|im_start|>assistant<|im_sep|>",
    "ibm-granite__granite-3.2-2b-instruct": "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
}

USER_TEXT = "Write a haiku about autumn leaves."


def test_every_fixture_has_an_expectation():
    assert FIXTURES_DIR.is_dir(), f"{FIXTURES_DIR} is missing: the chat-template fixtures ship in the repository"
    assert len(FIXTURE_NAMES) == 22
    assert sorted(PUBLISHED.keys() | DERIVED.keys()) == FIXTURE_NAMES
    assert not PUBLISHED.keys() & DERIVED.keys()


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_pre_query_is_published_for_known_families_and_derived_otherwise(name):
    template = magpie_template(fixture_tokenizer(fixture(name)))
    assert isinstance(template, ChatTemplate) and template.system_prompt is None
    if name in PUBLISHED:
        assert (template.family, template.pre_query) == PUBLISHED[name]
    else:
        assert template.family is None
        assert template.pre_query in DERIVED[name]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_template_system_prompt_gives_exactly_what_the_template_renders(name):
    tok = fixture_tokenizer(fixture(name))
    template = magpie_template(tok, system_prompt="template")
    assert template.system_prompt == "template"
    # post_query is exactly what follows the user text in the model's own rendering ...
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": USER_TEXT}], tokenize=False, add_generation_prompt=True
    )
    assert rendered.endswith(USER_TEXT + template.post_query)
    # ... and pre + text + post is the step-2 prompt, with the BOS the model expects.
    assert template.pre_query + USER_TEXT + template.post_query == chat_prompt(
        tok, [{"role": "user", "content": USER_TEXT}]
    )
    if name in POST_QUERY:
        assert template.post_query == POST_QUERY[name]
    if name in DERIVED:
        assert template.pre_query == magpie_template(tok).pre_query  # None means "as rendered" here
        assert template.pre_query in DERIVED[name]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_stop_has_eos_end_of_turn_marker_and_next_role_header(name):
    data = fixture(name)
    template = magpie_template(fixture_tokenizer(data))
    for token in [data["eos_token"], *data["extra_stop_tokens"]]:
        if token:
            assert token in template.stop
    # a run-on past the user turn hits a stop before it can write an assistant header
    assert any(s in template.post_query for s in template.stop if s.strip())
    assert len(set(template.stop)) == len(template.stop) and all(template.stop)


@pytest.mark.parametrize("adds_bos", [True, False])
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_exactly_one_bos(name, adds_bos):
    data = fixture(name)
    tok = fixture_tokenizer(data, adds_bos=adds_bos)
    bos = data["bos_token"]
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    rendered = tok.apply_chat_template(conversation[:1], tokenize=False)
    uses_bos = bool(bos) and (adds_bos or rendered.startswith(bos))
    prompts = [
        magpie_template(tok, system_prompt="template").pre_query,
        chat_prompt(tok, conversation[:1]),
        next_user_prefix(tok, conversation),
    ]
    published = PUBLISHED.get(name, (None, ""))[1]
    if not (bos and published.startswith(bos)):  # published strings carry their own BOS
        prompts.append(magpie_template(tok).pre_query)
    for prompt in prompts:
        if bos:
            assert not prompt.startswith(bos + bos), prompt
            assert prompt.startswith(bos) == uses_bos, prompt
        # tokenized as engines do, the ids hold the BOS once, at the start
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        if uses_bos:
            assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id


def test_published_pre_query_already_starts_with_its_bos():
    for name, (_, pre_query) in PUBLISHED.items():
        data = fixture(name)
        if data["bos_token"]:
            template = magpie_template(fixture_tokenizer(data, adds_bos=True))
            assert template.pre_query == pre_query  # no second BOS in front


def test_llama31_default_is_bare_header_template_keeps_dated_system_block():
    tok = fixture_tokenizer(fixture("meta-llama__Llama-3.1-8B-Instruct"))
    assert magpie_template(tok).pre_query == LLAMA3
    assert magpie_template(tok, "template").pre_query == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>" + LLAMA3[len("<|begin_of_text|>") :]
    )
    # tool-mode end-of-message marker, only in a branch the plain rendering never takes
    assert {"<|eot_id|>", "<|eom_id|>", "<|start_header_id|>", "<|end_header_id|>"} <= set(magpie_template(tok).stop)


def test_qwen2_default_drops_the_injected_system_prompt_template_keeps_it():
    tok = fixture_tokenizer(fixture("Qwen__Qwen2-7B-Instruct"))
    assert magpie_template(tok).pre_query == "<|im_start|>user\n"
    assert magpie_template(tok, "template").pre_query == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    )
    assert magpie_template(tok).stop[:3] == ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


@pytest.mark.parametrize(
    "name",
    ["HuggingFaceTB__SmolLM2-1.7B-Instruct", "microsoft__phi-4", "Qwen__Qwen3-1.7B", "01-ai__Yi-1.5-34B-Chat"],
)
def test_other_chatml_templates_are_not_taken_for_qwen2(name):
    assert magpie_template(fixture_tokenizer(fixture(name))).family not in {"qwen2", "qwen2.5"}


def test_family_is_read_from_the_template_not_the_model_name():
    qwen = fixture("Qwen__Qwen2-7B-Instruct")
    renamed = make_tokenizer(
        qwen["chat_template"], eos="<|im_end|>", specials=["<|im_start|>"], name="someone/my-llama-3-finetune"
    )
    assert magpie_template(renamed).family == "qwen2"
    smol = fixture("HuggingFaceTB__SmolLM2-1.7B-Instruct")
    misnamed = make_tokenizer(smol["chat_template"], specials=["<|im_start|>", "<|im_end|>"], name="Qwen/Qwen2-7B-Instruct")
    assert magpie_template(misnamed).family is None


def test_bos_that_is_also_the_header_start_is_not_taken_for_a_bos():
    # SmolLM2-style tokenizer config (BOS = <|im_start|>) under Qwen2's template
    data = dict(fixture("Qwen__Qwen2-7B-Instruct"), bos_token="<|im_start|>")
    template = magpie_template(fixture_tokenizer(data, adds_bos=False))
    assert (template.family, template.pre_query) == ("qwen2", "<|im_start|>user\n")


def test_known_family_with_a_different_bos_falls_back_to_derivation():
    # Phi-3's layout but a tokenizer whose BOS is not <s>: "<s> <|user|>" would be wrong for it.
    data = dict(fixture("microsoft__Phi-3-mini-4k-instruct"), bos_token="<|bos|>")
    template = magpie_template(fixture_tokenizer(data, adds_bos=True))
    assert (template.family, template.pre_query) == (None, "<|bos|><|user|>\n")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen__Qwen2.5-7B-Instruct", "<|im_start|>system\nYou are a math tutor.<|im_end|>\n<|im_start|>user\n"),
        (
            "meta-llama__Meta-Llama-3-8B-Instruct",
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a math tutor.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n",
        ),
        ("microsoft__Phi-3-mini-4k-instruct", "<s><|system|>\nYou are a math tutor.<|end|>\n<|user|>\n"),
        ("mistralai__Mistral-7B-Instruct-v0.3", "<s>[INST] You are a math tutor.\n\n"),
        ("meta-llama__Llama-2-7b-chat-hf", "<s>[INST] <<SYS>>\nYou are a math tutor.\n<</SYS>>\n\n"),
        ("google__gemma-3-1b-it", "<bos><start_of_turn>user\nYou are a math tutor.\n\n"),
        ("deepseek-ai__DeepSeek-V2-Lite-Chat", "<｜begin▁of▁sentence｜>You are a math tutor.\n\nUser: "),
        ("tiiuae__Falcon3-3B-Instruct", "<|system|>\nYou are a math tutor.\n<|user|>\n"),
    ],
)
def test_system_prompt_string_goes_where_the_template_puts_system_messages(name, expected):
    tok = fixture_tokenizer(fixture(name))
    template = magpie_template(tok, system_prompt="You are a math tutor.")
    assert template.pre_query == expected
    assert template.system_prompt == "You are a math tutor."
    assert template.pre_query + USER_TEXT + template.post_query == chat_prompt(
        tok, [{"role": "system", "content": "You are a math tutor."}, {"role": "user", "content": USER_TEXT}]
    )


def test_template_that_rejects_system_messages_says_so():
    with pytest.raises(TemplateError, match=r"google/gemma-2-2b-it.*system"):
        magpie_template(fixture_tokenizer(fixture("google__gemma-2-2b-it")), system_prompt="You are a poet.")


def test_template_that_drops_system_messages_says_so():
    template = "{% for m in messages %}{% if m['role'] != 'system' %}<|user|>{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
    tok = make_tokenizer(template, specials=["<|user|>", "<|end|>"], name="acme/no-system")
    with pytest.raises(TemplateError, match=r"acme/no-system.*drops the system message"):
        magpie_template(tok, system_prompt="You are a poet.")


def test_no_chat_template_is_a_clear_error_naming_the_model():
    tok = make_tokenizer(None, bos="<s>", eos="</s>", name="acme/base-model")
    for call in (
        lambda: magpie_template(tok),
        lambda: describe(tok),
        lambda: chat_prompt(tok, [{"role": "user", "content": "Hi"}]),
        lambda: next_user_prefix(tok, []),
    ):
        with pytest.raises(TemplateError, match=r"acme/base-model has no chat template") as info:
            call()
        assert isinstance(info.value, ValueError)


def test_template_that_cannot_render_a_lone_user_turn():
    template = (
        "{% if messages[0]['role'] != 'system' %}{{ raise_exception('A system message must come first') }}{% endif %}"
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    )
    tok = make_tokenizer(template, specials=["<|end|>"], name="acme/needs-system")
    for system_prompt in (None, "template"):
        with pytest.raises(TemplateError, match=r"acme/needs-system.*lone user turn.*must come first.*system_prompt="):
            magpie_template(tok, system_prompt)
    # ... and what the message suggests works
    template = magpie_template(tok, system_prompt="You are a poet.")
    assert (template.pre_query, template.post_query) == ("<|system|>You are a poet.<|end|><|user|>", "<|end|>")


def test_template_with_nothing_before_the_user_text():
    tok = make_tokenizer(
        "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}",
        bos="<s>",
        eos="</s>",
        name="acme/plain-lm",
    )
    with pytest.raises(TemplateError, match=r"acme/plain-lm puts nothing before the user text"):
        magpie_template(tok)


def test_template_that_rewrites_the_user_text():
    tok = make_tokenizer("{% for m in messages %}<|user|>{{ m['content'] | upper }}{% endfor %}", name="acme/shouty")
    with pytest.raises(TemplateError, match=r"acme/shouty.*verbatim"):
        magpie_template(tok)


def test_chat_prompt_renders_whole_conversations():
    tok = fixture_tokenizer(fixture("google__gemma-2-2b-it"))
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a color."},
    ]
    assert chat_prompt(tok, messages) == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nName a color.<end_of_turn>\n<start_of_turn>model\n"
    )
    assert chat_prompt(tok, messages, add_generation_prompt=False).endswith("Name a color.<end_of_turn>\n")
    with pytest.raises(TemplateError, match=r"google/gemma-2-2b-it.*alternate"):
        chat_prompt(tok, messages[:1] * 2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "meta-llama__Meta-Llama-3-8B-Instruct",
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
        ),
        (
            "Qwen__Qwen2.5-7B-Instruct",
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n",
        ),
        ("meta-llama__Llama-2-7b-chat-hf", "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] "),
        (
            "microsoft__Phi-3-mini-4k-instruct",
            "<s><|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\n",
        ),
        (
            "01-ai__Yi-1.5-34B-Chat",
            "Be brief.<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n",
        ),
    ],
)
def test_next_user_prefix_opens_a_new_user_turn(name, expected):
    tok = fixture_tokenizer(fixture(name))
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    if "Be brief." in expected:
        messages.insert(0, {"role": "system", "content": "Be brief."})
    assert next_user_prefix(tok, messages) == expected


def test_generation_config_eos_tokens_are_stops(tmp_path):
    data = fixture("Qwen__Qwen3-1.7B")
    tok = fixture_tokenizer(data, extra_specials=["<|endoftext|>"])
    tok.save_pretrained(tmp_path)
    eos_ids = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": eos_ids}))
    assert "<|endoftext|>" not in magpie_template(tok).stop  # the template never writes it
    assert "<|endoftext|>" in magpie_template(AutoTokenizer.from_pretrained(tmp_path)).stop


def test_describe_is_json_for_the_cli():
    tok = fixture_tokenizer(fixture("meta-llama__Llama-3.1-8B-Instruct"))
    info = json.loads(json.dumps(describe(tok)))
    assert info["family"] == "llama-3.1" and info["pre_query"] == LLAMA3 and info["system_prompt"] is None
    assert info["post_query"] == POST_QUERY["meta-llama__Llama-3.1-8B-Instruct"]
    assert info["stop"] == list(magpie_template(tok).stop)
    assert info["template_pre_query"] == magpie_template(tok, "template").pre_query
    assert info["bos_token"] == "<|begin_of_text|>" and info["tokenizer_adds_bos"] is True
    assert info["stop_token_ids"] == [tok.convert_tokens_to_ids(s) for s in info["stop"] if s in tok.get_vocab()]
    derived = describe(fixture_tokenizer(fixture("microsoft__phi-4")), system_prompt="Be brief.")
    assert derived["family"] is None and derived["system_prompt"] == "Be brief."
    assert derived["pre_query"] == "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>"


def test_adds_bos_table_names_real_fixtures():
    assert set(ADDS_BOS) <= set(FIXTURE_NAMES)


@pytest.mark.skipif(
    importlib.util.find_spec("magpie_datasets.engines.embedded") is None, reason="magpie_datasets.engines.embedded not written yet"
)
def test_embedded_smollm2_tokenizer():
    from magpie_datasets.engines.embedded import smollm2_dir

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    template = magpie_template(tok)
    # SmolLM2's BOS is <|im_start|>, which also opens every ChatML header: no extra one in front.
    assert template.family is None
    assert template.pre_query == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\n"
    )
    assert template.post_query == "<|im_end|>\n<|im_start|>assistant\n"
    assert {"<|im_end|>", "<|im_start|>"} <= set(template.stop)
    ids = tok(template.pre_query, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids.count(tok.bos_token_id) == 2
