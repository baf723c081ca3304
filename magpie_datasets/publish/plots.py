"""The PNG figures of a dataset card: one per stage-table chart with `plot=True` whose column has values.

    plots = write_plots(ds, "out/plots/default", relative_to="out")
    # [Plot(column='task_category', title='Task category', file='plots/default/task_category.png'), ...]

A "bar" chart shows rows per label (the chart's `order` first, then the most frequent others),
a "histogram" the distribution of a numeric column. Figures are drawn with matplotlib's
object API, so no global pyplot state or display backend is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from .statistics import Snapshot, _numbers, _value_counts, charts_for, snapshot

_MAX_OTHER_LABELS = 20


@dataclass(frozen=True)
class Plot:
    """One PNG written next to the card; `file` is relative to the README."""

    column: str
    title: str
    file: str


def write_plots(ds: Dataset | Snapshot, directory: str | Path, relative_to: str | Path | None = None) -> list[Plot]:
    """Write `directory/<column>.png` for every plotted chart of the stage table whose column has values.

    Returns one `Plot` per file, e.g. `Plot("language", "Language", "plots/default/language.png")`
    with `relative_to="out"`; `Plot.file` is relative to `relative_to` (default: `directory`).
    """
    from matplotlib.figure import Figure

    ds = snapshot(ds)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = Path(relative_to) if relative_to is not None else directory
    plots: list[Plot] = []

    for chart in charts_for(ds):
        if not chart.plot:
            continue
        if chart.kind == "bar":
            counts = _value_counts(ds, chart.column)
            if not counts:
                continue
            labels = [k for k in (chart.order or ()) if k in counts]
            labels += sorted((k for k in counts if k not in labels), key=lambda k: -counts[k])[:_MAX_OTHER_LABELS]
            fig = Figure(figsize=(7, 3.6))
            fig.subplots_adjust(left=0.11, right=0.98, top=0.9, bottom=0.33)
            ax = fig.add_subplot()
            ax.bar(range(len(labels)), [counts[k] for k in labels], color="#4C72B0")
            ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        else:
            values = _numbers(ds, chart.column)
            if not values.size:
                continue
            fig = Figure(figsize=(7, 3.2))
            fig.subplots_adjust(left=0.11, right=0.98, top=0.88, bottom=0.17)
            ax = fig.add_subplot()
            ax.hist(values, bins=min(50, max(5, int(math.sqrt(len(values))) * 2)), color="#55A868")
            ax.set_xlabel(chart.column)
        ax.set_ylabel("rows")
        ax.set_title(chart.title)
        path = directory / f"{chart.column}.png"
        fig.savefig(path, dpi=100)  # fixed margins above: tight_layout measures every text, slow per figure
        plots.append(Plot(chart.column, chart.title, path.relative_to(base).as_posix()))
    return plots
