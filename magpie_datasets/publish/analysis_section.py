"""The card's analysis section (paper §3, appendix D): coverage, topic diversity, root verbs,
decoding ablation, contamination, and the yield-and-cost table.

    section = analysis_section(ds, "out/plots/default", relative_to="out",
                               references={"alpaca": alpaca_ds}, report=report, price_per_hour=2.5)
    section.markdown      # "### Analysis\n\n#### Coverage ..." (figures linked relative to "out")
    section.figures       # (Plot("coverage", ..., "plots/default/coverage.png"), Plot("root_verbs", ...))
    section.results       # the numbers, JSON-able: {"coverage": {...}, "topic_diversity": {...}, ...}

The measurements are those of `magpie_datasets.analysis` and `stages.contamination`; this module
only runs them on one dataset, writes their figures as PNGs and renders them with the
`analysis_section.md.jinja` and `yield_table.md.jinja` templates. Published Magpie datasets
under older column names are read through `normalize` first. The coverage map and the
contamination summary need `references` (datasets or lists of questions, by name); without
them those parts say so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from datasets import Dataset

from ..runners.ledger import YieldReport
from .card_jinja import ANALYSIS_TEMPLATE, card_templates
from .plots import Plot

DEFAULT_SAMPLE_SIZE = 10_000  # rows per dataset embedded for coverage and topic diversity (paper D.1)
_TOP_VERBS_SHOWN = 10


@dataclass(frozen=True)
class AnalysisSection:
    """A rendered analysis: its Markdown, the PNGs it links (relative paths) and its numbers."""

    markdown: str
    figures: tuple[Plot, ...] = ()
    results: Mapping[str, Any] = field(default_factory=dict)

    def results_json(self) -> str:
        return json.dumps(self.results, indent=2, ensure_ascii=False, default=str)


def analysis_section(
    ds: Dataset,
    directory: str | Path,
    relative_to: str | Path | None = None,
    *,
    references: Mapping[str, Dataset | Sequence[str]] | None = None,
    report: YieldReport | None = None,
    price_per_hour: float | None = None,
    column: str = "instruction",
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    embedding_model: str | None = None,
    projection: str = "tsne",
    threshold: float = 0.9,
    seed: int = 0,
    heading: str = "###",
) -> AnalysisSection:
    """Run every analysis on `ds`, write its figures into `directory`, and render the section.

    `references` maps a name to a reference dataset or list of questions (e.g. a benchmark's
    prompts): the coverage map is drawn against them and contamination checked against each.
    `report` adds the yield-and-cost table (with money when `price_per_hour` is given).
    `heading` is the Markdown level of the section's title ("###" inside a card's config section).
    """
    from ..analysis import decoding_ablation, root_verbs, topic_diversity

    ds = _normalized(ds)
    if column not in ds.column_names:
        raise ValueError(
            f"The dataset has no {column!r} column to analyse (columns: {', '.join(ds.column_names)}); "
            "pass column= with the column holding the instructions."
        )
    references = dict(references or {})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = Path(relative_to) if relative_to is not None else directory
    figures: list[Plot] = []
    left_out = left_out_parts(ds, column, bool(references), projection, sample_size, seed)
    results: dict[str, Any] = {"rows": len(ds), "column": column, "left_out": left_out}

    def save(figure, name: str, title: str) -> Plot:
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=110)
        plot = Plot(name, title, path.relative_to(base).as_posix())
        figures.append(plot)
        return plot

    context: dict[str, Any] = {"heading": heading, "rows": len(ds), "column": column, "left_out": left_out}
    if references and "coverage" not in left_out:
        from ..analysis import coverage

        measured = coverage(ds, references, column=column, sample_size=sample_size,
                            embedding_model=embedding_model, projection=projection, seed=seed)
        plot = save(measured.pop("figure"), "coverage", f"Coverage map ({measured.get('projection', projection)})")
        results["coverage"] = measured
        context["coverage"] = {"plot": plot, "values": measured["coverage"], "sample_sizes": measured.get("sample_sizes"),
                               "projection": measured.get("projection"), "embedding_model": measured.get("embedding_model")}
    if "topic_diversity" not in left_out:
        results["topic_diversity"] = topic_diversity(
            ds, column=column, sample_size=sample_size, embedding_model=embedding_model, seed=seed
        )
        context["topic_diversity"] = results["topic_diversity"]

    if "root_verbs" not in left_out:
        verbs = root_verbs(ds, column=column, top_verbs=20, top_objects=5, sample_size=sample_size, seed=seed)
        verb_figure = verbs.pop("figure", None)
        results["root_verbs"] = verbs
        context["root_verbs"] = {
            "plot": save(verb_figure, "root_verbs", "Root verbs and their direct objects") if verb_figure else None,
            "top": [{"verb": v["verb"], "count": v["count"],
                     "objects": ", ".join(f"{o['noun']} ({o['count']})" for o in v.get("objects", []))}
                    for v in verbs["root_verbs"][:_TOP_VERBS_SHOWN]],
            "parsed": verbs.get("parsed"), "parser": verbs.get("parser"),
        }

    configs = ds.features.get("gen_input_configs")
    if len(ds) and isinstance(configs, dict) and {"temperature", "top_p"} <= set(configs):  # step 1's decoding recorded
        results["decoding_ablation"] = decoding_ablation(ds)
        context["decoding_ablation"] = [
            {key: _number(value) for key, value in row.items()} for row in results["decoding_ablation"]["configurations"]
        ]

    if references and "contamination" not in left_out:
        from ..stages.contamination import contamination, contamination_summary

        summaries = {}
        for name, reference in references.items():
            checked = contamination(ds, reference, threshold, column=column, model=embedding_model)
            summaries[name] = contamination_summary(checked, threshold)
        results["contamination"] = summaries
        context["contamination"] = [
            {"name": name, **s, "top": list(s["matched_questions"].items())[:3]} for name, s in summaries.items()
        ]

    if report is not None:
        results["yield"] = {**report.to_dict(), "cost": report.cost(price_per_hour)}
        context["yield_table"] = yield_table(report, price_per_hour)
    markdown = card_templates().get_template(ANALYSIS_TEMPLATE).render(**context)
    return AnalysisSection(markdown.strip() + "\n", tuple(figures), results)


def left_out_parts(
    ds: Dataset, column: str, references: bool, projection: str, sample_size: int | None, seed: int
) -> dict[str, str]:
    """The parts of the section that cannot be drawn for `ds` on this install, each with the reason.

    A part needs its packages (`analysis.unavailable`) and enough texts: topic diversity compares
    pairs, a coverage map places the dataset's own points, so 0 or 1 rows leave them out.
    """
    from ..analysis import unavailable
    from ..analysis.texts import texts_of

    left_out = unavailable(references=references, projection=projection)
    texts = len(texts_of(ds, column, sample_size, seed))
    too_few = f"too few rows: {texts} non-empty `{column}` text{'' if texts == 1 else 's'}"
    needed = {"topic_diversity": 2, "root_verbs": 1, **({"coverage": 2, "contamination": 1} if references else {})}
    for part, least in needed.items():
        if texts < least:
            left_out.setdefault(part, f"{too_few}, it needs at least {least}")
    return left_out


def _normalized(ds: Dataset) -> Dataset:
    """`ds` under the current column names (a published release's `input`/`output` read as `instruction`/...)."""
    from ..stages.columns import renames
    from ..stages.normalize import normalize

    return ds.map(normalize, batched=True, desc="normalize") if renames(ds.column_names) else ds


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


# ----------------------------------------------------------------------------- yield and cost


def _bytes(value: int | None) -> str:
    if not value:
        return "—"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value} B"


