"""Property tests: template derivation on generated chat templates (issue 6 §4).

Each example is a chat format drawn at random (ChatML-like shared header token, one special
token per role as in Phi-3/Falcon, or plain-text headers as in Vicuna/DeepSeek; optional default
system prompt, trimming, eos after assistant turns, BOS written by the template and/or added by
the tokenizer), rendered as a real Jinja chat template on a real tokenizer. The expected strings
are assembled from the drawn parts, independently of the code under test.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from magpie_datasets.templates import chat_prompt, magpie_template, next_user_prefix
from tests.chat_tokenizers import make_tokenizer


ROLES = ("system", "user", "assistant")
BOS, EOS = "<s>", "</s>"
QWEN2_DEFAULT = "You are a helpful assistant."

special_tokens = st.text(alphabet=string.ascii_lowercase + "_", min_size=3, max_size=8).map(lambda n: f"<|{n}|>")
words = st.text(alphabet=string.ascii_letters, min_size=2, max_size=9)
texts = (
    st.text(alphabet=string.ascii_letters + string.digits + " ,.?!", min_size=1, max_size=40)
    .map(str.strip)
    .filter(lambda t: t and "7f3a9c" not in t)  # not the module's sentinels (Hypothesis mines constants)
)


@dataclass(frozen=True)
class Format:
    prefix: dict  # role -> text written before that role's content
    end: str  # written after every turn's content
    eos_after_assistant: bool  # EOS written after assistant content, before `end` (OLMo, DeepSeek)
    default_system: str | None  # injected when the conversation has no system message
    trim: bool
    has_bos: bool
    bos_in_template: bool
    tokenizer_adds_bos: bool
    specials: tuple  # special tokens of the format

    def chat_template(self) -> str:
        def write(text: str) -> str:
            return "{{ " + json.dumps(text) + " }}"  # a JSON string is a valid Jinja string literal

        default = ""
        if self.default_system:
            default = (
                "{% if messages[0]['role'] != 'system' %}"
                + write(self.prefix["system"] + self.default_system + self.end)
                + "{% endif %}"
            )
        eos = "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}" if self.eos_after_assistant else ""
        return (
            ("{{ bos_token }}" if self.bos_in_template else "")
            + default
            + "{% set prefix = " + json.dumps(self.prefix) + " %}"
            + "{% for m in messages %}{{ prefix[m['role']] }}"
            + ("{{ m['content'] | trim }}" if self.trim else "{{ m['content'] }}")
            + eos
            + write(self.end)
            + "{% endfor %}"
            + "{% if add_generation_prompt %}" + write(self.prefix["assistant"]) + "{% endif %}"
        )

    def tokenizer(self):
        return make_tokenizer(
            self.chat_template(),
            bos=BOS if self.has_bos else None,
            eos=EOS,
            specials=list(self.specials),
            adds_bos=self.tokenizer_adds_bos,
            name="generated/chat-format",
        )

    @property
    def lead(self) -> str:  # the one BOS every prompt must start with
        return BOS if self.has_bos and (self.bos_in_template or self.tokenizer_adds_bos) else ""

    def turn(self, role: str, content: str) -> str:
        return self.prefix[role] + content + (EOS if role == "assistant" and self.eos_after_assistant else "") + self.end

    def system_block(self, system: str | None) -> str:
        if system is not None:
            return self.turn("system", system)
        return self.turn("system", self.default_system) if self.default_system else ""

    def is_qwen2_layout(self) -> bool:
        return (
            self.prefix["user"] == "<|im_start|>user\n"
            and self.prefix["system"] == "<|im_start|>system\n"
            and self.end == "<|im_end|>\n"
            and self.default_system == QWEN2_DEFAULT
            and not (self.has_bos and self.bos_in_template)
        )


@st.composite
def formats(draw) -> Format:
    style = draw(st.sampled_from(["shared_header", "role_tokens", "plain"]))
    if style == "shared_header":  # ChatML, Llama-3, phi-4, Granite
        opener = draw(st.one_of(st.just("<|im_start|>"), special_tokens))
        sep = draw(st.sampled_from(["\n", "\n\n", ": "]))
        prefix = {role: opener + role + sep for role in ROLES}
        end_token = draw(st.one_of(st.just("<|im_end|>"), special_tokens.filter(lambda t: t != opener)))
        end = end_token + draw(st.sampled_from(["", "\n"]))
        specials = (opener, end_token)
    elif style == "role_tokens":  # Phi-3, Falcon, OLMo
        tokens = draw(st.lists(special_tokens, min_size=4, max_size=4, unique=True))
        prefix = {role: token + "\n" for role, token in zip(ROLES, tokens)}
        end = draw(st.sampled_from([tokens[3] + "\n", "\n"]))
        specials = tuple(tokens)
    else:  # Vicuna, DeepSeek: plain-text headers, turns end in whitespace, EOS after the assistant
        names = draw(st.lists(words, min_size=3, max_size=3, unique_by=str.lower))
        prefix = {role: name + ": " for role, name in zip(ROLES, names)}
        end = draw(st.sampled_from(["\n\n", " "]))
        specials = ()
    has_bos = draw(st.booleans())
    return Format(
        prefix=prefix,
        end=end,
        eos_after_assistant=style == "plain" or draw(st.booleans()),
        default_system=draw(st.one_of(st.none(), st.just(QWEN2_DEFAULT), texts)),
        trim=draw(st.booleans()),
        has_bos=has_bos,
        bos_in_template=has_bos and draw(st.booleans()),
        tokenizer_adds_bos=has_bos and draw(st.booleans()),
        specials=specials,
    )


CHATML = {role: f"<|im_start|>{role}\n" for role in ROLES}
QWEN2_LIKE = Format(
    CHATML, "<|im_end|>\n", False, QWEN2_DEFAULT, False, True, False, True, ("<|im_start|>", "<|im_end|>")
)
SMOLLM2_LIKE = Format(
    CHATML, "<|im_end|>\n", False, "You are SmolLM.", True, False, False, False, ("<|im_start|>", "<|im_end|>")
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(fmt=formats(), user_text=texts)
def test_pre_and_post_query_are_what_surrounds_the_user_text(fmt, user_text):
    tok = fmt.tokenizer()
    template = magpie_template(tok, system_prompt="template")
    assert template.pre_query == fmt.lead + fmt.system_block(None) + fmt.prefix["user"]
    assert template.post_query == fmt.end + fmt.prefix["assistant"]
    assert template.pre_query + user_text + template.post_query == chat_prompt(tok, [{"role": "user", "content": user_text}])


@SETTINGS
@given(fmt=formats())
@example(fmt=QWEN2_LIKE)
@example(fmt=SMOLLM2_LIKE)
def test_default_is_derived_unless_the_layout_is_a_known_family(fmt):
    template = magpie_template(fmt.tokenizer())
    if fmt.is_qwen2_layout():
        assert (template.family, template.pre_query) == ("qwen2", fmt.lead + "<|im_start|>user\n")
    else:
        assert template.family is None
        assert template.pre_query == magpie_template(fmt.tokenizer(), "template").pre_query


@SETTINGS
@given(fmt=formats(), system=texts)
def test_system_prompt_string_is_rendered_as_a_system_turn(fmt, system):
    template = magpie_template(fmt.tokenizer(), system_prompt=system)
    assert template.pre_query == fmt.lead + fmt.system_block(system) + fmt.prefix["user"]
    assert template.system_prompt == system


@SETTINGS
@given(fmt=formats())
def test_stops_cover_end_of_turn_and_the_next_role_header(fmt):
    template = magpie_template(fmt.tokenizer())
    assert EOS in template.stop
    assert all(template.stop) and len(set(template.stop)) == len(template.stop)
    for token in fmt.specials:
        if token in fmt.end + fmt.prefix["assistant"]:
            assert token in template.stop
    if not fmt.specials:  # plain-text headers: the assistant header itself is a stop string
        assert fmt.prefix["assistant"].strip() in template.stop
    # a step-1 run-on past the user turn is cut before the assistant header is complete
    assert any(stop in template.post_query for stop in template.stop)


@SETTINGS
@given(fmt=formats(), user_text=texts, reply=texts)
def test_next_user_prefix_and_one_bos(fmt, user_text, reply):
    tok = fmt.tokenizer()
    messages = [{"role": "user", "content": user_text}, {"role": "assistant", "content": reply}]
    expected = fmt.lead + fmt.system_block(None) + fmt.turn("user", user_text) + fmt.turn("assistant", reply)
    assert next_user_prefix(tok, messages) == expected + fmt.prefix["user"]
    for prompt in (next_user_prefix(tok, messages), chat_prompt(tok, messages), magpie_template(tok).pre_query):
        assert not prompt.startswith(BOS + BOS)
        assert prompt.startswith(BOS) == bool(fmt.lead)
