"""The one small interface every stage generates through."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

# Rows one engine decodes at once on a GPU by default: vLLM's `max_num_seqs` on an H100-class GPU,
# the transformers engine's `batch_size` on CUDA. Runners keep about twice this in flight per GPU.
GPU_ROWS_IN_FLIGHT = 1024
# The same on a CPU: the transformers engine's `batch_size` there (two cores are full with far fewer).
CPU_ROWS_IN_FLIGHT = 256


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
    # First-token control (Magpie step 1): an additive logit bias per token id and a temperature
    # for the first generated token only; the rest of the completion decodes as set above. The
    # bias is added to the raw logits (before the repetition penalty and the temperature, where
    # vLLM adds its own `logit_bias`); a mapping {id: bias} is accepted and kept sorted.
    first_token_bias: tuple[tuple[int, float], ...] = ()
    first_token_temperature: float | None = None

    def __post_init__(self):
        bias = self.first_token_bias
        pairs = bias.items() if isinstance(bias, Mapping) else bias
        try:
            pairs = tuple(sorted((_token_id(t), float(b)) for t, b in pairs))
        except (TypeError, ValueError):
            raise ValueError(
                f"first_token_bias must map token ids (int) to numbers, got {bias!r}"
            ) from None
        if any(b != b for _, b in pairs):
            raise ValueError("first_token_bias values must be numbers, not NaN")
        if len({t for t, _ in pairs}) != len(pairs):
            raise ValueError(f"first_token_bias gives a token id twice: {bias!r}")
        object.__setattr__(self, "first_token_bias", pairs)
        first = self.first_token_temperature
        if first is not None:
            if isinstance(first, bool) or not isinstance(first, (int, float)) or not first > 0:
                raise ValueError(f"first_token_temperature must be a number > 0 (or None), got {first!r}")
            if self.temperature == 0:
                raise ValueError(
                    "first_token_temperature needs temperature > 0: greedy decoding has no temperature to "
                    "change for the first token (set temperature, or leave first_token_temperature None)"
                )

    @property
    def controls_first_token(self) -> bool:
        return bool(self.first_token_bias) or self.first_token_temperature is not None


def _token_id(token) -> int:
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise ValueError(token)
    return token


def check_first_token(sampling: Sampling, vocab_size: int) -> None:
    """Refuse a first-token bias on ids the model does not have."""
    outside = [t for t, _ in sampling.first_token_bias if t >= vocab_size]
    if outside:
        raise ValueError(
            f"first_token_bias names token ids {outside} outside this model's vocabulary of {vocab_size}: "
            "use ids from its tokenizer"
        )


@dataclass(frozen=True)
class Occupancy:
    """What an engine holds now, for progress bars: an engine fed too few rows shows it.

    `running`: requests decoding; `waiting`: requests queued for room (None: the engine does not
    say); `capacity`: the most it decodes at once; `kv_cache_used`: the share of the engine's KV
    cache in use, 0 to 1 (None: the engine does not say). A full KV cache with requests waiting
    is a fed engine; few decoding, none waiting and an empty cache is an under-fed one.

    >>> str(Occupancy(57, 12, 256)), str(Occupancy(3, None, 1024, kv_cache_used=0.034))
    ('engine 57/256 decoding, 12 waiting', 'engine 3/1024 decoding, KV cache 3% used')
    """

    running: int = 0
    waiting: int | None = None
    capacity: int | None = None
    kv_cache_used: float | None = None

    def __str__(self) -> str:
        text = f"engine {self.running}/{self.capacity} decoding" if self.capacity else f"engine {self.running} decoding"
        text += f", {self.waiting} waiting" if self.waiting else ""
        return text + (f", KV cache {self.kv_cache_used:.0%} used" if self.kv_cache_used is not None else "")


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


_tokenizer_lock = threading.Lock()


def encode_prompts(tokenizer, prompts: Sequence[str], sampling: Sampling) -> list[list[int]]:
    """Check a request and tokenize its prompts as they are (templates already hold the BOS)."""
    if sampling.max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {sampling.max_tokens}")
    with _tokenizer_lock:  # stages in several threads share one fast tokenizer, which is not re-entrant
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


_tokens = {"prompt": 0, "completion": 0}  # of every engine in this process: progress bars, yield reports
_thread_tokens = threading.local()  # the same, counted per calling thread (runners with batches in flight)
_count_lock = threading.Lock()


def counted(results: list[list[Completion]]) -> list[list[Completion]]:
    """`results`, after adding their tokens to `generated_tokens()` (of the process and of this thread).

    Completion tokens count per completion; prompt tokens once per prompt (its `n` samples
    share one prompt, which an engine reads once).
    """
    completion = sum(c.completion_tokens for per_prompt in results for c in per_prompt)
    prompt = sum(per_prompt[0].prompt_tokens for per_prompt in results if per_prompt)
    with _count_lock:
        _tokens["completion"] += completion
        _tokens["prompt"] += prompt
    mine = _thread_counts()
    mine["completion"] += completion
    mine["prompt"] += prompt
    return results


def _thread_counts() -> dict[str, int]:
    if not hasattr(_thread_tokens, "counts"):
        _thread_tokens.counts = {"prompt": 0, "completion": 0}
    return _thread_tokens.counts


def generated_tokens(kind: str = "completion", this_thread: bool = False) -> int:
    """Tokens of `kind` ("completion" or "prompt") that every engine of this process has counted so far;
    `this_thread=True`: only those of calls made from the calling thread.

    >>> before = generated_tokens("prompt")
    >>> _ = counted([[Completion("a", "stop", 5, 2), Completion("b", "length", 5, 3)]])
    >>> generated_tokens("prompt") - before
    5
    """
    if kind not in _tokens:
        raise ValueError(f"generated_tokens({kind!r}): kind is 'completion' or 'prompt'")
    return _thread_counts()[kind] if this_thread else _tokens[kind]
