"""`probe`: a model's step-1 instructions under each system-prompt choice, side by side, before a big run.

    probe(samples=8, max_tokens=32)   # the embedded model
    -> {"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "family": None, "samples": 8,
        "settings": {"engine": "transformers", "max_tokens": 32, "early_stop": True, "temperature": 1.0,
                     "top_p": 1.0, "seed": 0, "chat_template_kwargs": None},
        "variants": {
            "derived":   {"system_prompt": None, "pre_query": "<|im_start|>system\\n...", "same_as": None,
                          "metrics": {"empty": 0.0, "fragment": 0.125, ..., "usable": 0.75}, "score": 0.75,
                          "examples": ["How do I ...", ...]},
            "template":  {"system_prompt": "template", ..., "same_as": "derived"},   # same prompt: not resampled
            "no_system": {"system_prompt": "", "pre_query": "<|im_start|>system\\n<|im_end|>\\n...", ...}},
        "recommendation": {"variant": "derived", "system_prompt": None, "score": 0.75, "reason": "...",
                           "warning": None}}

Variants (`system_prompt` of `add_magpie_instructions`): "derived" is None (a known family's
published pre-query, else what the template renders), "template" is the template's own rendering
with its default system prompt, "no_system" is an empty system message. A variant whose pre-query
and settings equal an earlier one's is not sampled again: it says `same_as` and repeats its figures.

The score of a variant is its share of usable instructions: not empty, at least 3 words, not
ending with ":", not opening with a markdown header, no answer/step leak, no template markup,
not cut off at `max_tokens`. Ties go to more distinct first words, then to the earlier variant.
The non-English and `sanitized` (what `sanitize=True` would change) shares are reported but not
scored: a multilingual run may want the one, the sanitizer fixes the other.
The known failure this catches: Qwen2.5 without its default system prompt writes fragments
(the authors kept that prompt for the family).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from ..engines.embedded import EMBEDDED_CHAT_MODEL
from ..engines.models import ModelSpec
from ..stages.generate import add_magpie_instructions, empty
from ..stages.language import tag_language
from ..stages.sanitize import sanitize_instruction
from ..templates import TemplateError, magpie_template

DEFAULT_VARIANTS: Mapping[str, Any] = {"derived": None, "template": "template", "no_system": ""}

# Flaws that make an instruction unusable; each is a share in the metrics and counts against the score.
FLAWS = ("empty", "fragment", "ends_with_colon", "markdown_header", "answer_leak", "template_markup", "max_tokens")
METRICS = (*FLAWS, "non_english", "sanitized", "usable", "mean_length", "distinct_first_words",
           "distinct_first_word_share")
# Step-1 options a variant may set besides its system prompt.
VARIANT_OPTIONS = ("system_prompt", "max_tokens", "early_stop", "temperature", "top_p", "first_token_bias",
                   "first_token_temperature", "instruction_prefix")
LEAK_RULES = ("answer_marker", "step_marker")  # sanitizer classes that mean the model answered itself
LOW_SCORE = 0.5  # below it the recommendation carries a warning: no variant gives mostly usable rows

# A word: a run of letters/digits (inner ' or - allowed), or one CJK/kana/hangul character, which
# carries about a word's meaning and is written without spaces.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W_]+(?:['’-][^\W_]+)*")
_HEADER = re.compile(r"\s*#{1,6}(?:\s|$)")


def words(text: str) -> list[str]:
    """The words of `text` (CJK characters one each).

    >>> words("What's a well-known fact?"), words("写一首诗")
    (["What's", 'a', 'well-known', 'fact'], ['写', '一', '首', '诗'])
    """
    return _WORD.findall(text)


def instruction_flaws(text: str | None, issue: str | None = None, family: str | None = None) -> tuple[str, ...]:
    """The flaws (names from FLAWS) of one sampled instruction, given its `instruction_issue`.

    An answer/step leak is what `sanitize_instruction` (with the template's `family`) cuts as
    an answer or step marker.

    >>> instruction_flaws("Solve the following:"), instruction_flaws("## Intro to Rust"), instruction_flaws("Hi there")
    (('ends_with_colon',), ('markdown_header',), ('fragment',))
    >>> instruction_flaws("Name a prime.\\nAnswer: 7"), instruction_flaws(" "), instruction_flaws("Why is it so?")
    (('answer_leak',), ('empty',), ())
    """
    text = text or ""
    if not text.strip() or issue == "empty":
        return ("empty",)
    found = []
    if len(words(text)) < 3:
        found.append("fragment")
    if text.rstrip().endswith((":", "：")):
        found.append("ends_with_colon")
    if _HEADER.match(text):
        found.append("markdown_header")
    if sanitize_instruction(text, family)[1] in LEAK_RULES:
        found.append("answer_leak")
    if issue == "template_markup":
        found.append("template_markup")
    if issue == "max_tokens":  # cut off mid-instruction
        found.append("max_tokens")
    return tuple(found)


def _first_word(text: str) -> str | None:
    found = words(text)
    return found[0].lower() if found else None


def instruction_metrics(
    instructions: Sequence[str | None],
    issues: Sequence[str | None] | None = None,
    languages: Sequence[str | None] | None = None,
    family: str | None = None,
) -> dict[str, float | int]:
    """Shares of each flaw, of non-English, sanitizable and usable rows; mean length; first words.

    Shares are over all rows; `mean_length` is in characters over all rows; first words (lower
    case) are counted over the non-empty rows. `sanitized` is the share `sanitize=True` would
    change (any rule; leaks are one kind). `languages` are `tag_language` codes (None: undecided,
    not counted as non-English); `issues` are `instruction_issue` values; `family` the template's.

    >>> m = instruction_metrics(["Why is the sky blue?", "Sky", ""], [None, None, "empty"], ["EN", None, None])
    >>> m["fragment"], m["empty"], m["usable"], m["distinct_first_words"], m["mean_length"]
    (0.3333, 0.3333, 0.3333, 2, 7.7)
    """
    n = len(instructions)
    issues = list(issues) if issues is not None else [None] * n
    languages = list(languages) if languages is not None else [None] * n
    if not (len(issues) == len(languages) == n):
        raise ValueError(f"instruction_metrics needs one issue and one language per instruction, got "
                         f"{n} instructions, {len(issues)} issues, {len(languages)} languages")
    flaws = [instruction_flaws(text, issue, family) for text, issue in zip(instructions, issues)]
    texts = [text or "" for text in instructions]
    firsts = [w for w in (_first_word(t) for t in texts if t.strip()) if w is not None]
    non_empty = sum(1 for t in texts if t.strip())

    def share(count: int) -> float:
        return round(count / n, 4) if n else 0.0

    metrics: dict[str, float | int] = {name: share(sum(name in f for f in flaws)) for name in FLAWS}
    metrics["non_english"] = share(sum(1 for code in languages if code not in (None, "EN")))
    metrics["sanitized"] = share(sum(1 for t in texts if t.strip() and sanitize_instruction(t, family)[1]))
    metrics["usable"] = share(sum(1 for f in flaws if not f))
    metrics["mean_length"] = round(sum(len(t) for t in texts) / n, 1) if n else 0.0
    metrics["distinct_first_words"] = len(set(firsts))
    metrics["distinct_first_word_share"] = round(len(set(firsts)) / non_empty, 4) if non_empty else 0.0
    return metrics


def _variant_options(name: str, value: Any) -> dict[str, Any]:
    if value is None or isinstance(value, str):
        return {"system_prompt": value}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(VARIANT_OPTIONS))
        if unknown:
            raise ValueError(f"probe variant {name!r} sets {unknown}: a variant is a system prompt (None, "
                             f"'template' or a string) or a mapping of {list(VARIANT_OPTIONS)}")
        return dict(value)
    raise ValueError(f"probe variant {name!r} must be a system prompt (None, 'template' or a string) or a "
                     f"mapping of {list(VARIANT_OPTIONS)}, not {type(value).__name__}")


def _reason(name: str, report: Mapping[str, Any], sampled: Sequence[str]) -> str:
    variants = report["variants"]

    def worst(other: str) -> str:
        metrics = variants[other]["metrics"]
        flaw = max(FLAWS, key=lambda f: metrics[f])
        return f" ({flaw.replace('_', ' ')} {metrics[flaw]:.0%})" if metrics[flaw] else ""

    best = variants[name]["metrics"]
    text = f"{name} gives the most usable instructions ({best['usable']:.0%}"
    text += f", {best['distinct_first_word_share']:.0%} distinct first words)"
    others = [f"{other} {variants[other]['metrics']['usable']:.0%}{worst(other)}" for other in sampled if other != name]
    return text + ("; " + ", ".join(others) if others else "")


def probe(
    model: str | None = None,
    *,
    engine: str = "transformers",
    engine_options: Mapping[str, Any] | None = None,
    samples: int = 64,
    max_tokens: int | None = None,
    early_stop: bool | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    variants: Mapping[str, Any] = DEFAULT_VARIANTS,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    examples: int = 3,
    instruction_prefixes: Sequence[str] = (),
) -> dict[str, Any]:
    """Sample `samples` step-1 instructions per variant, measure them, recommend a variant.

    `variants` maps a name to a `system_prompt` value, or to a mapping of step-1 options
    (VARIANT_OPTIONS) that override the probe's own, e.g. `{"no_bias": {"first_token_bias": {}}}`;
    `chat_template_kwargs` go to every variant's template (e.g. Qwen3's `enable_thinking`).
    `max_tokens`/`early_stop` None: the defaults of `magpie-datasets generate` (128 and on for the
    embedded model, else 2048 and off). `instruction_prefixes` (Magpie-Prefill): one more variant per
    prefix, named "prefix: <text>", at the default system prompt with `instruction_prefix=<text>`; a
    prefix changes the request itself, so these variants are reported but only the others are
    recommended from. Returns the JSON-able report of the module docstring; a
    variant the template cannot render (e.g. a system message to a template without a system role)
    carries `error` and is not sampled.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"probe needs samples >= 1, got {samples!r}")
    if not variants:
        raise ValueError("probe needs at least one variant, e.g. {'derived': None}")
    embedded = model in (None, EMBEDDED_CHAT_MODEL)
    settings = {
        "engine": engine,
        "max_tokens": max_tokens if max_tokens is not None else (128 if embedded else 2048),
        "early_stop": early_stop if early_stop is not None else embedded,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
        "chat_template_kwargs": dict(chat_template_kwargs) if chat_template_kwargs else None,
    }
    if isinstance(instruction_prefixes, str) or not all(isinstance(p, str) and p for p in instruction_prefixes):
        raise ValueError(f"instruction_prefixes must be a list of non-empty strings, got {instruction_prefixes!r}")
    variants = {**variants, **{f"prefix: {p}": {"instruction_prefix": p} for p in instruction_prefixes}}
    chosen = {name: _variant_options(name, value) for name, value in variants.items()}  # checked before loading
    tokenizer = ModelSpec(model, engine, engine_options or {}).load().tokenizer
    report: dict[str, Any] = {"model": None, "family": None, "samples": samples, "settings": settings,
                              "variants": {}, "recommendation": None}
    seen: dict[tuple, str] = {}
    sampled: list[str] = []
    for name, overrides in chosen.items():
        options = {**{k: settings[k] for k in VARIANT_OPTIONS if k in settings}, **overrides}
        system_prompt = options.get("system_prompt")
        entry: dict[str, Any] = {"system_prompt": system_prompt}
        report["variants"][name] = entry
        try:
            template = magpie_template(tokenizer, system_prompt, chat_template_kwargs)
        except TemplateError as err:
            entry["error"] = str(err)
            continue
        report["family"] = report["family"] or template.family
        entry["pre_query"] = template.pre_query
        entry.update({k: v for k, v in options.items() if k != "system_prompt" and v != settings.get(k)})
        key = (template.pre_query, json.dumps({k: v for k, v in options.items() if k != "system_prompt"},
                                              sort_keys=True, default=repr))
        if key in seen:
            first = report["variants"][seen[key]]
            entry.update(same_as=seen[key], metrics=first["metrics"], score=first["score"],
                         examples=first["examples"])
            continue
        seen[key] = name
        ds = empty(samples).map(
            add_magpie_instructions, batched=True,
            fn_kwargs={"model": model, "engine": engine, "engine_options": engine_options, "seed": seed,
                       "chat_template_kwargs": chat_template_kwargs, **options},
            desc=f"probe {name}",
        )
        ds = ds.map(tag_language, batched=True, desc=f"probe {name}: language")
        report["model"] = report["model"] or ds["model"][0]
        metrics = instruction_metrics(ds["instruction"], ds["instruction_issue"], ds["language"], template.family)
        entry.update(same_as=None, metrics=metrics, score=metrics["usable"],
                     examples=[t for t in ds["instruction"] if t and t.strip()][:examples])
        sampled.append(name)
    if not sampled:
        errors = "; ".join(f"{name}: {v['error']}" for name, v in report["variants"].items())
        raise TemplateError(f"probe could not sample any variant ({errors})")
    # a prefix steers the topic, not the template: recommend from the other variants where there are any
    candidates = [n for n in sampled if not chosen[n].get("instruction_prefix")] or sampled
    # max keeps the first of equals, so ties go to the earlier variant
    best = max(candidates, key=lambda n: (report["variants"][n]["score"],
                                       report["variants"][n]["metrics"]["distinct_first_word_share"]))
    score = report["variants"][best]["score"]
    report["recommendation"] = {
        "variant": best,
        "system_prompt": report["variants"][best]["system_prompt"],
        "score": score,
        "reason": _reason(best, report, sampled),
        "warning": None if score >= LOW_SCORE else (
            f"even {best} gives only {score:.0%} usable instructions: raise max_tokens, try another "
            "system prompt or another model before a big run"),
    }
    return report


