"""Which model should answer (step 2)? Candidate responders compared by Compatibility-Adjusted Reward.

    report = compare_responders(ds, responders=["Qwen/Qwen2.5-7B-Instruct", {"model": None, "repetition_penalty": 1.2}],
                                base_model="google/gemma-3-270m", reward_model="sfairXC/FsfairX-LLaMA3-RM-v0.1")
    -> {"responders": [{"responder": "Qwen/Qwen2.5-7B-Instruct", "mean_reward": ..., "mean_base_loss": ...,
                        "car": ..., "rows": 64, "completion_tokens": ..., "seconds": ...}, ...],
        "recommendation": {"responder": ..., "car": ..., "reason": "..."}, "beta": 3.0, ...}

Xu et al. (arXiv 2411.07133, NAACL 2025) found that a bigger, stronger response generator often
teaches a given base model less well, and that reward alone does not predict it. CAR
(`analysis.compatibility`) discounts a generator's mean reward r by the base model's loss L on its
answers, `r / (1 + beta * L)`; here L is the mean over answers of each answer's mean negative
log-likelihood per token, given its instruction in the base model's own chat format (the
instruction and a blank line where it has no chat template). CAR assumes positive rewards: with a
mean reward <= 0 a higher loss would raise it, and the report says so.

Every responder answers the same sample of instructions through the normal step 2
(`generate_responses`, any engine), all of them first (each one's engine released before the next
loads), then the reward model scores every answer, then the base model reads every answer: one
model in memory at a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from datasets import Dataset

from ..analysis.compatibility import DEFAULT_BETA, compatibility_adjusted_reward
from ..engines import release_engines
from ..engines.base import generated_tokens
from ..engines.embedded import EMBEDDED_BASE_MODEL, EMBEDDED_CHAT_MODEL, gemma_base_dir
from ..engines.models import ModelSpec
from ..stages.generate import generate_responses
from ..stages.rewards import DEFAULT_REWARD_MODEL, add_rewards
from ..templates import chat_prompt


def responder_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """(name, `generate_responses` keywords) of one responder: a model id (None: the embedded
    model) or a dict of `generate_responses` keywords with an optional `name`.

    >>> responder_spec("org/model"), responder_spec({"model": None, "repetition_penalty": 1.2})
    (('org/model', {'model': 'org/model'}), ('HuggingFaceTB/SmolLM2-135M-Instruct repetition_penalty=1.2', {'model': None, 'repetition_penalty': 1.2}))
    """
    if spec is None or isinstance(spec, str):
        return (spec or EMBEDDED_CHAT_MODEL), {"model": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"a responder is a model id or a dict of generate_responses options (e.g. {{'model': 'org/model', "
            f"'temperature': 0.7}}), got {spec!r}"
        )
    options = dict(spec)
    name = options.pop("name", None)
    if name is None:
        settings = " ".join(f"{k}={v}" for k, v in sorted(options.items()) if k != "model")
        name = f"{options.get('model') or EMBEDDED_CHAT_MODEL} {settings}".strip()
    return str(name), options


def responder_specs(responders: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
    """`responder_spec` of each candidate; ValueError unless there are two or more, named apart."""
    if isinstance(responders, (str, Mapping)) or not isinstance(responders, Sequence):
        raise ValueError(f"responders is a list of two or more candidates, got {responders!r}")
    specs = [responder_spec(spec) for spec in responders]
    names = [name for name, _ in specs]
    if len(specs) < 2 or len(set(names)) != len(names):
        raise ValueError(f"compare_responders needs two or more responders with distinct names, got {names}")
    return specs


def stages_run(
    responders: Sequence[Any] = (),
    *,
    base_model: str | None = None,
    reward_model: str = DEFAULT_REWARD_MODEL,
    reward_options: Mapping[str, Any] | None = None,
    base_engine_options: Mapping[str, Any] | None = None,
    **_: Any,
) -> list[tuple[str, dict[str, Any]]]:
    """The stages `compare_responders` with these keywords runs, as (table name, kwargs), for a
    preflight: each responder's `generate_responses`, and the reward and base models as
    `reward_diff` loads them. Bad responders raise `responder_specs`' ValueError.

    >>> [name for name, _ in stages_run(["org/a", {"model": "org/b", "temperature": 0.7}])]
    ['generate_responses', 'generate_responses', 'reward_diff']
    """
    steps = [("generate_responses", options) for _, options in responder_specs(responders)]
    base = {"base_model": base_model, "base_engine": "transformers", "base_engine_options": base_engine_options}
    return [*steps, ("reward_diff", {"model": reward_model, **dict(reward_options or {}), **base})]


def answer_loss(engine: Any, instruction: str, answer: str) -> float | None:
    """The base model's mean negative log-likelihood per token of `answer` given `instruction`
    (chat format where the tokenizer has a chat template, else the instruction and a blank line);
    None for an empty answer. `engine` is a loaded transformers engine (`.model`, `.tokenizer`)."""
    tokenizer = engine.tokenizer
    if getattr(tokenizer, "chat_template", None):
        prompt = chat_prompt(tokenizer, [{"role": "user", "content": instruction}])
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    else:
        prompt_ids = tokenizer(instruction + "\n\n").input_ids  # the tokenizer's own BOS, if it adds one
    answer_ids = tokenizer(answer, add_special_tokens=False).input_ids
    if not answer_ids:
        return None
    device = next(engine.model.parameters()).device
    ids = torch.tensor([prompt_ids + answer_ids], device=device)
    with torch.inference_mode():
        # the logits of the last prompt position and of each answer position but the last predict the answer
        logits = engine.model(input_ids=ids, logits_to_keep=len(answer_ids) + 1).logits[0, :-1].float()
    targets = torch.tensor(answer_ids, device=device).unsqueeze(-1)
    return float(-torch.log_softmax(logits, dim=-1).gather(-1, targets).mean())


def compare_responders(
    ds: Dataset,
    responders: Sequence[Any],
    *,
    base_model: str | None = None,
    reward_model: str = DEFAULT_REWARD_MODEL,
    sample_size: int = 64,
    seed: int = 0,
    beta: float = DEFAULT_BETA,
    column: str = "instruction",
    reward_options: Mapping[str, Any] | None = None,
    base_engine_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer a sample of `ds`'s instructions with each responder and rank them by CAR (see the
    module docstring).

    Args:
        ds (`Dataset`): rows with the instructions (`column`); rows with an empty one are left out.
        responders (`list`): two or more candidates, each a model id (None: the embedded SmolLM2)
            or a dict of `generate_responses` keywords (`model`, `engine`, `engine_options`,
            `temperature`, `max_tokens`, `repetition_penalty`, ...) with an optional `name`.
        base_model (`str`, *optional*, defaults to `None`): the model you will fine-tune, whose
            loss on the answers measures their compatibility; None: the embedded Gemma-3-270M base.
            Loaded with the transformers engine.
        reward_model (`str`, *optional*, defaults to `DEFAULT_REWARD_MODEL`): scores every answer
            (`add_rewards`), the `r` of CAR.
        sample_size (`int`, *optional*, defaults to `64`): instructions drawn from `ds` (all where
            it has fewer), the same for every responder.
        seed (`int`, *optional*, defaults to `0`): draws the sample and seeds each responder's answers.
        beta (`float`, *optional*, defaults to `3.0`): CAR's weight of the loss (`r / (1 + beta * L)`).
        column (`str`, *optional*, defaults to `"instruction"`): the column holding the instructions.
        reward_options (`dict`, *optional*): more `add_rewards` keywords (e.g. `engine_options`).
        base_engine_options (`dict`, *optional*): options of the base model's transformers engine.

    Returns: the report of the module docstring: per responder its rows, mean reward, mean
    base-model loss, CAR, completion tokens and seconds of its answers; the recommendation (the
    highest CAR) with its reason; `beta`, the models and the formula.
    """
    specs = responder_specs(responders)
    if column not in ds.column_names:
        raise ValueError(f"compare_responders reads the instructions from column {column!r}, which the dataset lacks "
                         f"(columns: {', '.join(ds.column_names)}); pass column=...")
    if not isinstance(sample_size, int) or sample_size < 1:
        raise ValueError(f"sample_size must be an integer >= 1, got {sample_size!r}")
    rows = [i for i, text in enumerate(ds[column]) if isinstance(text, str) and text.strip()]
    if not rows:
        raise ValueError(f"no row of the dataset has an instruction in {column!r} to answer")
    sample = ds.select(rows).shuffle(seed=seed).select(range(min(sample_size, len(rows))))
    questions = Dataset.from_dict({"instruction": sample[column]})

    answered: dict[str, Dataset] = {}
    figures: dict[str, dict[str, Any]] = {}
    for name, options in specs:
        before, start = generated_tokens(), time.perf_counter()
        answered[name] = questions.map(generate_responses, batched=True, fn_kwargs={"seed": seed, **options},
                                       desc=f"answers of {name}", load_from_cache_file=False)
        figures[name] = {"seconds": round(time.perf_counter() - start, 2), "completion_tokens": generated_tokens() - before}
        release_engines()  # one responder in memory at a time
    rewards = {
        name: answers.map(add_rewards, batched=True, fn_kwargs={"model": reward_model, **(reward_options or {})},
                          desc=f"rewards of {name}", load_from_cache_file=False)["instruct_reward"]
        for name, answers in answered.items()
    }
    release_engines()
    base_path = gemma_base_dir() if base_model is None else base_model
    base = ModelSpec(base_path, "transformers", dict(base_engine_options or {})).load()
    losses = {
        name: [answer_loss(base, q, a) if a else None for q, a in zip(answers["instruction"], answers["response"])]
        for name, answers in answered.items()
    }
    release_engines()

    table = []
    for name, options in specs:
        measured = compatibility_adjusted_reward(rewards[name], losses[name], beta)
        table.append({
            "responder": name,
            "model": options.get("model") or EMBEDDED_CHAT_MODEL,
            "settings": {k: v for k, v in options.items() if k != "model"},
            "rows": measured["rows"],
            "answers_scored": measured["scored"],
            "mean_reward": measured["mean_reward"],
            "mean_base_loss": measured["mean_base_loss"],
            "car": measured["car"],
            **figures[name],
        })
    return {
        "base_model": base_model or EMBEDDED_BASE_MODEL,
        "reward_model": reward_model,
        "beta": beta,
        "rows": len(questions),
        "seed": seed,
        "formula": "CAR = mean reward / (1 + beta * mean base-model loss per token) (Xu et al., arXiv 2411.07133)",
        "responders": table,
        "recommendation": recommend(table),
    }


