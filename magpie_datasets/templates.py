"""Chat-template introspection: the strings Magpie feeds a chat model (see docs/design.md, Chat templates).

Everything is derived by rendering the tokenizer's own chat template through
`tokenizer.apply_chat_template(..., tokenize=False)` with a sentinel as the user text:

    magpie_template(tok)  -> ChatTemplate(pre_query="<|im_start|>user\\n",
                                          post_query="<|im_end|>\\n<|im_start|>assistant\\n",
                                          stop=("<|im_start|>", "<|im_end|>", ...),
                                          family="qwen2", system_prompt=None)
    chat_prompt(tok, [{"role": "user", "content": "Hi"}])       -> full step-2 prompt
    next_user_prefix(tok, [user, assistant])                     -> conversation + open user turn
    describe(tok)                                                -> the same as a JSON-able dict

`system_prompt`: None = the authors' published pre-query for a known family (bare user
header), else what the template renders; "template" = exactly what the template renders
before a lone user turn; any other string = sent as a system message, placed the way the
template places one. Every prompt string starts with exactly one BOS when the model uses
one, so engines tokenize with `add_special_tokens=False`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

# Plain letters: survive `trim`/`strip()`, never a special token, never in a real template.
USER_SENTINEL = "MagpieUserText7f3a9c"
_ASSISTANT_SENTINEL = "MagpieAssistantText7f3a9c"
_SYSTEM_SENTINEL = "MagpieSystemText7f3a9c"


class TemplateError(ValueError):
    """The tokenizer's chat template cannot give Magpie what it needs (message names the model)."""


# apply_chat_template's own arguments: a template keyword of the same name would clash with them.
_RENDER_ARGUMENTS = frozenset({"conversation", "messages", "tokenize", "add_generation_prompt", "tools", "documents",
                               "chat_template", "continue_final_message", "return_dict", "return_tensors"})


