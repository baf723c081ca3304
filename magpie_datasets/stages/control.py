"""Domain and language control of step 1 by a system prompt (paper §2, fig. 15).

    ds = magpie.empty(1000).map(magpie.add_controlled_instructions, batched=True,
                                fn_kwargs={"mix": {"math": 0.5, "code": 0.3, "language:ja": 0.2}})

A mix maps a system prompt to a weight. A key is a preset name (`PRESETS`: "math", "code",
"translation"), `"language:<ISO 639-1>"` (e.g. "language:ja"), None (no system prompt: the
plain Magpie pre-query), or any other string, used as the system prompt itself. Each row
draws its key from a hash of (seed, row uuid), so the draw is reproducible and does not
depend on batch boundaries; `assign_system_prompts` is that draw as a pure function.
"""

from __future__ import annotations

from datasets import Features, Value
from ..schema import INSTRUCTION_FEATURES

from functools import lru_cache
from typing import Any, Mapping, Sequence

from ..schema import batch_size_of, typed_batch
from ..version import versioned
from .generate import add_magpie_instructions
from .rows import weighted_draw
from .columns import require_reads
from .entry import CHAT, Stage


# the columns this stage writes (as in the published data)
CONTROL_FEATURES = Features({**INSTRUCTION_FEATURES, "control": Value("string")})

# In our own words, after the paper's fig. 15 (math, code, translation assistants).
PRESETS = {
    "math": (
        "You are an AI assistant that helps people with mathematics. Users bring you math problems "
        "of every kind and level, from arithmetic to proofs, and you guide them step by step to a "
        "correct solution, explaining the concepts and reasoning along the way."
    ),
    "code": (
        "You are an AI assistant that helps people with programming. Users ask you to write, explain, "
        "review and debug code in many languages, and you guide them step by step to working, "
        "well-explained solutions."
    ),
    "translation": (
        "You are an AI assistant specialised in translation. Users give you texts to translate between "
        "languages, and you produce accurate translations that keep the meaning, tone and nuances of "
        "the original."
    ),
}

LANGUAGE_PREFIX = "language:"


@lru_cache(maxsize=None)
def _language_names() -> dict[str, str]:
    """ISO 639-1 code (lower case) -> English language name, from lingua's language table."""
    from lingua import Language

    return {lang.iso_code_639_1.name.lower(): lang.name.replace("_", " ").title() for lang in Language.all()}


def language_prompt(language: str) -> str:
    """A system prompt that steers step 1 towards users writing in `language` (ISO 639-1, e.g. "ja")."""
    names = _language_names()
    code = str(language).strip().lower()
    if code not in names:
        raise ValueError(
            f"Unknown language code {language!r}: use an ISO 639-1 code, one of {', '.join(sorted(names))}; "
            "or pass your own system prompt string."
        )
    name = names[code]
    return (
        f"You are an AI assistant for users who write in {name}. Users ask you questions and give you "
        f"tasks in {name}, and you answer them helpfully and accurately in {name}."
    )


def system_prompt_of(key: str | None) -> str | None:
    """The system prompt text a mix key stands for (preset, "language:xx", None, or itself)."""
    if key is None or key == "template":
        return key
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"A system prompt must be a preset name, 'language:<code>', None or a non-empty string, got {key!r}")
    if key in PRESETS:
        return PRESETS[key]
    if key.startswith(LANGUAGE_PREFIX):
        return language_prompt(key[len(LANGUAGE_PREFIX) :])
    return key


def _weights(mix: str | None | Mapping[str | None, float]) -> list[tuple[str | None, float]]:
    if mix is None or isinstance(mix, str):
        return [(mix, 1.0)]
    if not isinstance(mix, Mapping) or not mix:
        raise ValueError(f"mix must be a prompt/preset or a non-empty {{prompt_or_preset: weight}} dict, got {mix!r}")
    weights = []
    for key, weight in mix.items():
        system_prompt_of(key)  # fail on a bad key before any generation
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise ValueError(f"mix weight of {key!r} must be a number >= 0, got {weight!r}")
        weights.append((key, float(weight)))
    if sum(w for _, w in weights) <= 0:
        raise ValueError(f"mix weights must not all be zero: {mix!r}")
    return weights