def recommend(table: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The responder with the highest CAR, and why (with a warning where a mean reward is <= 0).

    >>> rows = [{"responder": "a", "car": 0.5, "mean_reward": 1.0, "mean_base_loss": 0.3},
    ...         {"responder": "b", "car": 0.8, "mean_reward": 1.2, "mean_base_loss": 0.2}]
    >>> recommend(rows)["responder"]
    'b'
    """
    ranked = sorted((r for r in table if r["car"] is not None), key=lambda r: r["car"], reverse=True)
    if not ranked:
        return {"responder": None, "car": None, "reason": "no responder gave a scored answer", "warning": None}
    best = ranked[0]
    others = ", ".join(f"{r['responder']} {r['car']:.4g}" for r in ranked[1:])
    reason = (f"{best['responder']} has the highest CAR ({best['car']:.4g}: mean reward {best['mean_reward']:.4g}, "
              f"base-model loss {best['mean_base_loss']:.4g})" + (f"; {others}" if others else ""))
    negative = [r["responder"] for r in ranked if r["mean_reward"] <= 0]
    warning = (f"mean reward <= 0 for {', '.join(negative)}: CAR assumes positive rewards (a higher loss raises a "
               "negative one); compare mean reward and loss directly") if negative else None
    return {"responder": best["responder"], "car": best["car"], "reason": reason, "warning": warning}


def format_table(report: Mapping[str, Any]) -> str:
    """The report as a text table, one line per responder, best CAR first, then the recommendation."""
    lines = [f"responders answering {report['rows']} instructions; base model {report['base_model']}, "
             f"reward model {report['reward_model']}, beta {report['beta']:g}",
             f"{'responder':<48} {'reward':>9} {'loss':>8} {'CAR':>9} {'tokens':>8} {'seconds':>8}"]
    rows = sorted(report["responders"], key=lambda r: (r["car"] is None, -(r["car"] or 0.0)))
    for r in rows:
        def cell(value, width):
            return f"{value:>{width}.4g}" if isinstance(value, (int, float)) else f"{'-':>{width}}"
        lines.append(f"{r['responder'][:48]:<48} {cell(r['mean_reward'], 9)} {cell(r['mean_base_loss'], 8)} "
                     f"{cell(r['car'], 9)} {r['completion_tokens']:>8} {r['seconds']:>8.1f}")
    rec = report["recommendation"]
    lines.append(f"recommendation: {rec['reason']}")
    if rec.get("warning"):
        lines.append(f"warning: {rec['warning']}")
    return "\n".join(lines)

