"""Dataset cards for Magpie runs: Hub YAML metadata, provenance, statistics, plots, citation.

    card, plots = card_with_plots(ds, "out/", config_name="default", stages=[
        {"stage": "add_magpie_instructions", "rows": 1000, "model": "Qwen/Qwen2.5-7B-Instruct"},
        {"stage": "filter", "rows": 640, "preset": "pro-300k"},
    ])
    card.save("out/README.md")   # plots are already in out/plots/default/*.png

`magpie_datasets.publish.hub` wraps this with the data files (`save_for_hub`, `push_to_hub`).

The card is a `huggingface_hub.DatasetCard` rendered from the Jinja templates in the
package's `card_templates/` folder (package data, read with `importlib.resources`). Each
config gets its own section between HTML comment markers, so writing a second config
into the same README keeps the first one, and text outside the generated block is
never touched.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features
from huggingface_hub import DatasetCard, DatasetCardData

TEMPLATE_FOLDER = "card_templates"  # package data of magpie_datasets
CARD_TEMPLATE = "dataset_card.md.jinja"
SECTION_TEMPLATE = "config_section.md.jinja"
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

TASK_CATEGORIES = [
    "Information seeking", "Reasoning", "Planning", "Editing", "Coding & Debugging", "Math",
    "Role playing", "Data analysis", "Creative writing", "Advice seeking", "Brainstorming", "Others",
]
QUALITY_ORDER = ["very poor", "poor", "average", "good", "excellent"]
DIFFICULTY_ORDER = ["very easy", "easy", "medium", "hard", "very hard"]

# First match on the lower-cased model id wins: (substring, Hub license id, license_name for "other").
MODEL_LICENSES: list[tuple[str, str, str | None]] = [
    ("llama-3.3", "llama3.3", None),
    ("llama-3.2", "llama3.2", None),
    ("llama-3.1", "llama3.1", None),
    ("llama-3", "llama3", None),
    ("qwen2.5-72b", "other", "qwen"),
    ("qwen2.5-3b", "other", "qwen-research"),
    ("qwen2-72b", "other", "tongyi-qianwen"),
    ("qwen", "apache-2.0", None),
    ("smollm", "apache-2.0", None),
    ("gemma", "gemma", None),
    ("phi-3", "mit", None),
    ("mistral-7b", "apache-2.0", None),
]

# Columns whose distinct values say how the rows were made (top level or one struct level down).
_PROVENANCE_NAMES = {
    "model", "engine", "seed", "temperature", "top_p", "repetition_penalty", "max_tokens",
    "stop_tokens", "system_prompt", "early_stop", "sanitize", "pre_query_template", "extract_input",
    "prompt", "input_generator", "output_generator",
}
_PROVENANCE_SUFFIXES = ("_generator", "_model", "_engine", "_template")
_CATEGORY_COLUMNS = ("task_category", "input_quality", "difficulty", "language", "llama_guard_2")
_NUMERIC_COLUMNS = ("min_neighbor_distance", "repeat_count", "instruct_reward", "base_reward", "reward_difference",
                    "instruction_length", "response_length")
_MAX_VALUES = 5
_MAX_SAMPLE_CHARS = 400

_SIZE_CATEGORIES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
]

_BLOCK_RE = re.compile(r"<!-- magpie-datasets:begin -->.*?<!-- magpie-datasets:end -->", re.S)
_SECTION_RE = re.compile(
    r"<!-- magpie-datasets:config (?P<name>\S+) -->.*?<!-- magpie-datasets:/config (?P=name) -->", re.S
)


@dataclass(frozen=True)
class Plot:
    """One PNG written next to the card; `file` is relative to the README."""

    column: str
    title: str
    file: str


def license_for_model(model: str | None) -> tuple[str, str | None]:
    """Hub license id (and `license_name` when it is "other") of a generating model.

    >>> license_for_model("meta-llama/Meta-Llama-3.1-70B-Instruct")
    ('llama3.1', None)
    >>> license_for_model("someone/unknown-7b")
    ('other', None)
    """
    name = (model or "").lower()
    for pattern, license_id, license_name in MODEL_LICENSES:
        if pattern in name:
            return license_id, license_name
    return "other", None


def size_category(num_rows: int) -> str:
    """The Hub's `size_categories` bucket for a row count (e.g. 1234 -> "1K<n<10K")."""
    for limit, label in _SIZE_CATEGORIES:
        if num_rows < limit:
            return label
    return "n>1B"


