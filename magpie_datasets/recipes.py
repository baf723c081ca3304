"""Recipes: YAML files (in `builders/`) that rebuild a Magpie dataset, run stage by stage.

    recipe = load_recipe("builders/magpie-air.yaml")
    ds, log = run_recipe(recipe, num_rows=50, model="embedded")     # scaled down to the CPU
    save_for_hub(ds, "out/", config_name=recipe.config_name, stages=log)

    magpie-datasets build builders/magpie-air.yaml --num-rows 50 --model embedded --output out/

A recipe file:

    name: Magpie-Air                    # what it rebuilds
    config_name: air                    # its config in a repo holding several recipes
    num_rows: 3000000                   # rows of `empty(n)` (or the first n of `source`)
    source: null                        # optional: start from a dataset (Hub id or folder) instead
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
`fn(ds, **kwargs)`. Overrides, for scaled-down runs: `num_rows` scales the row count (and a
`k` of `longest` / `apply_recipe` in proportion); `model` replaces the chat-model roles
(generator, responder, tagger) and drops the recipe's `license` (the card then takes the new
generator's), and `model="embedded"` sets every role to its stage's
embedded default and the engine to "transformers", so a recipe runs offline on a CPU;
`max_tokens` caps every `*max_tokens` argument (given or defaulted); `skip` drops named stages (e.g. the reward
stages, for which no model ships offline).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from datasets import Dataset

from .engines import release_engines
from .runners.ledger import Meter, StageYield, YieldReport, engines_of
from .runners.preflight import PreflightReport, Problem, preflight, print_report
from .stages.generate import empty
from .stages.table import STAGES, stage, stage_models

MAP_STAGES: dict[str, Callable[..., Any]] = {s.name: s.function for s in STAGES if s.kind == "map"}
FILTERS: dict[str, Callable[..., Any]] = {s.name: s.function for s in STAGES if s.kind == "filter"}
DATASET_STAGES: dict[str, Callable[..., Any]] = {s.name: s.function for s in STAGES if s.kind == "dataset"}

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
    """"map", "filter" or "dataset" for a known stage name; RecipeError otherwise."""
    for kind, table in (("map", MAP_STAGES), ("filter", FILTERS), ("dataset", DATASET_STAGES)):
        if name in table:
            return kind
    known = sorted([*MAP_STAGES, *FILTERS, *DATASET_STAGES])
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
    """`step` with its models' own engine settings (e.g. a tagger's `engine_options`) set for the CPU default."""
    kwargs = dict(step.kwargs)
    for model in stage(step.stage).models:
        for name, value in ((model.engine, "transformers"), (model.options, None)):
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
    return {"map": MAP_STAGES, "filter": FILTERS, "dataset": DATASET_STAGES}[stage_kind(stage)][stage]


def run_recipe(
    recipe: Recipe, checkpoint_dir: str | Path | None = None, ray: bool = False, **overrides: Any
) -> tuple[Dataset, list[dict[str, Any]]]:
    """Run the recipe with `scaled` overrides; returns the dataset and the stage log for the card.
    `run_recipe_measured` also returns the run's yield report.

    The log is `[{"stage": name, "rows": rows after it, **kwargs}, ...]`, starting with where
    the rows came from. With `checkpoint_dir`, every map stage runs exactly once through
    `checkpoint.run_resumable` (one sub-directory per stage): run the same call again after a
    crash to resume. `ray=True` runs the map stages on the connected Ray cluster
    (`ray_runner.run_on_ray`; one started on this machine if none is).
    """
    ds, log, _ = run_recipe_measured(recipe, checkpoint_dir, ray, **overrides)
    return ds, log


def run_recipe_measured(
    recipe: Recipe, checkpoint_dir: str | Path | None = None, ray: bool = False, **overrides: Any
) -> tuple[Dataset, list[dict[str, Any]], YieldReport]:
    """`run_recipe`, plus the yield report: per stage rows in and out, the rows each filter
    dropped, wall seconds, tokens, engines, hardware and peak memory (`runners.ledger`).

    A map stage run through the checkpoint reports the compute of all its batches, also of
    those an earlier, killed run finished.
    """
    recipe = validate_recipe(scaled(recipe, **overrides))
    meter = Meter()
    if recipe.source:
        from datasets import load_dataset

        ds = load_dataset(recipe.source, split="train")
        ds = ds.select(range(min(recipe.num_rows, len(ds))))
        log = [{"stage": "source", "rows": len(ds), "recipe": recipe.name, "dataset": recipe.source}]
    else:
        ds = empty(recipe.num_rows)
        log = [{"stage": "empty", "rows": len(ds), "recipe": recipe.name}]
    figures = [meter.done(log[0]["stage"], "source", 0, len(ds))]
    loaded: tuple = ()  # the models the last model-loading stage used (`stage_models`)
    for index, step in enumerate(recipe.stages):
        kwargs = resolve_kwargs(recipe, step)
        kind = stage_kind(step.stage)
        wanted = stage_models(step.stage, kwargs, ds)  # the rows' own model resolved from `ds`
        if wanted:  # a build holds one stage's models at a time: free those this stage does not use
            if any(model not in wanted for model in loaded):
                release_engines(keep=cache_keys(wanted))
            loaded = wanted
        meter, rows_in, dropped, measured = Meter(), len(ds), {}, None
        if kind == "map" and (checkpoint_dir is not None or ray) and len(ds):
            ds, measured = _map_exactly_once(ds, MAP_STAGES[step.stage], kwargs, step, index, checkpoint_dir, ray)
        elif kind == "map":
            options = {"batch_size": step.batch_size} if step.batch_size else {}
            ds = ds.map(MAP_STAGES[step.stage], batched=True, fn_kwargs=kwargs, desc=step.stage, **options)
        elif kind == "filter":
            keep = FILTERS[step.stage](*step.args, **kwargs)
            ds = ds.filter(keep, batched=True, desc=step.stage)
            dropped = {getattr(keep, "name", step.stage): rows_in - len(ds)}
        else:
            ds = DATASET_STAGES[step.stage](ds, **kwargs)
            name = f"{step.stage}({kwargs['name']})" if step.stage == "apply_recipe" and "name" in kwargs else step.stage
            dropped = {name: rows_in - len(ds)} if len(ds) < rows_in else {}
        used = engines_of(step.stage, kwargs, wanted)  # the models `wanted` names, as the ledger shows them
        figure = meter.done(step.stage, kind, rows_in, len(ds), dropped=dropped, engines=used)
        if measured is not None and measured.completion_tokens is not None:
            # the checkpoint's: all batches, whichever run did them
            figure = replace(measured, stage=step.stage, engines=used)
        elif ray:  # tokens counted in the workers did not come back: unknown, not zero
            figure = replace(figure, prompt_tokens=None, completion_tokens=None)
        figures.append(figure)
        log.append({"stage": step.stage, "rows": len(ds), **({"args": list(step.args)} if step.args else {}), **kwargs})
    return ds, log, YieldReport(tuple(figures))


def cache_keys(models: Any) -> set[tuple]:
    """The keys `engines.cached_model` holds `models` (`stage_models` tuples) under, for those
    keyed by their name: chat engines and reward models. A default base model and embedders are
    keyed by their folder, so they have none here (a release frees them; they load again).
    """
    from .engines import engine_key
    from .stages.rewards.loading import reward_model_key

    keys = set()
    for loader, model, engine, options in models:
        if model is None:
            continue
        if loader == "chat":
            keys.add(engine_key(model, engine, options))
        elif loader == "reward":
            try:
                keys.add(reward_model_key(model, options))
            except ValueError:  # a wrong option: the stage itself says so
                pass
    return keys


def _map_exactly_once(
    ds: Dataset, fn, kwargs, step: Step, index: int, checkpoint_dir, ray: bool
) -> tuple[Dataset, StageYield | None]:
    """One map stage through the checkpoint (and on Ray when asked), batches as `Dataset.map` cuts them;
    with the stage's figures from the checkpoint when there is one."""
    from .runners.checkpoint import checkpoint_report, run_resumable

    batch_size = step.batch_size or 1000  # Dataset.map's default: the same batches, so the same seeds
    where = Path(checkpoint_dir) / f"{index:02d}-{step.stage}" if checkpoint_dir is not None else None
    if ray:
        from .runners.on_ray import run_on_ray

        ds = run_on_ray(ds, [(fn, kwargs)], batch_size=batch_size, checkpoint_dir=where)
    else:
        ds = run_resumable(ds, [(fn, kwargs)], where, batch_size=batch_size, desc=step.stage)
    return ds, checkpoint_report(where).stages[0] if where is not None else None