def template_kwargs(chat_template_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Checked keyword arguments for the chat template (e.g. Qwen3's `enable_thinking`); {} for None.

    >>> template_kwargs({"enable_thinking": False}), template_kwargs(None)
    ({'enable_thinking': False}, {})
    >>> template_kwargs({"tokenize": True})
    Traceback (most recent call last):
    ...
    magpie_datasets.templates.TemplateError: chat_template_kwargs cannot set 'tokenize', an argument of apply_chat_template itself; ...
    """
    if chat_template_kwargs is None:
        return {}
    if not isinstance(chat_template_kwargs, Mapping) or not all(isinstance(k, str) for k in chat_template_kwargs):
        raise TemplateError(
            f"chat_template_kwargs must map names to values, e.g. {{'enable_thinking': False}}, not {chat_template_kwargs!r}"
        )
    for key in chat_template_kwargs:
        if key in _RENDER_ARGUMENTS:
            raise TemplateError(
                f"chat_template_kwargs cannot set {key!r}, an argument of apply_chat_template itself; "
                "pass only the template's own variables (e.g. enable_thinking)."
            )
    try:
        json.dumps(dict(chat_template_kwargs))
    except (TypeError, ValueError) as err:
        raise TemplateError(f"chat_template_kwargs must be JSON values, to be recorded per row: {err}") from err
    return dict(chat_template_kwargs)


def template_kwargs_record(chat_template_kwargs: Mapping[str, Any] | None) -> str | None:
    """How a row records its chat-template keywords: a JSON object with sorted keys, None without any.

    A string survives Arrow and the Hub for any keys and values, which a struct would not.

    >>> template_kwargs_record({"enable_thinking": False, "a": 1}), template_kwargs_record({})
    ('{"a": 1, "enable_thinking": false}', None)
    """
    found = template_kwargs(chat_template_kwargs)
    return json.dumps(found, sort_keys=True, ensure_ascii=False) if found else None


@dataclass(frozen=True)
class ChatTemplate:
    pre_query: str  # fed alone to the model in step 1; starts with one BOS if the model uses one
    post_query: str  # what the template writes after the user text, up to the assistant's text
    stop: tuple[str, ...]  # end-of-turn markers and role headers: step 1 stops at any of them
    family: str | None  # known family recognised from the template's content, else None
    system_prompt: str | None  # None (bare / authors' choice), "template" (as rendered) or the string used
    # Step 1 only: the role names the authors also stop at (`stop_tokens_assistant`), for a reply
    # header the model writes as plain text, where no special token marks it. Not for step 2: an
    # answer may say "assistant".
    assistant_stop: tuple[str, ...] = ()
    # Step 1 only: a logit bias for the first generated token, as (token text, bias): the family's
    # preset for its bare pre-query (Llama-3.1: no markdown header as the first token), else ()
    first_token_bias: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class _Layout:
    """How a template lays out a lone user turn (the family's BOS removed from `before`)."""

    source: str  # the Jinja source
    before: str  # text before the user text
    after: str  # text after the user text, no generation prompt
    post: str  # text after the user text, with the generation prompt


@dataclass(frozen=True)
class _Family:
    name: str
    pre_query: str  # the authors' published string (magpie-align configs/model_configs.json)
    stop: tuple[str, ...]  # the authors' published stop strings
    bos: str | None  # the BOS the published string starts with; the tokenizer must use the same
    matches: Callable[[_Layout], bool]
    assistant_stop: tuple[str, ...] = ("assistant",)  # the authors' stop_tokens_assistant
    first_token_bias: tuple[tuple[str, float], ...] = ()  # with the bare pre-query (system_prompt=None)


_LLAMA3_USER = "<|start_header_id|>user<|end_header_id|>\n\n"
_LLAMA3_STOP = ("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>")
_QWEN_STOP = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
_QWEN2_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
_QWEN25_SYSTEM = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
)
_CHATML_USER = "<|im_start|>user\n"
# The release's de-markdown logits processor for Llama-3.1 (its str_utils): the first token of a
# step-1 instruction may not be a markdown header; -9999.999 is the release's value.
_NO_MARKDOWN_HEADER = tuple((header, -9999.999) for header in ("#", "##", "###", "####"))

# Recognised by what the template writes around a user turn (or a distinctive line of its
# source), never by the model's name. Order matters: the first match wins.
_FAMILIES = (
    # Llama-3.1/3.2/3.3 always inject a dated system block; the authors used the bare header.
    # Their generation_config also ends on <|eom_id|> (tool turns), which 3.2's template never writes.
    _Family(
        "llama-3.1",
        "<|begin_of_text|>" + _LLAMA3_USER,
        (*_LLAMA3_STOP, "<|eom_id|>"),
        "<|begin_of_text|>",
        lambda t: t.before.endswith("<|eot_id|>" + _LLAMA3_USER) and "Cutting Knowledge Date:" in t.before,
        first_token_bias=_NO_MARKDOWN_HEADER,
    ),
    _Family(
        "llama-3",
        "<|begin_of_text|>" + _LLAMA3_USER,
        _LLAMA3_STOP,
        "<|begin_of_text|>",
        lambda t: t.before == _LLAMA3_USER and t.after.startswith("<|eot_id|>"),
    ),
    # Qwen2.5 without its default system prompt gives fragmentary queries: keep it (authors' choice).
    _Family(
        "qwen2.5",
        _QWEN25_SYSTEM + _CHATML_USER,
        _QWEN_STOP,
        None,
        lambda t: t.before == _QWEN25_SYSTEM + _CHATML_USER,
        assistant_stop=("Assistant", "assistant"),  # as the authors' Qwen2 entries
    ),
    # Qwen2 (and Qwen1.5, same template): the authors dropped the injected default system prompt.
    _Family(
        "qwen2",
        _CHATML_USER,
        _QWEN_STOP,
        None,
        lambda t: t.before == _QWEN2_SYSTEM + _CHATML_USER,
        assistant_stop=("Assistant", "assistant"),
    ),
    # Yi writes the assistant header after every user turn, generation prompt or not.
    _Family(
        "yi-1.5",
        "<|startoftext|>" + _CHATML_USER,
        ("<|startoftext|>", "<|endoftext|>", "<|im_end|>"),
        "<|startoftext|>",
        lambda t: t.before == _CHATML_USER and t.after == "<|im_end|>\n<|im_start|>assistant\n",
    ),
    # Gemma-1/2 (same template) reject system messages; Gemma-3 folds them in, and is not this.
    _Family(
        "gemma-2",
        "<bos><start_of_turn>user\n\n",
        ("<eos>", "<bos>", "<end_of_turn>"),
        "<bos>",
        lambda t: t.before == "<start_of_turn>user\n" and "System role not supported" in t.source,
    ),
    _Family(
        "phi-3",
        "<s> <|user|>\n",
        ("</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
        "<s>",
        lambda t: t.before == "<|user|>\n" and t.after.startswith("<|end|>"),
    ),
    _Family(
        "mistral-v0.3",
        "<s> [INST] ",
        ("<s>", "</s>", "[INST]", "[/INST]"),
        "<s>",
        lambda t: t.before == "[INST] " and t.post == "[/INST]",
    ),
    _Family(
        "llama-2",
        "<s> [INST] ",
        ("</s>", "<s>", "<unk>"),
        "<s>",
        lambda t: t.before == "[INST] " and t.post == " [/INST]" and "<<SYS>>" in t.source,
    ),
)


def _model(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__


def _render(
    tokenizer,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    what: str,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(
            f"{_model(tokenizer)} has no chat template, so Magpie cannot build its prompts. "
            "Use an instruct/chat model, or set `tokenizer.chat_template` to its chat template."
        )
    try:
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt,
            **template_kwargs(chat_template_kwargs),
        )
    except Exception as err:  # Jinja's raise_exception, a missing key, a non-string content ...
        raise TemplateError(f"The chat template of {_model(tokenizer)} cannot render {what}: {err}") from err
    if not isinstance(text, str):  # some versions return a list for batched input
        raise TemplateError(f"The chat template of {_model(tokenizer)} did not render {what} as text.")
    return text


def _split(tokenizer, text: str, sentinel: str, what: str) -> tuple[str, str]:
    if text.count(sentinel) != 1:
        raise TemplateError(
            f"The chat template of {_model(tokenizer)} does not write {what} verbatim exactly once, "
            "so the text around it cannot be cut out."
        )
    before, _, after = text.partition(sentinel)
    return before, after


def _adds_bos(tokenizer) -> bool:
    """Whether `tokenizer(text)` (add_special_tokens=True) puts a BOS in front on its own."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return with_special[:1] == [bos_id] and without[:1] != [bos_id]


def _one_bos(tokenizer, text: str) -> str:
    """`text` with exactly one leading BOS if the model uses one (never two)."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or text.startswith(bos) or not _adds_bos(tokenizer):
        return text
    return bos + text


def _without_bos(tokenizer, text: str) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos) :] if bos and text.startswith(bos) else text


def _user_turn(
    tokenizer, system_prompt: str | None, chat_template_kwargs: Mapping[str, Any] | None = None
) -> tuple[str, str, str]:
    """(before, after, post) of the sentinel for a lone user turn, after an optional system message."""
    messages = [{"role": "user", "content": USER_SENTINEL}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    what = "a system message followed by a user turn" if system_prompt is not None else "a lone user turn"
    try:
        plain = _render(tokenizer, messages, False, what, chat_template_kwargs)
        prompted = _render(tokenizer, messages, True, what, chat_template_kwargs)
    except TemplateError as err:
        hint = (
            "it does not take a system message: leave system_prompt unset"
            if system_prompt is not None
            else "Magpie step 1 needs one; if it insists on a system message, pass system_prompt='...'"
        )
        raise TemplateError(f"{err} ({hint}).") from err
    before, after = _split(tokenizer, plain, USER_SENTINEL, "the user text")
    post = _split(tokenizer, prompted, USER_SENTINEL, "the user text")[1]
    if not _without_bos(tokenizer, before).strip():
        raise TemplateError(
            f"The chat template of {_model(tokenizer)} puts nothing before the user text, so the model gets "
            "no cue that a user turn has started (Magpie step 1 needs one). Use a chat/instruct model."
        )
    return before, after, post


def _family(tokenizer, source: str, before: str, after: str, post: str) -> _Family | None:
    bos = getattr(tokenizer, "bos_token", None)
    for family in _FAMILIES:
        if family.bos is not None and family.bos != bos:
            continue  # the published string would start with the wrong BOS
        # Strip only the family's own BOS: SmolLM2's BOS is <|im_start|>, also its role-header start.
        rest = before[len(family.bos) :] if family.bos and before.startswith(family.bos) else before
        if family.matches(_Layout(source, rest, after, post)):
            return family
    return None


def _markup_tokens(tokenizer) -> list[str]:
    """Special tokens of the tokenizer (BOS/EOS, role headers, end-of-turn markers ...)."""
    tokens = set(getattr(tokenizer, "all_special_tokens", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens.update(str(added) for added in decoder.values() if getattr(added, "special", False))
    return [t for t in tokens if t]


def _in_order(tokens: list[str], text: str) -> list[str]:
    found = [t for t in tokens if t in text]
    return sorted(found, key=lambda t: (text.index(t), -len(t), t))


def _generation_config_eos(tokenizer) -> list[str]:
    """EOS tokens listed in a local model directory's generation_config.json (e.g. Llama-3's <|eom_id|>)."""
    directory = getattr(tokenizer, "name_or_path", None)
    path = os.path.join(directory, "generation_config.json") if directory and os.path.isdir(directory) else None
    if not path or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        ids = json.load(f).get("eos_token_id")
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return [t for t in tokenizer.convert_ids_to_tokens(ids) if t]


def _stops(
    tokenizer, family: _Family | None, post: str, chat_template_kwargs: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """Everything that ends a turn or opens the next role's, so step 1 never runs on into a fake reply.

    eos, generation_config eos, the family's published stops, every special token the template
    writes around turns, and plain-text role headers ("Assistant:", "[/INST]") where a gap between
    turns has no special token at all.
    """
    conversation = [
        {"role": "user", "content": USER_SENTINEL},
        {"role": "assistant", "content": _ASSISTANT_SENTINEL},
        {"role": "user", "content": USER_SENTINEL},
    ]
    rendered = []
    for messages in ([{"role": "system", "content": _SYSTEM_SENTINEL}, *conversation], conversation):
        try:
            rendered.append(_render(tokenizer, messages, True, "a conversation", chat_template_kwargs))
        except TemplateError:
            continue  # e.g. no system role: the other rendering still shows the turn markers
    gaps = [post]  # what the template writes after a user turn, and after an assistant turn
    gaps += [text.partition(_ASSISTANT_SENTINEL)[2].partition(USER_SENTINEL)[0] for text in rendered[-1:]]
    markup = _markup_tokens(tokenizer)
    stops = list(family.stop if family else ())
    stops += [getattr(tokenizer, "eos_token", None) or ""]
    stops += _generation_config_eos(tokenizer)
    stops += _in_order(markup, "".join(rendered) + post)
    stops += [gap.strip() for gap in gaps if not _in_order(markup, gap)]
    return tuple(dict.fromkeys(s for s in stops if s))


def magpie_template(
    tokenizer, system_prompt: str | None = None, chat_template_kwargs: Mapping[str, Any] | None = None
) -> ChatTemplate:
    """Pre-query, post-query and stop strings for Magpie step 1 with this tokenizer's chat template.

    `system_prompt`: None (a known family's published pre-query, else as rendered), "template"
    (as rendered) or a system prompt string. `chat_template_kwargs` go to every rendering (e.g.
    Qwen3's {"enable_thinking": False}). Raises TemplateError naming the model when the
    template cannot render a (system +) user turn or puts nothing before the user text.

    >>> from transformers import AutoTokenizer
    >>> from magpie_datasets.engines import resolve_model
    >>> template = magpie_template(AutoTokenizer.from_pretrained(resolve_model(None)))  # SmolLM2
    >>> template.pre_query.endswith("<|im_end|>\\n<|im_start|>user\\n"), template.stop
    (True, ('<|im_end|>', '<|im_start|>'))
    """
    if system_prompt is not None and not isinstance(system_prompt, str):
        raise TemplateError(f"system_prompt must be None, 'template' or a string, not {type(system_prompt).__name__}")
    source = tokenizer.get_chat_template() if getattr(tokenizer, "chat_template", None) else ""
    try:
        before, after, post = _user_turn(tokenizer, None, chat_template_kwargs)
        family = _family(tokenizer, source, before, after, post)
    except TemplateError:
        if system_prompt in (None, "template"):
            raise
        family = None  # a template that insists on a system message: fine when one is given
    if system_prompt is None and family is not None:
        pre_query = family.pre_query
    elif system_prompt in (None, "template"):
        pre_query = before
    else:
        before, _, post = _user_turn(tokenizer, system_prompt, chat_template_kwargs)
        if system_prompt.strip() and system_prompt.strip() not in before:
            raise TemplateError(
                f"The chat template of {_model(tokenizer)} drops the system message, so system_prompt "
                "cannot steer it: leave system_prompt unset."
            )
        pre_query = before
    return ChatTemplate(
        pre_query=_one_bos(tokenizer, pre_query),
        post_query=post,
        stop=_stops(tokenizer, family, post, chat_template_kwargs),
        family=family.name if family else None,
        system_prompt=system_prompt,
        assistant_stop=family.assistant_stop if family else (),
        first_token_bias=family.first_token_bias if family and system_prompt is None else (),
    )


def chat_prompt(
    tokenizer,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The model's prompt for `messages` ([{role, content}, ...]) through its chat template, one BOS."""
    text = _render(tokenizer, messages, add_generation_prompt, "these messages", chat_template_kwargs)
    return _one_bos(tokenizer, text)


def next_user_prefix(
    tokenizer, messages: Sequence[Mapping[str, Any]], chat_template_kwargs: Mapping[str, Any] | None = None
) -> str:
    """`messages` rendered, then a new user turn opened and cut where its text would start (multi-turn step 1)."""
    turns = [*messages, {"role": "user", "content": USER_SENTINEL}]
    text = _render(tokenizer, turns, False, "a next user turn", chat_template_kwargs)
    return _one_bos(tokenizer, _split(tokenizer, text, USER_SENTINEL, "the user text")[0])


THINK_MARKERS = ("<think>", "</think>")  # DeepSeek-R1, QwQ, Qwen3: the common default
_REASONING_SENTINEL = "MagpieReasoningText7f3a9c"
# A thinking system prompt that names its markers in words (Granite 3.2: "Write your thoughts
# after 'Here is my thought process:' and write your response after 'Here is my response:'").
_NAMED_MARKERS = re.compile(r"thoughts? after '([^']+)'.{0,80}?response after '([^']+)'", re.S)


def reasoning_markers(tokenizer, chat_template_kwargs: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
    """(start, end) around a reasoning model's thinking, as its chat template names them; None if it names none.

    Found by rendering an assistant turn with `reasoning_content` (Qwen3 writes it between
    `<think>` and `</think>`), else in the template's source: a `<think>`/`</think>` pair
    (DeepSeek-R1), or markers its thinking prompt names in words (Granite 3.2).
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [
        {"role": "user", "content": USER_SENTINEL},
        {"role": "assistant", "content": _ASSISTANT_SENTINEL, "reasoning_content": _REASONING_SENTINEL},
    ]
    try:
        text = _render(tokenizer, messages, False, "an assistant turn", chat_template_kwargs).partition(USER_SENTINEL)[2]
    except TemplateError:
        text = ""
    head, _, tail = text.partition(_REASONING_SENTINEL)
    end = tail.partition(_ASSISTANT_SENTINEL)[0].strip() if _ASSISTANT_SENTINEL in tail else ""
    if end:
        # "</x>" closes "<x>"; otherwise the start is the last line the template wrote before the reasoning
        start = "<" + end[2:] if end.startswith("</") and "<" + end[2:] in head else head.rstrip().rsplit("\n", 1)[-1]
        if start.strip() and start != end:
            return start.strip(), end
    source = tokenizer.get_chat_template()
    if all(marker in source for marker in THINK_MARKERS):
        return THINK_MARKERS
    if named := _NAMED_MARKERS.search(source):
        return named.group(1), named.group(2)
    return None


def first_token_bias_ids(
    tokenizer, bias: Mapping[str | int, float] | Sequence[tuple[str | int, float]], skip_missing: bool = False
) -> list[tuple[str, int, float]]:
    """(token text, token id, bias) for a first-token bias keyed by token id or by token text.

    A text must be exactly one token of this tokenizer (encoded without special tokens), e.g. "#"
    in Llama-3; a text that is several tokens raises, or is left out with `skip_missing` (a
    family preset, on a tokenizer that splits it). Ids are kept as given.
    """
    pairs = bias.items() if isinstance(bias, Mapping) else bias
    resolved = []
    for key, value in pairs:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"first_token_bias[{key!r}] must be a number (an additive logit bias), got {value!r}")
        if isinstance(key, int) and not isinstance(key, bool):
            resolved.append((tokenizer.decode([key]), key, float(value)))
            continue
        if not isinstance(key, str) or not key:
            raise ValueError(f"first_token_bias keys are token ids or non-empty token texts, got {key!r}")
        ids = tokenizer(key, add_special_tokens=False)["input_ids"]
        unknown = getattr(tokenizer, "unk_token_id", None)
        if len(ids) == 1 and (ids[0] != unknown or key == tokenizer.unk_token):  # not a stand-in for any text
            resolved.append((key, ids[0], float(value)))
        elif not skip_missing:
            raise ValueError(
                f"first_token_bias key {key!r} is {len(ids)} tokens for {_model(tokenizer)} ({ids}), not one: "
                "give the text of a single token, or its id"
            )
    return resolved


def stop_token_ids(tokenizer, stop: Sequence[str]) -> list[int]:
    """Ids of the stop strings that are single tokens of the vocabulary (engines can stop on ids)."""
    vocab = tokenizer.get_vocab()
    return list(dict.fromkeys(vocab[s] for s in stop if s in vocab))


def describe(tokenizer, system_prompt: str | None = None) -> dict[str, Any]:
    """JSON-able summary for `magpie-datasets template MODEL` (family is null when derived)."""
    template = magpie_template(tokenizer, system_prompt)
    return {
        "model": _model(tokenizer),
        "family": template.family,
        "system_prompt": template.system_prompt,
        "pre_query": template.pre_query,
        "post_query": template.post_query,
        "stop": list(template.stop),
        "stop_token_ids": stop_token_ids(tokenizer, template.stop),
        "bos_token": getattr(tokenizer, "bos_token", None),
        "tokenizer_adds_bos": _adds_bos(tokenizer),
        "template_pre_query": magpie_template(tokenizer, "template").pre_query,
    }