def generating_models(ds: Dataset) -> list[str]:
    """Distinct models that wrote instructions or responses (`model`, `*.input_generator`, ...)."""
    ds = _snapshot(ds)
    paths = ["model", "gen_input_configs.input_generator", "gen_response_configs.output_generator"]
    models: list[str] = []
    for path in paths:
        for value in _distinct(ds, path):
            if isinstance(value, str) and value and value not in models:
                models.append(value)
    return models


def column_provenance(ds: Dataset) -> list[dict[str, Any]]:
    """Distinct values of the columns that record models, engines, templates and decoding.

    Returns `[{"column": "gen_input_configs.temperature", "values": [1.0], "count": 1}, ...]`.
    """
    ds = _snapshot(ds)
    items = []
    for path in _provenance_paths(ds.features):
        values = _distinct(ds, path)
        if values and any(v is not None for v in values):
            items.append({"column": path, "values": values, "count": len(values)})
    if "llama_guard_2" in ds.column_names:
        items.append({"column": "llama_guard_2", "values": ["meta-llama/Meta-Llama-Guard-2-8B"], "count": 1})
    return items


def summarize(ds: Dataset) -> list[dict[str, str]]:
    """One line per tag or numeric column: value shares, or mean / median / range."""
    ds = _snapshot(ds)
    rows = []
    for column in _CATEGORY_COLUMNS:
        if column in ds.column_names and _is_string(ds.features[column]):
            counts = _value_counts(ds, column)
            total = sum(counts.values())
            if total:
                top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
                text = ", ".join(f"{_clean(k)} {100 * v / total:.0f}%" for k, v in top)
                rows.append({"column": column, "text": text + (", ..." if len(counts) > 4 else "")})
    for column in _numeric_columns(ds):
        values = _numbers(ds, column)
        if values.size:
            rows.append({
                "column": column,
                "text": f"mean {values.mean():.3g}, median {np.median(values):.3g}, "
                        f"min {values.min():.3g}, max {values.max():.3g} ({values.size:,} values)",
            })
    return rows