# ----------------------------------------------------------------------------- CLI


def add_build_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`magpie-datasets build RECIPE [--num-rows N] [--model M] (--output DIR | --push REPO)`."""
    p = subparsers.add_parser("build", help="run a recipe from builders/ and save it as a Hub folder or push it")
    p.add_argument("recipe", help="path of a recipe YAML file (see builders/)")
    p.add_argument("--num-rows", type=int, default=None, help="scale the recipe to N starting rows")
    p.add_argument("--model", default=None,
                   help='replace the chat models (generator, responder, tagger); "embedded": every stage on its '
                        'embedded default, engine transformers (CPU, offline)')
    p.add_argument("--max-tokens", type=int, default=None, help="cap every max_tokens of the recipe (scaled-down runs)")
    p.add_argument("--skip", action="append", default=[], metavar="STAGE",
                   help="drop a stage of the recipe (repeatable), e.g. add_rewards where no reward model is at hand")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", help="write the Hub repository layout (parquet, README card, plots) here")
    where.add_argument("--push", metavar="REPO", help="push to this Hub dataset repo (token: HF_TOKEN or login)")
    where.add_argument("--dry-run", action="store_true", help="validate the recipe and print the scaled steps")
    p.add_argument("--config-name", default=None, help="config to write (default: the recipe's config_name)")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")
    p.add_argument("--checkpoint-dir", default=None,
                   help="where finished batches of the map stages are kept; the same command resumes from it "
                        "(default: OUTPUT.CONFIG.checkpoint, or REPO with / as __ for --push)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the map stages on a Ray cluster (ADDRESS, e.g. auto or ray://head:10001; none: a local one)")
    p.add_argument("--price-per-hour", type=float, default=None, metavar="PRICE",
                   help="price of one GPU-hour (CPU-hour without GPUs): the card's cost table then shows money too")
    p.add_argument("--reference", action="append", default=[], metavar="[NAME=]DIR",
                   help="a reference dataset on disk (repeatable) for the card's coverage map and contamination check")
    p.add_argument("--analysis", action=argparse.BooleanOptionalAction, default=True,
                   help="add the analysis section (coverage, topic diversity, root verbs, decoding ablation) to the "
                        "card; a part whose packages are not installed is left out, and the card says so")
    p.add_argument("--check", action="store_true",
                   help="run the preflight alone: check models, engines, packages, output and push access, then stop")
    p.add_argument("--no-preflight", dest="preflight", action="store_false",
                   help="start without the preflight (it runs by default and stops a run that would fail later)")
    p.set_defaults(func=cmd_build)
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `scaled` keyword arguments of parsed `build` options."""
    return {"num_rows": args.num_rows, "model": args.model, "max_tokens": args.max_tokens, "skip": tuple(args.skip)}


