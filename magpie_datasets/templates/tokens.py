"""Token ids Magpie hands the engines: single-token stop strings and the first-token logit bias."""

from __future__ import annotations

from typing import Mapping, Sequence

from .render import _model


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