def write_plots(ds: Dataset, directory: str | Path, relative_to: str | Path | None = None) -> list[Plot]:
    """Bar charts of task category / quality / difficulty / language and histograms of
    neighbour distance, rewards and lengths, each only when its column has values.

    Writes `directory/<column>.png`; `Plot.file` is relative to `relative_to` (default: directory).
    """
    from matplotlib.figure import (
        Figure,  # no pyplot: no global state, no display backend
    )

    ds = _snapshot(ds)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = Path(relative_to) if relative_to is not None else directory
    plots: list[Plot] = []

    def save(fig: Figure, column: str, title: str) -> None:
        path = directory / f"{column}.png"
        fig.savefig(path, dpi=100)  # fixed margins below: tight_layout costs ~0.1 s per plot
        plots.append(Plot(column, title, path.relative_to(base).as_posix()))

    bars = [
        ("task_category", "Task category", TASK_CATEGORIES),
        ("input_quality", "Input quality", QUALITY_ORDER),
        ("difficulty", "Difficulty", DIFFICULTY_ORDER),
        ("language", "Language", None),
    ]
    for column, title, order in bars:
        if column not in ds.column_names or not _is_string(ds.features[column]):
            continue
        counts = _value_counts(ds, column)
        if not counts:
            continue
        labels = [k for k in (order or []) if k in counts]
        labels += sorted((k for k in counts if k not in labels), key=lambda k: -counts[k])[:20]
        fig = Figure(figsize=(7, 3.6))
        fig.subplots_adjust(left=0.11, right=0.98, top=0.9, bottom=0.33)
        ax = fig.add_subplot()
        ax.bar(range(len(labels)), [counts[k] for k in labels], color="#4C72B0")
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("rows")
        ax.set_title(title)
        save(fig, column, title)

    histograms = [
        ("min_neighbor_distance", "Distance to the nearest other instruction"),
        ("instruct_reward", "Reward of the response"),
        ("base_reward", "Reward of the base model's answer"),
        ("reward_difference", "Reward difference (instruct - base)"),
        ("instruction_length", "Instruction length (characters)"),
        ("response_length", "Response length (characters)"),
    ]
    for column, title in histograms:
        if column not in ds.column_names:
            continue
        values = _numbers(ds, column)
        if not values.size:
            continue
        fig = Figure(figsize=(7, 3.2))
        fig.subplots_adjust(left=0.11, right=0.98, top=0.88, bottom=0.17)
        ax = fig.add_subplot()
        ax.hist(values, bins=min(50, max(5, int(math.sqrt(len(values))) * 2)), color="#55A868")
        ax.set_xlabel(column)
        ax.set_ylabel("rows")
        ax.set_title(title)
        save(fig, column, title)
    return plots


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
) -> DatasetCard:
    """The README for `ds` as config `config_name`, merged into the `existing` README text.

    `metadata` (e.g. `configs`, `dataset_info`) is set on the YAML as given; everything
    else already in `existing` (other configs' sections and metadata, the user's own text)
    is kept. `license=None` keeps an existing license, else uses the generating model's.
    """
    check_stages(stages)
    ds = _snapshot(ds)
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
        data["pretty_name"] = title or repo_id.split("/")[-1]

    section = _templates().get_template(SECTION_TEMPLATE).render(
        config_name=config_name,
        split=split,
        num_rows=len(ds),
        generator_license=(generator_license_name or generator_license) if models else None,
        load_args=_load_args(repo_id, config_name, split),
        provenance=[_shown(item) for item in column_provenance(ds)],
        stages=_stage_rows(stages),
        summary=summarize(ds),
        plots=plots,
        sample=_sample_json(ds),
    )
    body = old.text if old else ""
    sections = {m.group("name"): m.group(0) for m in _SECTION_RE.finditer(body)}
    sections[config_name] = section.strip()
    block = _BLOCK_RE.search(body)
    before, after = (body[: block.start()], body[block.end():]) if block else (body.strip() + "\n\n" if body.strip() else "", "")
    ordered = sorted(sections, key=lambda name: (name != "default", name))
    content = _templates().get_template(CARD_TEMPLATE).render(
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
    **card_options: Any,
) -> tuple[DatasetCard, list[Plot]]:
    """Write this config's plots under `root/plots/<config>/` and render the card that links them.

    The card is returned, not saved: it belongs at `root/README.md` (the links are
    relative to it). `card_options` go to `render_card` (repo_id, split, stages, license,
    metadata, title).
    """
    check_stages(card_options.get("stages"))
    root = Path(root)
    ds = _snapshot(ds)  # gathered once for the plots and the card
    plots = write_plots(ds, root / PLOTS_DIR / config_name, relative_to=root)
    card = render_card(ds, config_name=config_name, plots=plots, existing=existing, **card_options)
    return card, plots


# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    # importlib.resources, not a path next to __file__: it finds package data in any install (wheel, zip, editable)
    folder = resources.files(__package__) / TEMPLATE_FOLDER
    missing = [name for name in (CARD_TEMPLATE, SECTION_TEMPLATE) if not folder.joinpath(name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Card templates {missing} are missing from the installed {__package__} package ({folder}); "
            "reinstall it (pip install --force-reinstall --no-deps magpie-datasets) so its package data is there."
        )
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text(encoding="utf-8")),
        keep_trailing_newline=True, autoescape=False,
    )


def check_stages(stages: Sequence[Mapping[str, Any]] | None) -> None:
    """Raise one clear error unless every stage log entry has 'stage' and 'rows' (a row count)."""
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