def cmd_build(args: argparse.Namespace) -> int:
    # scaled once here: the run and the card (its license) must see the same recipe
    recipe = validate_recipe(scaled(load_recipe(args.recipe), **overrides_from_args(args)))
    if args.dry_run:
        for step in recipe.stages:
            shown = {"stage": step.stage, "kind": stage_kind(step.stage), **({"args": list(step.args)} if step.args else {})}
            print(json.dumps({**shown, **resolve_kwargs(recipe, step)}, ensure_ascii=False, default=str))
        return 0
    config_name = args.config_name or recipe.config_name
    # Resumable by default: run the same command again after a crash. The checkpoint is kept
    # after success, so a finished build is read back instead of redone (delete it to rebuild).
    target = args.output.rstrip("/") if args.output else args.push.replace("/", "__")
    checkpoint = args.checkpoint_dir or f"{target}.{config_name}.checkpoint"
    references = load_references(args.reference)  # before the run: a bad path fails fast
    if args.check or args.preflight:
        report = preflight_recipe(recipe, output=args.output, checkpoint_dir=checkpoint, push=args.push,
                                  ray=args.ray is not None, analysis=args.analysis, references=bool(args.reference))
        if args.check:
            print_report(report)
            return 0 if report.ok else 1
        for note in report.notes:
            print(f"preflight: {note}", file=sys.stderr)
        report.raise_for_problems()
    ray_started = False
    if args.ray is not None:
        import ray

        if not ray.is_initialized():
            ray.init(address=args.ray or None)
            ray_started = True
    try:
        ds, log, report = run_recipe_measured(recipe, checkpoint_dir=checkpoint, ray=args.ray is not None)
    finally:
        if ray_started:
            ray.shutdown()
    options = {"stages": log, "license": recipe.license, "report": report, "price_per_hour": args.price_per_hour,
               "analysis": args.analysis, "references": references or None}
    if args.output:
        from .publish.hub import save_for_hub

        save_for_hub(ds, args.output, config_name=config_name, **options)
        print(f"{len(ds)} rows written to {args.output} as config {config_name!r}")
    else:
        from .publish.hub import push_to_hub

        # token=None: huggingface_hub reads HF_TOKEN or the saved login; it is never printed
        info = push_to_hub(ds, args.push, config_name=config_name, private=args.private or None, **options)
        print(f"{len(ds)} rows pushed to {args.push} as config {config_name!r}: {info.commit_url}")
    cost = report.cost(args.price_per_hour)
    money = f", {cost['price_per_1000_kept']:.4g} at {args.price_per_hour:g} per hour" if args.price_per_hour else ""
    per_1000 = cost["hours_per_1000_kept"]
    print(f"cost: {cost['hours']:.4g} {cost['unit']} in all"
          + (f", {per_1000:.4g} per 1,000 kept rows{money}" if per_1000 is not None else ""))
    print(f"finished batches kept in {checkpoint} (the same command reads them back; delete it to rebuild)")
    return 0


