"""Loading a reward model: its settings (`engine_options`), the checks that refuse a model that
is not one before any weights load, and `load_reward_model`, cached with every other model of
the process (`engines.cached_model`, freed by `release_engines()`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from ...engines import cached_model, model_source, resolve_model
from ...engines.models import filled_options

DEFAULT_REWARD_MODEL = "sfairXC/FsfairX-LLaMA3-RM-v0.1"  # the reward model of the authors' Pro datasets

# A reward model's settings, the keys of `engine_options`, with their defaults: the first three
# change what is loaded, `batch_size` and `max_length` (tokens per conversation; None: no cut)
# how it scores.
REWARD_OPTIONS: dict[str, Any] = {
    "trust_remote_code": False,
    "dtype": None,
    "device": None,
    "batch_size": 8,
    "max_length": 4096,
}


class RewardModelError(ValueError):
    """The named model cannot be used as a reward model (wrong type, needs remote code, ...)."""


class RewardModel(NamedTuple):
    """A loaded reward model, its tokenizer and what its weights are (`engines.model_source`)."""

    model: Any
    tokenizer: Any
    model_source: str

    @property
    def dtype(self) -> str:
        """The weights' dtype as rows record it: "float32", "bfloat16", ..."""
        return str(self.model.dtype).removeprefix("torch.")


def reward_options(engine_options: Mapping[str, Any] | None, stage: str = "add_rewards") -> dict[str, Any]:
    """`engine_options` with every reward-model setting filled in; an unknown key is a `ValueError`.

    >>> reward_options({"batch_size": 2})["batch_size"], reward_options(None)["max_length"]
    (2, 4096)
    >>> reward_options({"tensor_parallel_size": 2})
    Traceback (most recent call last):
    ...
    ValueError: add_rewards: unknown engine_options key 'tensor_parallel_size'; a reward model takes trust_remote_code, dtype, device, batch_size, max_length
    """
    return filled_options(stage, engine_options, REWARD_OPTIONS, "a reward model")


def _read_config(path: str) -> dict:
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise RewardModelError(f"{path} has no config.json, so it is not a Hugging Face model directory.")
    with open(config_file, encoding="utf-8") as f:
        return json.load(f)


def check_reward_folder(model: str, path: str, trust_remote_code: bool) -> None:
    """Fail before loading any weights when the checkpoint in `path` is not a sequence classifier
    (a `RewardModelError` naming the fix); the preflight calls it too."""
    config = _read_config(path)
    remote = (config.get("auto_map") or {}).get("AutoModelForSequenceClassification")
    if remote:
        if not trust_remote_code:
            raise RewardModelError(
                f"Reward model {model!r} runs its own code ({remote}). Read that code, then allow it with "
                "trust_remote_code=True in engine_options (fn_kwargs={'engine_options': {'trust_remote_code': True}})."
            )
        return
    architectures = config.get("architectures") or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise RewardModelError(
            f"{model!r} is a {', '.join(architectures)}, not a sequence-classification reward model "
            "(an AutoModelForSequenceClassification with one output). Name a reward model such as "
            f"{DEFAULT_REWARD_MODEL!r} or RLHFlow/ArmoRM-Llama3-8B-v0.1 (with trust_remote_code=True)."
        )


def load_reward_model(model: str, engine_options: Mapping[str, Any] | None = None) -> RewardModel:
    """The reward model `model` with the load settings of `engine_options` (trust_remote_code,
    dtype, device), loaded once per process until `release_engines()`; weights never downloaded
    offline.
    """
    key = reward_model_key(model, engine_options)
    return cached_model(key, lambda: _load_reward_model(*key[1:]))


def reward_model_key(model: str, engine_options: Mapping[str, Any] | None = None) -> tuple:
    """The cache key of `load_reward_model(model, engine_options)`: the settings that change what
    is loaded (not `batch_size` or `max_length`).

    >>> reward_model_key("rm", {"batch_size": 2}) == reward_model_key("rm")
    True
    """
    options = reward_options(engine_options)
    return ("reward", model, options["trust_remote_code"], options["dtype"], options["device"])


def _load_reward_model(model: str, trust_remote_code: bool, dtype: str | None, device: str | None) -> RewardModel:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not isinstance(model, str) or not model:
        raise RewardModelError(f"add_rewards needs a reward model name or directory, got {model!r}.")
    path = resolve_model(model)
    check_reward_folder(model, path, trust_remote_code)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    try:
        reward_model, info = AutoModelForSequenceClassification.from_pretrained(
            path, output_loading_info=True, **kwargs
        )
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise RewardModelError(
                f"Reward model {model!r} needs its own code: pass trust_remote_code=True in engine_options "
                "after reading it."
            ) from err
        raise RewardModelError(f"{model!r} cannot be loaded as a sequence-classification model: {err}") from err
    # A causal LM without `architectures` in its config loads with a fresh, random head: refuse it.
    head = [k for k in info.get("missing_keys", []) if k.split(".")[0] in {"score", "classifier", "v_head"}]
    if head:
        raise RewardModelError(
            f"{model!r} has no trained reward head (missing weights: {', '.join(sorted(head))}); it is not a "
            "reward model. Name a sequence-classification reward model."
        )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    reward_model.to(device).eval()
    return RewardModel(reward_model, tokenizer, model_source(path))