def _hardware(hw: Mapping[str, Any]) -> str:
    if not hw:
        return "—"
    cpu = f"{hw.get('cpu', 'CPU')} ({hw.get('cpu_count', '?')} cores)"
    return f"{hw['gpu_count']}× {hw.get('gpu')}, {cpu}" if hw.get("gpu_count") else cpu


def _tokens(value: int | None) -> str:
    return "not measured" if value is None else f"{value:,}"


def _hours(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def yield_table(report: YieldReport, price_per_hour: float | None = None) -> dict[str, Any]:
    """What `yield_table.md.jinja` shows: one formatted row per stage, and the cost.

    >>> from magpie_datasets.runners.ledger import StageYield
    >>> t = yield_table(YieldReport((StageYield("empty", "source", 0, 20, 0.5),
    ...                              StageYield("min_quality", "filter", 20, 8, 1.3, dropped={"input_quality >= good": 12}))))
    >>> t["rows"][1]["dropped"], t["cost"]["unit"], t["cost"]["kept_rows"]
    ('input_quality >= good: 12', 'CPU-hours', '8')
    """
    rows = []
    for s in report.stages:
        rate = s.tokens_per_second
        rows.append({
            "stage": s.stage, "kind": s.kind, "rows_in": f"{s.rows_in:,}", "rows_out": f"{s.rows_out:,}",
            "dropped": "; ".join(f"{reason}: {n:,}" for reason, n in s.dropped.items()).replace("|", "\\|") or "",
            "seconds": f"{s.seconds:,.1f}", "prompt_tokens": _tokens(s.prompt_tokens),
            "completion_tokens": _tokens(s.completion_tokens), "tokens_per_second": f"{rate:,.1f}" if rate else "—",
            "engines": ", ".join(s.engines) or "—", "hardware": _hardware(s.hardware),
            "peak_rss": _bytes(s.peak_rss_bytes), "peak_gpu": _bytes(s.peak_gpu_bytes),
        })
    cost = report.cost(price_per_hour)
    shown = {
        "unit": cost["unit"], "hours": _hours(cost["hours"]), "kept_rows": f"{cost['kept_rows']:,}",
        "per_1000": _hours(cost["hours_per_1000_kept"]), "seconds": f"{report.seconds:,.1f}",
        "price_per_hour": None if price_per_hour is None else f"{price_per_hour:,.2f}",
        "price": None if cost["price"] is None else f"{cost['price']:,.4g}",
        "price_per_1000": None if cost["price_per_1000_kept"] is None else f"{cost['price_per_1000_kept']:,.4g}",
    }
    return {"rows": rows, "cost": shown}