def _cell(value: Any, metric: str) -> str:
    if metric in ("mean_length",):
        return f"{value:.1f}"
    if metric == "distinct_first_words":
        return str(value)
    return f"{value:.0%}"


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a short plain-text table: one column per variant, one row per metric."""
    names = list(report["variants"])
    s = report["settings"]
    lines = [
        f"probe of {report['model']} (family: {report['family'] or 'derived from its template'}), "
        f"{report['samples']} samples per variant, max_tokens {s['max_tokens']}, early_stop {s['early_stop']}, "
        f"T={s['temperature']}, top_p={s['top_p']}, seed {s['seed']}"
    ]
    rows = [("system_prompt", [repr(report["variants"][n]["system_prompt"]) for n in names])]
    rows.append(("same as", [report["variants"][n].get("same_as") or ("error" if "error" in report["variants"][n]
                                                                       else "-") for n in names]))
    for metric in METRICS:
        rows.append((metric.replace("_", " "), [
            _cell(report["variants"][n]["metrics"][metric], metric) if "metrics" in report["variants"][n] else "-"
            for n in names]))
    width = max(len(label) for label, _ in rows) + 2
    columns = [max(len(n), *(len(cells[i]) for _, cells in rows)) + 2 for i, n in enumerate(names)]
    lines.append(" " * width + "".join(n.ljust(c) for n, c in zip(names, columns)).rstrip())
    for label, cells in rows:
        lines.append(label.ljust(width) + "".join(cell.ljust(c) for cell, c in zip(cells, columns)).rstrip())
    for name in names:
        if "error" in report["variants"][name]:
            lines.append(f"{name}: not sampled: {report['variants'][name]['error']}")
    rec = report["recommendation"]
    lines.append(f"recommendation: {rec['variant']} (system_prompt={rec['system_prompt']!r}): {rec['reason']}")
    if rec["warning"]:
        lines.append(f"warning: {rec['warning']}")
    return "\n".join(lines)