def assign_system_prompts(
    row_ids: Sequence[str], mix: str | None | Mapping[str | None, float], seed: int = 0
) -> list[str | None]:
    """The mix key drawn for each row id: a pure, reproducible function of (seed, row id, mix).

    Input: the rows' ids (a batch's `uuid` column). Output: one mix key per id, in order (a
    preset name, "language:<code>", a custom string or None); `system_prompt_of(key)` gives
    its system prompt text.

    Args:
        row_ids (`Sequence[str]`): the rows' ids; each row's draw depends on its own id only, not on
            the batch it is in.
        mix (`str` or `dict`, *optional*, defaults to `None`): the system prompts and their weights, as in
            `add_controlled_instructions`: {key: weight >= 0} (a preset, "language:<code>", None or any string;
            weights need not sum to 1, not all zero), or one key (a string or None) for every row.
        seed (`int`, *optional*, defaults to `0`): seed of the draw: a row takes the key whose weight covers a
            hash of (`seed`, its id) (`rows.weighted_draw`).

    >>> assign_system_prompts(["a", "b", "c"], {"math": 1, "code": 0})
    ['math', 'math', 'math']
    """
    weights = _weights(mix)
    return [weights[i][0] for i in weighted_draw(row_ids, [w for _, w in weights], seed)]


@versioned
def add_controlled_instructions(
    batch: Mapping[str, list],
    *,
    mix: str | None | Mapping[str | None, float] = None,
    language: str | None = None,
    seed: int = 0,
    **step1: Any,
) -> dict[str, list]:
    """Step 1 with a system prompt drawn per row from `mix` (or one `language`), recorded per row.

    Input: `uuid` (from `empty(n)`). Output: the columns of `add_magpie_instructions` (its
    `instruction_options.system_prompt` holds the prompt text used), plus `control`: the mix
    key the row drew ("math", "language:ja", a custom string, or None). One step-1 call per
    drawn key, the rows put back in their order.

    ```
    {"uuid": ["a...", "b..."]}, mix={"math": 1, "code": 1}
    -> {"uuid": [...], "instruction": ["Solve 2x + 3 = 7.", "Fix my Python loop ..."],
        "control": ["math", "code"], "instruction_options": [{"system_prompt": "You are ... mathematics ...", ...}, ...], ...}
    ```

    Args:
        mix (`str` or `dict`, *optional*, defaults to `None`): the system prompts that steer step 1 (paper
            fig. 15: math, code, translation) and their weights, {key: weight >= 0}, or one key for every row. A
            key is a preset of `PRESETS` ("math", "code", "translation"), "language:<ISO 639-1>" (e.g.
            "language:ja"), None (no system prompt: the plain Magpie pre-query, `system_prompt=None` of step 1)
            or any other string, used as the system prompt itself. None: every row gets the plain pre-query
            (`control` None). The key drawn is recorded in `control`, its text in `instruction_options.system_prompt`.
        language (`str`, *optional*, defaults to `None`): an ISO 639-1 code, shorthand for
            `mix="language:<code>"`: every row's system prompt asks for users who write in that language. Not
            together with `mix` (put "language:xx" keys in the mix instead). Recorded in `control`.
        seed (`int`, *optional*, defaults to `0`): seed of both the per-row draw of the mix key (a hash of
            (`seed`, the row's `uuid`), see `assign_system_prompts`) and step 1's sampling, to which it is passed.
            Recorded in `gen_input_configs.seed`.
        step1 (`Any`, *optional*): the other keyword arguments (`**step1`): those of `add_magpie_instructions`
            (model, engine, engine_options, temperature, top_p, max_tokens, early_stop, sanitize, decoding_mix,
            ...), passed to it unchanged and recorded where it records them; `system_prompt` is refused (it comes
            from `mix`).
    """
    batch = require_reads(batch, "add_controlled_instructions")
    if "system_prompt" in step1:
        raise ValueError("add_controlled_instructions takes its system prompts from mix= (or language=), not system_prompt=")
    if language is not None:
        if mix is not None:
            raise ValueError("Pass either mix= or language=, not both (add 'language:xx' keys to the mix instead)")
        mix = LANGUAGE_PREFIX + language
    rows = batch_size_of(batch)
    keys = assign_system_prompts(batch["uuid"], mix, seed)
    out: dict[str, list] = {}
    # One step-1 call per drawn prompt, rows put back in order (an empty batch still gets its columns).
    for key in dict.fromkeys(keys) or [_weights(mix)[0][0]]:
        group = [i for i in range(rows) if keys[i] == key]
        part = add_magpie_instructions(
            {"uuid": [batch["uuid"][i] for i in group]}, seed=seed, system_prompt=system_prompt_of(key), **step1
        )
        for name, values in part.items():
            column = out.setdefault(name, [None] * rows)
            for i, value in zip(group, values):
                column[i] = value
    out["control"] = keys
    return typed_batch(out, CONTROL_FEATURES)


# this module's entries of the stage table (`stages.table` collects them)
STAGES = (
    Stage("add_controlled_instructions", add_controlled_instructions, "map",
          "step 1 under a system prompt drawn per row from a domain / language mix",
          reads=("uuid",), writes=CONTROL_FEATURES, models=(CHAT,),
          passes_keywords_to="add_magpie_instructions"),
)