def _stage_rows(stages: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    rows, previous = [], None
    for stage in stages or []:
        n = stage["rows"]
        kept = f"{100 * n / previous:.1f}%" if previous else ""
        settings = ", ".join(
            f"{k}={_inline(v, in_table=True)}" for k, v in stage.items() if k not in ("stage", "rows") and not _secret(k)
        )
        rows.append({"stage": str(stage["stage"]), "rows": f"{n:,}", "kept": kept, "settings": settings})
        previous = n
    return rows


def _secret(key: str) -> bool:
    """Keys never copied into a card, whatever a caller's stage log holds."""
    key = key.lower()
    return key in ("token", "api_key", "password", "secret") or key.endswith(("_token", "_secret", "_api_key"))


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


def _provenance_paths(features: Mapping[str, Any]) -> list[str]:
    def wanted(name: str) -> bool:
        return name in _PROVENANCE_NAMES or name.endswith(_PROVENANCE_SUFFIXES)

    paths = []
    for name, feature in features.items():
        if isinstance(feature, dict):
            paths += [f"{name}.{sub}" for sub in feature if wanted(sub) and not isinstance(feature[sub], dict)]
        elif wanted(name) and _is_scalar(feature):
            paths.append(name)
    return paths


@dataclass(frozen=True)
class _Snapshot:
    """The (small) columns a card reads, gathered once into one pyarrow table."""

    features: Any
    table: pa.Table
    first_row: dict[str, Any] | None

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    def __len__(self) -> int:
        return self.table.num_rows


def _snapshot(ds: Dataset | _Snapshot) -> _Snapshot:
    """Tag, numeric and provenance columns of `ds` (not the long texts) as one table.

    After a filter a Dataset holds an indices mapping; one pyarrow `take` gathers the rows
    (~1 s for 255K rows here) where datasets' formatted access took ~25 s.
    """
    if isinstance(ds, _Snapshot):
        return ds
    wanted = {*_CATEGORY_COLUMNS, *_NUMERIC_COLUMNS, *(p.partition(".")[0] for p in _provenance_paths(ds.features))}
    names = [name for name in ds.column_names if name in wanted or name == "model"]
    table = ds.data.table.select(names)
    indices = ds._indices  # private, but the only way to a plain take; None when rows are contiguous
    table = table.take(indices.column(0)) if indices is not None else table
    return _Snapshot(Features({n: ds.features[n] for n in names}), table, ds[0] if len(ds) else None)


def _arrow_column(ds: _Snapshot, path: str):
    """`path` ("col" or "struct.field") as one pyarrow Array, or None when absent."""
    top, _, sub = path.partition(".")
    if top not in ds.column_names:
        return None
    feature = ds.features[top]
    if sub and not (isinstance(feature, dict) and sub in feature):
        return None
    column = ds.table.column(top).combine_chunks()
    return column.field(sub) if sub else column


def _column(ds: _Snapshot, path: str) -> list[Any] | None:
    column = _arrow_column(ds, path)
    return None if column is None else column.to_pylist()


def _distinct(ds: _Snapshot, path: str) -> list[Any]:
    """Distinct values in order of first appearance (arrow-side for scalars: fast on 1M rows)."""
    column = _arrow_column(ds, path)
    if column is None:
        return []
    if not pa.types.is_nested(column.type):
        return pc.unique(column).to_pylist()
    seen: dict[str, Any] = {}
    for value in column.to_pylist():
        seen.setdefault(json.dumps(value, sort_keys=True, default=str), value)
    return list(seen.values())


def _value_counts(ds: _Snapshot, column: str) -> dict[str, int]:
    values = _arrow_column(ds, column)
    if values is None:
        return {}
    counts = pc.value_counts(values).to_pylist()
    return {c["values"]: c["counts"] for c in counts if c["values"] is not None and c["values"] != ""}


def _numbers(ds: _Snapshot, column: str) -> np.ndarray:
    """Finite values of a numeric column as a float array (nulls and NaN dropped)."""
    values = _arrow_column(ds, column)
    if values is None:
        return np.empty(0)
    array = pc.drop_null(values).to_numpy(zero_copy_only=False).astype(float)
    return array[np.isfinite(array)]


def _numeric_columns(ds: _Snapshot) -> list[str]:
    return [n for n in _NUMERIC_COLUMNS if n in ds.column_names and getattr(ds.features[n], "dtype", "") in
            ("int8", "int16", "int32", "int64", "float16", "float32", "float64")]


def _is_string(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string")


def _is_scalar(feature: Any) -> bool:
    return hasattr(feature, "dtype") and not isinstance(feature, dict)


def _clean(value: str) -> str:
    return str(value).replace("\n", " ").replace("|", "\\|")


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


def _sample_json(ds: _Snapshot) -> str:
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
