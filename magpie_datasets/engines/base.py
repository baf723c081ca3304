"""The one small interface every stage generates through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Sampling:
    """Decoding options, engine-independent. `temperature == 0` means greedy."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    # >1 lowers the tokens already in the prompt or the output (as transformers and vLLM do),
    # except the stop / end-of-turn tokens: they close every turn of a chat prompt, and
    # penalising them keeps small models from ever ending their answer
    repetition_penalty: float = 1.0
    # False: the penalty counts only the tokens of this completion (transformers'
    # `prompt_ignore_length`). A later turn's answer then is not pushed off every word of the
    # conversation so far, which drives small models to word soup
    penalize_prompt: bool = True
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    # Seeds every prompt of a call: prompt p draws from (seed, p). Stages pass `seeds=` to
    # `generate` instead, one per prompt from the row's id, so that a row's sample does not
    # depend on which batch it is in or where
    seed: int | None = None
    # A JSON schema (as a JSON string) the answer must follow. Engines with constrained
    # decoding (vLLM structured outputs) enforce it; the others ignore it, so callers still parse.
    json_schema: str | None = None


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of one prompt."""

    text: str  # cut before the stop string / stop token, which is not included
    finish_reason: str  # "stop" (end-of-turn or stop string) or "length" (hit max_tokens)
    prompt_tokens: int
    completion_tokens: int


class Engine(Protocol):
    """What a stage needs from a loaded model.

    `generate(["<prompt>"], Sampling(n=3))` -> `[[Completion, Completion, Completion]]`:
    one list per prompt, `sampling.n` completions each, in order. Prompts are
    full strings; an engine tokenizes them with `add_special_tokens=False`
    (templates already put the BOS in the text). `seeds`, one per prompt, seed each
    prompt's samples on their own (see `prompt_seeds`); identical prompts are fine.
    """

    name: str  # "transformers" | "vllm"
    model_id: str  # what rows record as the generator (hub id, or the local path)
    model_source: str  # what the weights are (file and hash, Hub revision or path): `engines.model_source`
    tokenizer: object  # a transformers PreTrainedTokenizerBase
    dtype: object  # the torch dtype the weights compute in

    def generate(
        self, prompts: Sequence[str], sampling: Sampling, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]: ...


def prompt_seeds(sampling: Sampling, prompts: int, seeds: Sequence[int] | None = None) -> list[str] | None:
    """One seed string per prompt: `seeds` as given, else derived from `sampling.seed` and the
    prompt's position; None when the call is unseeded.

    >>> prompt_seeds(Sampling(seed=7), 2), prompt_seeds(Sampling(), 2, seeds=[11, 12])
    (['7/0', '7/1'], ['11', '12'])
    """
    if seeds is not None:
        if len(seeds) != prompts:
            raise ValueError(f"seeds has {len(seeds)} values for {prompts} prompts: give one per prompt")
        return [str(int(s)) for s in seeds]
    if sampling.seed is None:
        return None
    return [f"{sampling.seed}/{p}" for p in range(prompts)]


def dtype_name(engine: Engine) -> str:
    """The engine's compute dtype as rows record it: "bfloat16", "float32", ..."""
    return str(engine.dtype).removeprefix("torch.")


def encode_prompts(tokenizer, prompts: Sequence[str], sampling: Sampling) -> list[list[int]]:
    """Check a request and tokenize its prompts as they are (templates already hold the BOS)."""
    if sampling.max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {sampling.max_tokens}")
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
    if any(len(ids) == 0 for ids in encoded):
        raise ValueError("Cannot generate from an empty prompt: every prompt needs at least one token")
    return encoded


def split_stops(tokenizer, stops: Sequence[str]) -> tuple[set[int], list[str]]:
    """Stop strings that are one added token become its id; the rest stay text to match.

    ChatML: `split_stops(tokenizer, ["<|im_end|>", "User:"])` -> `({2}, ["User:"])`
    """
    added = tokenizer.get_added_vocab()
    ids, texts = set(), []
    for stop in stops:
        if stop in added:
            ids.add(added[stop])
        elif stop:
            texts.append(stop)
    return ids, texts


_generated_tokens = 0  # completion tokens of every engine in this process, for progress bars


def counted(results: list[list[Completion]]) -> list[list[Completion]]:
    """`results`, after adding their completion tokens to `generated_tokens()`."""
    global _generated_tokens
    _generated_tokens += sum(c.completion_tokens for per_prompt in results for c in per_prompt)
    return results


def generated_tokens() -> int:
    """Completion tokens generated in this process so far, by every engine."""
    return _generated_tokens
