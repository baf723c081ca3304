"""`magpie-datasets analyze`: the card's analysis section and plots for a dataset on disk."""

from __future__ import annotations

import argparse
import sys


def cmd_analyze(args: argparse.Namespace) -> int:
    """`magpie-datasets analyze DATASET_DIR`: the card's analysis section, for any dataset on disk."""
    from pathlib import Path

    from ..publish.analysis_section import analysis_section
    from ..recipes import load_any, load_references
    from ..runners.ledger import REPORT_FILE, YieldReport
    from ..runners.preflight import preflight

    source = Path(args.dataset)
    output = Path(args.output or f"{str(source).rstrip('/')}.analysis")
    ds = load_any(source, args.config, args.split)
    references = load_references(args.reference)
    embedder = [("min_neighbor_distance", {"model": args.embedding_model})]  # the model the analyses embed with
    checked = preflight(embedder, output=output, analysis=True, references=bool(references), projection=args.projection)
    checked.raise_for_problems()
    for note in checked.notes:
        print(f"preflight: {note}", file=sys.stderr)
    reports = [source / REPORT_FILE, source / "reports" / (args.config or "default") / REPORT_FILE]
    report = next((YieldReport.read(p) for p in reports if p.is_file()), None)
    section = analysis_section(
        ds, output / "plots", relative_to=output, references=references, report=report,
        price_per_hour=args.price_per_hour, column=args.column, sample_size=args.sample_size,
        embedding_model=args.embedding_model, projection=args.projection, threshold=args.threshold, heading="##",
    )
    (output / "analysis.md").write_text(f"# Analysis of `{source.name}`\n\n{section.markdown}", encoding="utf-8")
    (output / "analysis.json").write_text(section.results_json(), encoding="utf-8")
    print(f"analysis of {len(ds):,} rows written to {output}: analysis.md, analysis.json, "
          + ", ".join(p.file for p in section.figures))
    return 0



def add_analyze_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`magpie-datasets analyze DATASET [--reference [NAME=]DIR] [--output DIR]`."""
    p = subparsers.add_parser("analyze", help="the card's analysis section and plots for a dataset on disk")
    p.add_argument("dataset", help="a save_to_disk folder, a Hub folder (ours or a published Magpie set), or a data file")
    p.add_argument("--reference", action="append", default=[], metavar="[NAME=]DIR",
                   help="a reference dataset (repeatable): coverage map and contamination check against it")
    p.add_argument("--output", default=None, help="where analysis.md, analysis.json and plots/ go (default: DATASET.analysis)")
    p.add_argument("--config", default=None, help="config of a Hub folder (default: its default config)")
    p.add_argument("--split", default="train")
    p.add_argument("--column", default="instruction", help="the column holding the instructions")
    p.add_argument("--sample-size", type=int, default=10_000, help="rows embedded per dataset (paper: 10,000)")
    p.add_argument("--embedding-model", default=None, help="sentence-transformers model (default: that of min_neighbor_distance)")
    p.add_argument("--projection", default="tsne", choices=["tsne", "umap"])
    p.add_argument("--threshold", type=float, default=0.9, help="contamination cosine-similarity threshold")
    p.add_argument("--price-per-hour", type=float, default=None, metavar="PRICE",
                   help="price of one GPU-hour (CPU-hour) for the yield report found beside the dataset")
    p.set_defaults(func=cmd_analyze)
    return p
