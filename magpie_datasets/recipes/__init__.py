"""Recipes: YAML files (in `builders/`) that rebuild a Magpie dataset, run stage by stage.

    recipe = load_recipe("builders/magpie-air.yaml")
    ds, log = run_recipe(recipe, num_rows=50, model="embedded")     # scaled down to the CPU
    save_for_hub(ds, "out/", config_name=recipe.config_name, stages=log)

    magpie-datasets build builders/magpie-air.yaml --num-rows 50 --model embedded --output out/

A recipe file:

    name: Magpie-Air                    # what it rebuilds
    config_name: air                    # its config in a repo holding several recipes
    num_rows: 3000000                   # rows of `empty(n)` (or the first n of `source`)
    source: null                        # optional: start from a dataset (Hub id, or a folder or file on disk)
    license: llama3                     # optional card license (default: the generator's)
    engine: vllm                        # "$engine" in stage kwargs
    engine_options: {tensor_parallel_size: 4}   # "$engine_options"
    models:                             # "$generator", "$tagger", ... in stage kwargs
      generator: meta-llama/Meta-Llama-3-8B-Instruct
      tagger: meta-llama/Meta-Llama-3-8B-Instruct
    stages:                             # run top to bottom
      - stage: add_magpie_instructions  # a stage of the table (stages/table.py): map, filter or dataset
        kwargs: {model: $generator, engine: $engine, temperature: 1.0}
        batch_size: 1000                # optional, map stages only
      - stage: language_is              # positional arguments, for filters like language_is(*codes)
        args: [ZH]

A MAP_STAGES function runs as `ds.map(fn, batched=True, fn_kwargs=kwargs)`, a FILTERS
factory as `ds.filter(factory(*args, **kwargs), batched=True)`, a DATASET_STAGES function as
`fn(ds, **kwargs)`, a REPORTS function (`compare_responders`) as `fn(ds, **kwargs)` with the rows
going on unchanged and its report in the stage log (and the card). Overrides, for scaled-down runs: `num_rows` scales the row count (and a
`k` of `longest` / `apply_recipe` in proportion); `model` replaces the chat-model roles
(generator, responder, tagger) and drops the recipe's `license` (the card then takes the new
generator's), and `model="embedded"` sets every role to its stage's
embedded default and the engine to "transformers", so a recipe runs offline on a CPU;
`max_tokens` caps every `*max_tokens` argument (given or defaulted); `skip` drops named stages (e.g. the reward
stages, for which no model ships offline).
"""

# The package, one job a module: `recipe` (the file as data: load, validate, resolve, scale),
# `run` (running it), `check` (its preflight), `loaders` (datasets on disk). The `build` command is
# in `magpie_datasets.cli.build`.

from .check import preflight_recipe
from .loaders import load_any, load_references
from .recipe import (
    CHAT_ROLES,
    DATASET_STAGES,
    EMBEDDED,
    FILTERS,
    MAP_STAGES,
    REPORTS,
    Recipe,
    RecipeError,
    Step,
    load_recipe,
    recipe_from_dict,
    resolve_kwargs,
    scaled,
    stage_kind,
    validate_recipe,
)
from .run import cache_keys, run_recipe, run_recipe_measured

__all__ = [
    "CHAT_ROLES",
    "DATASET_STAGES",
    "EMBEDDED",
    "FILTERS",
    "MAP_STAGES",
    "REPORTS",
    "Recipe",
    "RecipeError",
    "Step",
    "cache_keys",
    "load_any",
    "load_recipe",
    "load_references",
    "preflight_recipe",
    "recipe_from_dict",
    "resolve_kwargs",
    "run_recipe",
    "run_recipe_measured",
    "scaled",
    "stage_kind",
    "validate_recipe",
]
