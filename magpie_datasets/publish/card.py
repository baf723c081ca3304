"""The dataset card of a Magpie run: Hub YAML metadata, provenance, statistics, plots, citation.

    card, plots = card_with_plots(ds, "out/", config_name="default", stages=[
        {"stage": "add_magpie_instructions", "rows": 1000, "model": "Qwen/Qwen2.5-7B-Instruct"},
        {"stage": "filter", "rows": 640, "preset": "pro-300k"},
    ])
    card.save("out/README.md")   # plots are already in out/plots/default/*.png

`magpie_datasets.publish.hub` wraps this with the data files (`save_for_hub`, `push_to_hub`);
what the card says about the rows comes from `statistics`, its figures from `plots`.

The card is a `huggingface_hub.DatasetCard` rendered from the Jinja templates in the
package's `card_templates/` folder (package data, read with `importlib.resources`). Each
config gets its own section between HTML comment markers, so writing a second config
into the same README keeps the first one, and text outside the generated block is
never touched.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from huggingface_hub import DatasetCard, DatasetCardData

from ..runners.ledger import YieldReport
from ..runners.run_identity import is_secret_key
from .card_jinja import CARD_TEMPLATE, SECTION_TEMPLATE, card_templates
from .analysis_section import AnalysisSection, analysis_section, yield_table
from .plots import Plot, write_plots
from .statistics import (
    Snapshot,
    _distinct,
    column_provenance,
    generating_models,
    license_for_model,
    size_category,
    snapshot,
    summarize,
)

PLOTS_DIR = "plots"

PAPER_BIBTEX = """\
@inproceedings{xu2025magpie,
  title     = {Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned {LLMs} with Nothing},
  author    = {Zhangchen Xu and Fengqing Jiang and Luyao Niu and Yuntian Deng and Radha Poovendran and Yejin Choi and Bill Yuchen Lin},
  booktitle = {The Thirteenth International Conference on Learning Representations (ICLR)},
  year      = {2025},
  eprint    = {2406.08464},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2406.08464}
}"""

_MAX_VALUES = 5
_MAX_SAMPLE_CHARS = 400

_BLOCK_RE = re.compile(r"<!-- magpie-datasets:begin -->.*?<!-- magpie-datasets:end -->", re.DOTALL)
_SECTION_RE = re.compile(
    r"<!-- magpie-datasets:config (?P<name>\S+) -->.*?<!-- magpie-datasets:/config (?P=name) -->", re.DOTALL
)


def render_card(
    ds: Dataset,
    *,
    config_name: str = "default",
    split: str = "train",
    repo_id: str | None = None,
    stages: Sequence[Mapping[str, Any]] | None = None,
    plots: Sequence[Plot] = (),
    license: str | None = None,
    existing: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    title: str | None = None,
    report: YieldReport | None = None,
    price_per_hour: float | None = None,
    analysis: AnalysisSection | None = None,
) -> DatasetCard:
    """The README for `ds` as config `config_name`, merged into the `existing` README text.

    `str(render_card(ds, repo_id="me/magpie"))` is the YAML front matter ("license: ...",
    "configs: ..."), then this config's section (how it was made, stage log, statistics,
    links to `plots`, a sample row) and the citation. `metadata` (e.g. `configs`,
    `dataset_info`) is set on the YAML as given; everything else already in `existing`
    (other configs' sections and metadata, the user's own text) is kept. `license=None`
    keeps an existing license, else uses the generating model's.

    `report` (a run's `YieldReport`) adds the yield-and-cost table, priced when
    `price_per_hour` is given; `analysis` (from `analysis_section`) adds the analysis section,
    which then holds that table.
    """
    check_stages(stages)
    ds = snapshot(ds)
    old = DatasetCard(existing) if existing and existing.strip() else None
    data = DatasetCardData(**old.data.to_dict()) if old else DatasetCardData()
    for key, value in (metadata or {}).items():
        data[key] = value

    models = generating_models(ds)
    licenses = {license_for_model(m) for m in models}
    generator_license, generator_license_name = licenses.pop() if len(licenses) == 1 else ("other", None)
    if license is not None:
        data["license"] = license
        if license != "other":
            data.pop("license_name", None)
    elif not data.get("license"):
        data["license"] = generator_license
        if generator_license_name:
            data["license_name"] = generator_license_name
    data["task_categories"] = _union(data.get("task_categories"), ["text-generation"])
    data["tags"] = _union(data.get("tags"), ["synthetic", "magpie"])
    languages = [v.lower() for v in _distinct(ds, "language") if isinstance(v, str) and re.fullmatch(r"[A-Za-z]{2}", v)]
    if languages:
        data["language"] = _union(data.get("language"), sorted(set(languages)))
    subsets = _subsets(data, config_name, split, len(ds))
    data["size_categories"] = [size_category(sum(s["rows"] for s in subsets))]
    if not data.get("pretty_name") and (title or repo_id):
        if title:
            data["pretty_name"] = title
        else:
            assert repo_id is not None  # title or repo_id is set
            data["pretty_name"] = repo_id.split("/")[-1]

    section = card_templates().get_template(SECTION_TEMPLATE).render(
        config_name=config_name,
        split=split,
        num_rows=len(ds),
        generator_license=(generator_license_name or generator_license) if models else None,
        load_args=_load_args(repo_id, config_name, split),
        provenance=[_shown(item) for item in column_provenance(ds)],
        stages=_stage_rows(stages),
        responder_reports=[_responder_report(s["report"]) for s in stages or ()
                           if s["stage"] == "compare_responders" and s.get("report")],
        summary=summarize(ds),
        plots=plots,
        sample=_sample_json(ds),
        yield_table=yield_table(report, price_per_hour) if report is not None else None,
        analysis=analysis.markdown if analysis is not None else None,
    )
    body = old.text if old else ""
    sections = {m.group("name"): m.group(0) for m in _SECTION_RE.finditer(body)}
    sections[config_name] = section.strip()
    block = _BLOCK_RE.search(body)
    before, after = (body[: block.start()], body[block.end():]) if block else (body.strip() + "\n\n" if body.strip() else "", "")
    ordered = sorted(sections, key=lambda name: (name != "default", name))
    content = card_templates().get_template(CARD_TEMPLATE).render(
        card_data=data.to_yaml(),
        before=before.lstrip("\n"),
        after=after,
        title=data.get("pretty_name") or title or "Magpie dataset",
        subsets=subsets,
        sections=[sections[name] for name in ordered],
        citation=PAPER_BIBTEX,
    )
    return DatasetCard(content)


def card_with_plots(
    ds: Dataset,
    root: str | Path,
    *,
    config_name: str = "default",
    existing: str | None = None,
    analysis: bool | AnalysisSection = False,
    references: Mapping[str, Any] | None = None,
    **card_options: Any,
) -> tuple[DatasetCard, list[Plot]]:
    """Write this config's plots under `root/plots/<config>/` and render the card that links them.

    Returns `(card, plots)`, e.g. `plots[0].file == "plots/default/task_category.png"`. The
    card is not saved: it belongs at `root/README.md` (the links are relative to it).
    `analysis=True` also runs `analysis_section` (against `references`, if any) and adds its
    figures to the plots; an `AnalysisSection` already made is used as it is.
    `card_options` go to `render_card` (repo_id, split, stages, license, metadata, title,
    report, price_per_hour).
    """
    check_stages(card_options.get("stages"))
    root = Path(root)
    raw = ds
    ds = snapshot(ds)  # gathered once for the plots and the card
    plots = write_plots(ds, root / PLOTS_DIR / config_name, relative_to=root)
    if analysis is True:
        analysis = analysis_section(
            raw, analysis_dir(root, config_name), relative_to=root, references=references,
            report=card_options.get("report"), price_per_hour=card_options.get("price_per_hour"),
        )
    elif references and not analysis:
        raise ValueError("references are for the analysis section: pass analysis=True with them")
    section = analysis or None
    card = render_card(ds, config_name=config_name, plots=plots, existing=existing, analysis=section, **card_options)
    return card, plots + list(section.figures if section else ())


def analysis_dir(root: str | Path, config_name: str) -> Path:
    """Where a config's analysis figures go: `root/plots/<config>/analysis/` (apart from the column plots)."""
    return Path(root) / PLOTS_DIR / config_name / "analysis"


def check_stages(stages: Sequence[Mapping[str, Any]] | None) -> None:
    """Raise one clear error unless every stage log entry has 'stage' and 'rows' (a row count).

    >>> check_stages([{"stage": "filter", "rows": 640, "min_quality": "good"}])  # fine: returns None
    >>> check_stages([{"stage": "filter"}])
    Traceback (most recent call last):
    ...
    ValueError: stages[0] = {'stage': 'filter'}: each stage entry must be a dict with at least 'stage' ...
    """
    for i, stage in enumerate(stages or []):
        if not isinstance(stage, Mapping) or "stage" not in stage or "rows" not in stage:
            raise ValueError(
                f"stages[{i}] = {stage!r}: each stage entry must be a dict with at least "
                "'stage' (name) and 'rows' (rows after the stage), e.g. {'stage': 'filter', 'rows': 640}."
            )
        rows = stage["rows"]
        if isinstance(rows, bool) or not isinstance(rows, numbers.Integral) or rows < 0:
            raise ValueError(
                f"stages[{i}]['rows'] = {rows!r}: 'rows' is the number of rows left after stage "
                f"{stage['stage']!r}, an int >= 0 (e.g. len(ds) after it)."
            )


# ----------------------------------------------------------------------------- helpers


def _stage_rows(stages: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    rows, previous = [], None
    for stage in stages or []:
        n = stage["rows"]
        kept = f"{100 * n / previous:.1f}%" if previous else ""
        settings = ", ".join(
            f"{k}={_inline(v, in_table=True)}" for k, v in stage.items()
            if k not in ("stage", "rows", "report") and not is_secret_key(k)
        )
        rows.append({"stage": str(stage["stage"]), "rows": f"{n:,}", "kept": kept, "settings": settings})
        previous = n
    return rows


def _responder_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """A `compare_responders` report as the card shows it: its table best CAR first, numbers to 4 digits."""
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else f"{value:,}"

    rows = sorted(report["responders"], key=lambda r: (r["car"] is None, -(r["car"] or 0.0)))
    return {**report, "rows_shown": [{"responder": r["responder"].replace("|", "\\|"),
                                      **{k: cell(r[k]) for k in ("mean_reward", "mean_base_loss", "car",
                                                                 "completion_tokens", "seconds")}} for r in rows]}


def _inline(value: Any, in_table: bool = False) -> str:
    """`value` as inline code (JSON-quoted, so newlines show as \\n)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if in_table:  # a bare | would end the table cell
        text = text.replace("|", "\\|")
    return f"``{text}``" if "`" in text else f"`{text}`"


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    values = item["values"][:_MAX_VALUES]
    return {
        "column": item["column"],
        "shown": [_inline(v) for v in values],
        "more": max(0, item["count"] - len(values)),
    }


def _union(existing: Any, extra: Iterable[str]) -> list[str]:
    items = [existing] if isinstance(existing, str) else list(existing or [])
    return items + [x for x in extra if x not in items]


def _subsets(data: DatasetCardData, config_name: str, split: str, num_rows: int) -> list[dict[str, Any]]:
    """(config, split, rows) of every config in the YAML `dataset_info`, this one updated."""
    infos = data.get("dataset_info")
    infos = [infos] if isinstance(infos, dict) else list(infos or [])
    rows: dict[tuple[str, str], int] = {}
    for info in infos:
        for s in info.get("splits") or []:
            rows[(info.get("config_name", "default"), s.get("name"))] = int(s.get("num_examples") or 0)
    rows[(config_name, split)] = num_rows
    ordered = sorted(rows, key=lambda key: (key[0] != "default", key))
    return [{"config": c, "split": s, "rows": rows[(c, s)]} for c, s in ordered]


def _load_args(repo_id: str | None, config_name: str, split: str) -> str:
    args = [json.dumps(repo_id or "path/to/this/folder")]
    if config_name != "default":
        args.append(json.dumps(config_name))
    args.append(f"split={json.dumps(split)}")
    return ", ".join(args)


def _sample_json(ds: Snapshot) -> str:
    if ds.first_row is None:
        return "{}"

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > _MAX_SAMPLE_CHARS:
            return value[:_MAX_SAMPLE_CHARS] + " ..."
        if isinstance(value, list):
            return [cut(v) for v in value]
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value

    return json.dumps(cut(ds.first_row), ensure_ascii=False, indent=2, default=str).replace("```", "'''")
