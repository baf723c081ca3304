"""A recipe file as data: the `Recipe` and `Step` dataclasses; load, validate, resolve `$roles`, and
`scaled` (the overrides for scaled-down runs). The file format is in `magpie_datasets.recipes`."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ..runners.responders import compare_responders, stages_run
from ..stages.table import STAGES, stage

MAP_STAGES: dict[str, Callable[..., Any]] = {s.name: s.function for s in STAGES if s.kind == "map"}
FILTERS: dict[str, Callable[..., Any]] = {s.name: s.function for s in STAGES if s.kind == "filter"}
DATASET_STAGES: dict[str, Callable[..., Any]] = {s.name: s.function for s in STAGES if s.kind == "dataset"}
# `fn(ds, **kwargs) -> dict`: the rows go on unchanged; the report goes into the stage log (and the card)
REPORTS: dict[str, Callable[..., Any]] = {"compare_responders": compare_responders}
# the table stages a report runs, as (name, kwargs): what validation and the preflight check
REPORT_STAGES: dict[str, Callable[..., list[tuple[str, dict[str, Any]]]]] = {"compare_responders": stages_run}
_BY_KIND = {"map": MAP_STAGES, "filter": FILTERS, "dataset": DATASET_STAGES, "report": REPORTS}

EMBEDDED = "embedded"
CHAT_ROLES = ("generator", "responder", "tagger")  # roles `--model` replaces; others (reward, guard, ...) stay
_ROW_COUNT_KWARGS = {"longest": "k", "apply_recipe": "k"}  # scaled with --num-rows
_RECIPE_KEYS = {
    "name", "description", "config_name", "num_rows", "source", "license", "engine", "engine_options", "models", "stages",
}
_STEP_KEYS = {"stage", "args", "kwargs", "batch_size"}


class RecipeError(ValueError):
    """A recipe file that cannot run; the message names the file, the step and the fix."""


@dataclass(frozen=True)
class Step:
    stage: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    args: tuple[Any, ...] = ()  # positional arguments: filter factories only


@dataclass(frozen=True)
class Recipe:
    name: str
    config_name: str
    num_rows: int
    stages: tuple[Step, ...]
    models: dict[str, str | None] = field(default_factory=dict)
    engine: str = "transformers"
    engine_options: dict[str, Any] | None = None
    source: str | None = None
    license: str | None = None
    description: str = ""
    path: str = "<recipe>"


def stage_kind(name: str) -> str:
    """"map", "filter", "dataset" or "report" for a known stage name; RecipeError otherwise."""
    for kind, table in _BY_KIND.items():
        if name in table:
            return kind
    known = sorted(name for table in _BY_KIND.values() for name in table)
    raise RecipeError(f"unknown stage {name!r}; known stages: {', '.join(known)}")


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (stage names, kwargs against the functions, roles)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RecipeError(f"{path}: cannot read the recipe: {err}") from err
    return validate_recipe(recipe_from_dict(data, str(path)))


def recipe_from_dict(data: Any, path: str = "<recipe>") -> Recipe:
    if not isinstance(data, Mapping):
        raise RecipeError(f"{path}: a recipe is a mapping with keys {sorted(_RECIPE_KEYS)}")
    unknown = set(data) - _RECIPE_KEYS
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RECIPE_KEYS)}")
    for key in ("name", "num_rows", "stages"):
        if key not in data:
            raise RecipeError(f"{path}: missing {key!r}")
    if not isinstance(data["num_rows"], int) or data["num_rows"] < 1:
        raise RecipeError(f"{path}: num_rows must be a positive integer, got {data['num_rows']!r}")
    if not isinstance(data["stages"], list) or not data["stages"]:
        raise RecipeError(f"{path}: stages must be a non-empty list of {{stage: NAME, kwargs: {{...}}}}")
    steps = []
    for i, raw in enumerate(data["stages"]):
        where = f"{path}: stages[{i}]"
        if not isinstance(raw, Mapping) or "stage" not in raw:
            raise RecipeError(f"{where}: each step is a mapping with 'stage' (and optional 'kwargs', 'batch_size')")
        extra = set(raw) - _STEP_KEYS
        if extra:
            raise RecipeError(f"{where} ({raw['stage']}): unknown key(s) {sorted(extra)}; put arguments under 'kwargs'")
        kwargs = raw.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise RecipeError(f"{where} ({raw['stage']}): kwargs must be a mapping")
        args = raw.get("args") or []
        if not isinstance(args, list):
            raise RecipeError(f"{where} ({raw['stage']}): args must be a list")
        steps.append(Step(str(raw["stage"]), dict(kwargs), raw.get("batch_size"), tuple(args)))
    models = data.get("models") or {}
    if not isinstance(models, Mapping):
        raise RecipeError(f"{path}: models must map role names to model ids")
    return Recipe(
        name=str(data["name"]),
        config_name=str(data.get("config_name") or "default"),
        num_rows=data["num_rows"],
        stages=tuple(steps),
        models=dict(models),
        engine=str(data.get("engine") or "transformers"),
        engine_options=dict(data["engine_options"]) if data.get("engine_options") else None,
        source=data.get("source"),
        license=data.get("license"),
        description=str(data.get("description") or ""),
        path=path,
    )


def validate_recipe(recipe: Recipe) -> Recipe:
    """Dry run: every stage exists and accepts its kwargs (after `$role` substitution)."""
    for i, step in enumerate(recipe.stages):
        where = f"{recipe.path}: stages[{i}] ({step.stage})"
        try:
            kind = stage_kind(step.stage)
        except RecipeError as err:
            raise RecipeError(f"{where}: {err}") from None
        if step.batch_size is not None and (kind != "map" or not isinstance(step.batch_size, int) or step.batch_size < 1):
            raise RecipeError(f"{where}: batch_size is a positive integer, for map stages only")
        if step.args and kind != "filter":
            raise RecipeError(f"{where}: args (positional) are for filter stages only; use kwargs")
        kwargs = resolve_kwargs(recipe, step, where)
        signature = inspect.signature(_function(step.stage))
        try:
            if kind == "filter":
                signature.bind(*step.args, **kwargs)
            else:
                signature.bind(None, **kwargs)  # the batch / the dataset comes first
        except TypeError as err:
            params = [p for p in signature.parameters][0 if kind == "filter" else 1:]
            raise RecipeError(f"{where}: {err}; {step.stage} takes {', '.join(params)}") from None
        if kind == "report":
            try:
                REPORT_STAGES[step.stage](**kwargs)
            except ValueError as err:
                raise RecipeError(f"{where}: {err}") from None
    return recipe


def resolve_kwargs(recipe: Recipe, step: Step, where: str = "") -> dict[str, Any]:
    """`step.kwargs` with "$engine", "$engine_options" and "$<role>" replaced from the recipe."""
    values = {"engine": recipe.engine, "engine_options": recipe.engine_options, **recipe.models}

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            name = value[1:]
            if name not in values:
                raise RecipeError(
                    f"{where or recipe.path}: {value!r} refers to nothing; define it under 'models' "
                    f"(known: {', '.join('$' + k for k in values)})"
                )
            return values[name]
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, Mapping):
            return {k: resolve(v) for k, v in value.items()}
        return value

    return {key: resolve(value) for key, value in step.kwargs.items()}


def scaled(
    recipe: Recipe,
    num_rows: int | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    skip: tuple[str, ...] | list[str] = (),
) -> Recipe:
    """The recipe with the overrides applied (see the module docstring)."""
    for name in skip:  # a typo must not silently skip nothing; a known stage a recipe lacks is fine
        stage_kind(name)
    if skip:
        recipe = replace(recipe, stages=tuple(step for step in recipe.stages if step.stage not in skip))
    if max_tokens is not None:
        if max_tokens < 1:
            raise RecipeError(f"--max-tokens must be at least 1, got {max_tokens}")
        recipe = replace(recipe, stages=tuple(_capped(step, max_tokens) for step in recipe.stages))
    if num_rows is not None:
        if num_rows < 1:
            raise RecipeError(f"--num-rows must be at least 1, got {num_rows}")
        factor = num_rows / recipe.num_rows
        steps = []
        for step in recipe.stages:
            key = _ROW_COUNT_KWARGS.get(step.stage)
            if key and isinstance(step.kwargs.get(key), int):
                step = replace(step, kwargs={**step.kwargs, key: max(1, math.ceil(step.kwargs[key] * factor))})
            steps.append(step)
        recipe = replace(recipe, num_rows=num_rows, stages=tuple(steps))
    if model == EMBEDDED:
        recipe = replace(recipe, models={role: None for role in recipe.models}, engine="transformers",
                         engine_options=None, stages=tuple(_on_transformers(step) for step in recipe.stages))
    elif model is not None:
        recipe = replace(recipe, models={**recipe.models, **{r: model for r in CHAT_ROLES if r in recipe.models}})
    if model is not None:
        # the recipe's license is its generator's (llama3 for Llama-3 outputs); other models'
        # outputs carry their own, which the card takes from the rows' `model`
        recipe = replace(recipe, license=None)
    return recipe


def _on_transformers(step: Step) -> Step:
    """`step` with its models' own engine settings (e.g. a tagger's `engine_options`) set for the CPU default.
    A report's candidates are its own to name: it runs as written."""
    if stage_kind(step.stage) == "report":
        return step
    kwargs = dict(step.kwargs)
    for model in stage(step.stage).models:
        for name, value in ((model.engine, "transformers"), (model.options, None)):
            if name is None:  # a model without an engine keyword (a reward model's own class)
                continue
            given = kwargs.get(name)
            if name in kwargs and not (isinstance(given, str) and given.startswith("$")):
                kwargs[name] = value  # "$..." is resolved from the recipe, which is already overridden
    return replace(step, kwargs=kwargs)


def _capped(step: Step, max_tokens: int) -> Step:
    """`step` with every `*max_tokens` argument, given or defaulted, at most `max_tokens`."""
    kwargs = dict(step.kwargs)
    for name, param in inspect.signature(_function(step.stage)).parameters.items():
        if name.endswith("max_tokens"):
            value = kwargs.get(name, param.default)
            if isinstance(value, int) and value > max_tokens:
                kwargs[name] = max_tokens
    return replace(step, kwargs=kwargs)


def _function(stage: str) -> Callable[..., Any]:
    return _BY_KIND[stage_kind(stage)][stage]
