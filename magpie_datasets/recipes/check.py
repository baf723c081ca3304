"""`preflight_recipe`: the preflight of a recipe's stages (and of its `source`, when a local path)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..runners.preflight import PreflightReport, Problem, preflight
from .recipe import REPORT_STAGES, Recipe, resolve_kwargs, stage_kind


def preflight_recipe(recipe: Recipe, **options: Any) -> PreflightReport:
    """`runners.preflight.preflight` for the recipe's stages (a report's: the stages it runs), and its
    `source`, when a local path."""
    steps: list[tuple[str, dict[str, Any]]] = []
    for step in recipe.stages:
        kwargs = resolve_kwargs(recipe, step)
        steps += REPORT_STAGES[step.stage](**kwargs) if stage_kind(step.stage) == "report" else [(step.stage, kwargs)]
    report = preflight(steps, **options)
    source = recipe.source
    if source and source.startswith((".", "/", "~")) and not Path(source).expanduser().exists():
        missing = Problem(f"{recipe.path}: source {source} does not exist", "give a dataset folder or a Hub id")
        report = replace(report, problems=(missing, *report.problems))
    return report