def preflight_recipe(recipe: Recipe, **options: Any) -> PreflightReport:
    """`runners.preflight.preflight` for the recipe's stages (and its `source`, when a local path)."""
    report = preflight([(step.stage, resolve_kwargs(recipe, step)) for step in recipe.stages], **options)
    source = recipe.source
    if source and source.startswith((".", "/", "~")) and not Path(source).expanduser().exists():
        missing = Problem(f"{recipe.path}: source {source} does not exist", "give a dataset folder or a Hub id")
        report = replace(report, problems=(missing, *report.problems))
    return report


def load_any(path: str | Path, config_name: str | None = None, split: str = "train") -> Dataset:
    """A dataset on disk: a `save_to_disk` folder, a Hub folder (ours or a downloaded Magpie repo),
    a folder of data files, or one .parquet / .jsonl / .json / .csv file; `split` of it."""
    import datasets

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such dataset; give a folder written by save_to_disk or save_for_hub, or a data file")
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise RecipeError(f"{path} has splits {sorted(loaded)}, not {split!r}: choose one with --split")
            loaded = loaded[split]
        return loaded
    if path.is_file():
        kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}.get(path.suffix)
        if kind is None:
            raise RecipeError(f"{path}: a data file is .parquet, .jsonl, .json or .csv")
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    return datasets.load_dataset(str(path), config_name, split=split)


def load_references(specs: list[str] | tuple[str, ...]) -> dict[str, Dataset]:
    """`["alpaca=refs/alpaca", "refs/arena"]` -> `{"alpaca": Dataset, "arena": Dataset}` (name: the folder's by default)."""
    out: dict[str, Dataset] = {}
    for spec in specs:
        name, _, where = spec.rpartition("=") if "=" in spec else ("", "", spec)
        name = name or Path(where.rstrip("/")).name
        if name in out:
            raise RecipeError(f"--reference {spec}: the name {name!r} is taken; name it: --reference OTHER={where}")
        out[name] = load_any(where)
    return out
