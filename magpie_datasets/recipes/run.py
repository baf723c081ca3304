"""Running a recipe: `run_recipe`, `run_recipe_measured` (with its yield report), each map stage
exactly once through the checkpoint or on Ray, and `cache_keys` (the models to keep loaded)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..engines import release_engines
from ..runners.ledger import Meter, StageYield, YieldReport, engines_of
from ..stages.generate import empty
from ..stages.table import stage_models
from .loaders import load_any
from .recipe import (
    DATASET_STAGES,
    FILTERS,
    MAP_STAGES,
    REPORTS,
    Recipe,
    Step,
    resolve_kwargs,
    scaled,
    stage_kind,
    validate_recipe,
)


def run_recipe(
    recipe: Recipe, checkpoint_dir: str | Path | None = None, ray: bool = False, **overrides: Any
) -> tuple[Dataset, list[dict[str, Any]]]:
    """Run the recipe with `scaled` overrides; returns the dataset and the stage log for the card.
    `run_recipe_measured` also returns the run's yield report.

    The log is `[{"stage": name, "rows": rows after it, **kwargs}, ...]`, starting with where
    the rows came from; a report stage (`compare_responders`) adds its `"report"`. With
    `checkpoint_dir`, every map stage runs exactly once through `checkpoint.run_resumable` (one
    sub-directory per stage), and a report stage's result is kept there too
    (`runners.report_once`): run the same call again after a crash to resume. `ray=True` runs the map stages on the connected Ray cluster
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

        # a local folder or file as `load_any` reads it (a save_to_disk folder too), else a Hub id
        source = Path(recipe.source).expanduser()
        ds = load_any(source) if source.exists() else load_dataset(recipe.source, split="train")
        ds = ds.select(range(min(recipe.num_rows, len(ds))))
        log: list[dict[str, Any]] = [{"stage": "source", "rows": len(ds), "recipe": recipe.name, "dataset": recipe.source}]
    else:
        ds = empty(recipe.num_rows)
        log = [{"stage": "empty", "rows": len(ds), "recipe": recipe.name}]
    figures = [meter.done(log[0]["stage"], "source", 0, len(ds))]
    loaded: tuple = ()  # the models the last model-loading stage used (`stage_models`)
    for index, step in enumerate(recipe.stages):
        kwargs = resolve_kwargs(recipe, step)
        kind = stage_kind(step.stage)
        wanted = stage_models(step.stage, kwargs, ds) if kind != "report" else ()  # a report loads and frees its own
        if wanted:  # a build holds one stage's models at a time: free those this stage does not use
            if any(model not in wanted for model in loaded):
                release_engines(keep=cache_keys(wanted))
            loaded = wanted
        meter, rows_in, dropped, measured, report = Meter(), len(ds), {}, None, None
        if kind == "report":
            release_engines()  # it loads its candidates one at a time, and frees them
            report, loaded = _report_once(ds, REPORTS[step.stage], kwargs, step, index, checkpoint_dir), ()
        elif kind == "map" and (checkpoint_dir is not None or ray) and len(ds):
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
        log.append({"stage": step.stage, "rows": len(ds), **({"args": list(step.args)} if step.args else {}), **kwargs,
                    **({"report": report} if report is not None else {})})
    return ds, log, YieldReport(tuple(figures))


def cache_keys(models: Any) -> set[tuple]:
    """The keys `engines.cached_model` holds `models` (`stage_models` tuples) under, for those
    keyed by their name: chat engines and reward models. A default base model and embedders are
    keyed by their folder, so they have none here (a release frees them; they load again).
    """
    from ..engines import engine_key
    from ..stages.rewards.loading import reward_model_key

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


def _report_once(ds: Dataset, fn, kwargs, step: Step, index: int, checkpoint_dir) -> Any:
    """A report stage, kept in its own checkpoint sub-directory when there is one, so a resumed
    build reads its result back rather than running its candidates again."""
    if checkpoint_dir is None:
        return fn(ds, **kwargs)
    from ..runners.report_once import report_once

    return report_once(ds, fn, kwargs, Path(checkpoint_dir) / f"{index:02d}-{step.stage}")


def _map_exactly_once(
    ds: Dataset, fn, kwargs, step: Step, index: int, checkpoint_dir, ray: bool
) -> tuple[Dataset, StageYield | None]:
    """One map stage through the checkpoint (and on Ray when asked), batches as `Dataset.map` cuts them;
    with the stage's figures from the checkpoint when there is one."""
    from ..runners.checkpoint import checkpoint_report, run_resumable

    batch_size = step.batch_size or 1000  # Dataset.map's default: the same batches, so the same seeds
    where = Path(checkpoint_dir) / f"{index:02d}-{step.stage}" if checkpoint_dir is not None else None
    if ray:
        from ..runners.on_ray import run_on_ray

        ds = run_on_ray(ds, [(fn, kwargs)], batch_size=batch_size, checkpoint_dir=where)
    else:
        assert where is not None  # off Ray, a map stage comes here only with a checkpoint_dir
        ds = run_resumable(ds, [(fn, kwargs)], where, batch_size=batch_size, desc=step.stage)
    return ds, checkpoint_report(where).stages[0] if where is not None else None
