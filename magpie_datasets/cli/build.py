"""`magpie-datasets build`: run a recipe from builders/ and save it as a Hub folder or push it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..recipes import (
    load_recipe,
    load_references,
    preflight_recipe,
    resolve_kwargs,
    run_recipe_measured,
    scaled,
    stage_kind,
    validate_recipe,
)
from ..runners.preflight import print_report
from .preflight_flags import add_preflight_flags


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
    add_preflight_flags(p, "models, engines, packages, output and push access")
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
        checks = preflight_recipe(recipe, output=args.output, checkpoint_dir=checkpoint, push=args.push,
                                  ray=args.ray is not None, analysis=args.analysis, references=bool(args.reference))
        if args.check:
            print_report(checks)
            return 0 if checks.ok else 1
        for note in checks.notes:
            print(f"preflight: {note}", file=sys.stderr)
        checks.raise_for_problems()
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
        from ..publish.hub import save_for_hub

        save_for_hub(ds, args.output, config_name=config_name, **options)
        print(f"{len(ds)} rows written to {args.output} as config {config_name!r}")
    else:
        from ..publish.hub import push_to_hub

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
