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

Modules: `render` (rendering, splitting, BOS handling, template keywords), `families` (the
known model families and their published strings), `magpie` (`ChatTemplate` and the prompts),
`reasoning` (thinking markers), `tokens` (stop and first-token-bias token ids).
"""

from .magpie import (
    ChatTemplate,
    chat_prompt,
    describe,
    magpie_template,
    next_user_prefix,
)
from .reasoning import THINK_MARKERS, reasoning_markers
from .render import (
    USER_SENTINEL,
    TemplateError,
    template_kwargs,
    template_kwargs_record,
)
from .tokens import first_token_bias_ids, stop_token_ids

__all__ = [
    "THINK_MARKERS",
    "USER_SENTINEL",
    "ChatTemplate",
    "TemplateError",
    "chat_prompt",
    "describe",
    "first_token_bias_ids",
    "magpie_template",
    "next_user_prefix",
    "reasoning_markers",
    "stop_token_ids",
    "template_kwargs",
    "template_kwargs_record",
]
