"""One config's files in a Hub repository, laid out under a folder: card and plots, analysis, reports.

`save_for_hub` lays them out in its staging folder, `push_to_hub` in the folder it uploads
from; both call `lay_out`, so the two write the same files with the same card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from huggingface_hub import DatasetCard

from ..runners.ledger import REPORT_FILE, YieldReport
from .analysis_section import AnalysisSection, analysis_section
from .card import analysis_dir, card_with_plots
from .plots import Plot

REPORTS_DIR = "reports"  # reports/<config>/yield_report.json, analysis.json: the card's figures as data
ANALYSIS_FILE = "analysis.json"


@dataclass(frozen=True)
class RepositoryFiles:
    """What `lay_out` wrote under its root for one config."""

    card: DatasetCard | None  # rendered, not saved (it belongs at root/README.md); None without a card
    plots: list[Plot]  # the column plots, then the analysis figures (paths relative to root)
    section: AnalysisSection | None  # the analysis section, when asked for
    reports: list[Path]  # reports/<config>/yield_report.json and analysis.json, for what there is


def check_publish_options(
    report: YieldReport | str | Path | None, analysis: bool, references: Mapping[str, Any] | None
) -> YieldReport | None:
    """The yield report as a `YieldReport` (read from its path if need be); raises on `references` without `analysis`."""
    report = _as_report(report)
    if references and not analysis:
        raise ValueError("references are for the analysis section: pass analysis=True with them")
    return report


def lay_out(
    ds: Dataset,
    root: Path,
    *,
    config_name: str,
    card: bool = True,
    report: YieldReport | None = None,
    price_per_hour: float | None = None,
    analysis: bool = False,
    references: Mapping[str, Dataset | Sequence[str]] | None = None,
    **card_options: Any,
) -> RepositoryFiles:
    """Write config `config_name`'s plots, analysis figures and reports under `root`, and render its card.

    With `card=True`: the analysis section first (with `analysis`, against `references`), then
    the column plots and the card that links them (`card_options` go to `card_with_plots`:
    split, repo_id, stages, license, title, existing, metadata). The reports are written either way.
    """
    section = None
    new_card = None
    plots: list[Plot] = []
    if card:
        if analysis:
            section = analysis_section(ds, analysis_dir(root, config_name), relative_to=root, references=references,
                                       report=report, price_per_hour=price_per_hour)
        new_card, plots = card_with_plots(
            ds, root, config_name=config_name, report=report, price_per_hour=price_per_hour,
            analysis=section or False, **card_options,
        )
    reports = _write_reports(root, config_name, report, section)
    return RepositoryFiles(card=new_card, plots=plots, section=section, reports=reports)


def _as_report(report: YieldReport | str | Path | None) -> YieldReport | None:
    if report is None or isinstance(report, YieldReport):
        return report
    if isinstance(report, (str, Path)):
        return YieldReport.read(report)
    raise TypeError(f"report={report!r}: give a YieldReport or the path of a {REPORT_FILE}")


def _write_reports(root: Path, config_name: str, report: YieldReport | None, section: AnalysisSection | None) -> list[Path]:
    """`reports/<config>/yield_report.json` and `analysis.json` under `root`, for what there is."""
    folder = root / REPORTS_DIR / config_name
    written = []
    if report is not None:
        written.append(report.write(folder / REPORT_FILE))
    if section is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ANALYSIS_FILE).write_text(section.results_json(), encoding="utf-8")
        written.append(folder / ANALYSIS_FILE)
    return written
