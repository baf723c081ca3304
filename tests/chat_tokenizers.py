"""Real transformers tokenizers for chat templates, built offline in a millisecond.

    fixture("google__gemma-2-2b-it")        -> dict from tests/fixtures/chat_templates/*.json
    fixture_tokenizer(fixture(...))          -> PreTrainedTokenizerFast with that template and tokens
    make_tokenizer(template, bos=..., eos=..., specials=[...], adds_bos=True)

The vocabulary is tiny (WordLevel over whitespace words) but the special tokens, the chat
template, `name_or_path` and the BOS behaviour (`tokenizer(text)` prepends BOS or not) are
real, which is all chat-template rendering and BOS handling depend on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast


# in the repository, so a clone runs the template tests as it is (README.md there: each file's source)
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "chat_templates"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES_DIR.glob("*.json"))

# Whether the model's real tokenizer prepends BOS by itself (tokenizer_config add_bos_token /
# post-processor); the fixtures record only the tokens, not this.
ADDS_BOS = {
    "meta-llama__Llama-2-7b-chat-hf": True,
    "lmsys__vicuna-7b-v1.5": True,
    "mistralai__Mistral-7B-Instruct-v0.3": True,
    "mistralai__Mistral-Nemo-Instruct-2407": True,
    "google__gemma-2-2b-it": True,
    "google__gemma-3-1b-it": True,
    "microsoft__Phi-3-mini-4k-instruct": True,
    "microsoft__Phi-3.5-mini-instruct": True,
    "meta-llama__Meta-Llama-3-8B-Instruct": True,
    "meta-llama__Llama-3.1-8B-Instruct": True,
    "meta-llama__Llama-3.2-3B-Instruct": True,
    "meta-llama__Llama-3.3-70B-Instruct": True,
    "deepseek-ai__DeepSeek-V2-Lite-Chat": True,
}

# Markup the real tokenizers have as special tokens: <|...|>, DeepSeek's <｜...｜>, Gemma's turns.
_MARKUP = re.compile(r"<\|[^|\s<>]+\|>|<｜[^｜]+｜>|<(?:start|end)_of_turn>|<start_of_image>")
# Mistral v0.3 / Nemo control tokens ([INST] ...) are special there, but plain text in Llama-2.
_MISTRAL_CONTROL = re.compile(r"\[/?[A-Z_]+\]")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def make_tokenizer(
    chat_template: str | None,
    *,
    bos: str | None = None,
    eos: str | None = None,
    specials: list[str] = (),
    adds_bos: bool = False,
    name: str = "test/tiny-chat",
) -> PreTrainedTokenizerFast:
    specials = [s for s in dict.fromkeys([bos, eos, *specials]) if s]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(["<unk>", *specials, "hello", "world"]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if adds_bos and bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token="<unk>",
        additional_special_tokens=[s for s in specials if s not in (bos, eos)],
        chat_template=chat_template,
        name_or_path=name,
    )


def fixture_tokenizer(data: dict, adds_bos: bool | None = None, extra_specials: list[str] = ()) -> PreTrainedTokenizerFast:
    source = data["chat_template"]
    specials = [*data["extra_stop_tokens"], *_MARKUP.findall(source), *extra_specials]
    if "[AVAILABLE_TOOLS]" in source:
        specials += _MISTRAL_CONTROL.findall(source)
    if adds_bos is None:
        adds_bos = ADDS_BOS.get(data["model_id"].replace("/", "__"), False)
    return make_tokenizer(
        source,
        bos=data["bos_token"],
        eos=data["eos_token"],
        specials=specials,
        adds_bos=adds_bos,
        name=data["model_id"],
    )
