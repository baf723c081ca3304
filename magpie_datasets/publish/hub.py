"""The Hugging Face Hub repository layout, written locally (`save_for_hub`) or pushed (`push_to_hub`).

    save_for_hub(ds, "out/")                    # out/data/train-00000-of-00001.parquet, out/README.md, out/plots/default/
    save_for_hub(ds_zh, "out/", config_name="zh")   # out/zh/train-*.parquet; README keeps both configs
    load_dataset("out/", "zh", split="train")   # same features as ds_zh
    push_to_hub(ds, "me/my-magpie", config_name="zh", token=...)

The layout is the one `Dataset.push_to_hub` makes: shards `<data_dir>/<split>-NNNNN-of-NNNNN.parquet`
(`data_dir` = "data" for the default config, else the config name) and a README whose YAML
lists every config (`configs`, `dataset_info`), plus our card body and plots (`card`, `plots`).
Saving or pushing a config merges into what is there; other configs are never dropped.
Both lay out the card, plots and reports (`repository.lay_out`) before any data reaches the
folder or the Hub.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetInfo, SplitDict, SplitInfo
from datasets.data_files import sanitize_patterns
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    DatasetCardData,
    HfApi,
)
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from ..runners.ledger import YieldReport
from .card import PLOTS_DIR, render_card
from .plots import Plot
from .repository import REPORTS_DIR, check_publish_options, lay_out

logger = logging.getLogger(__name__)

README = "README.md"
DEFAULT_MAX_SHARD_SIZE = 500 * 2**20  # as datasets' push_to_hub
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")  # datasets' rule for split names
_CONFIG_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")  # also a folder name and a card marker


def save_for_hub(
    ds: Dataset,
    directory: str | Path,
    config_name: str | None = None,
    split: str = "train",
    card: bool = True,
    *,
    repo_id: str | None = None,
    stages: Sequence[Mapping[str, Any]] | None = None,
    license: str | None = None,
    title: str | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    num_shards: int | None = None,
    report: YieldReport | str | Path | None = None,
    price_per_hour: float | None = None,
    analysis: bool = False,
    references: Mapping[str, Dataset | Sequence[str]] | None = None,
) -> Path:
    """Write `ds` as config `config_name`, split `split` of a Hub-style repository in `directory`.

    Replaces that split's shards, merges the README (YAML `configs` + `dataset_info`, and
    with `card=True` the card section and plots of this config), keeps everything else.
    The card, plots and shards are built in a staging folder first (inside `directory`, or
    beside it when it does not exist yet) and moved in only when all of them are ready, so
    a failure leaves `directory` as it was, or absent. `repo_id` only fills the card's
    `load_dataset` snippet. Returns `directory`.

    `report` (a `YieldReport` or the path of a `yield_report.json`, e.g. the one `generate`
    saved beside its dataset) is written to `reports/<config>/yield_report.json` and shown in
    the card as the yield-and-cost table, with money at `price_per_hour`. `analysis=True` adds
    the analysis section (figures in `plots/<config>/`, numbers in `reports/<config>/analysis.json`),
    with the coverage map and contamination check against `references` (name -> dataset or questions).
    """
    config_name = _check_names(config_name, split)
    _check_shard_options(max_shard_size, num_shards)
    report = check_publish_options(report, analysis, references)
    directory = Path(directory)
    data_dir = _data_dir(config_name)
    existing = _read_readme(directory)
    # also rejects a split whose features differ from the config's other splits, before anything is built
    metadata = _merged_metadata(existing, config_name, data_dir, split, ds, download_size=0)

    with _staging(directory) as staging:
        files = lay_out(
            ds, staging, config_name=config_name, card=card, report=report, price_per_hour=price_per_hour,
            analysis=analysis, references=references, existing=existing, split=split, repo_id=repo_id,
            stages=stages, license=license, metadata=metadata, title=title,
        )
        new_card = files.card if card else _card_with_metadata(existing, metadata)
        assert new_card is not None  # lay_out renders one when card=True
        shards = _write_shards(ds, staging / data_dir, split, max_shard_size, num_shards)
        kept_bytes = sum(
            p.stat().st_size for p in (directory / data_dir).glob("*.parquet") if not _is_split_shard(p, split)
        )
        download_size = kept_bytes + sum(p.stat().st_size for p in shards)
        _set_metadata(new_card, _merged_metadata(existing, config_name, data_dir, split, ds, download_size))
        new_card.save(staging / README)
        _move_into_place(staging, directory, data_dir, split, plots_config=config_name if card else None,
                         reports_config=config_name if files.reports else None)
    return directory


def load_dataset(directory: str | Path, config_name: str | None = None, split: str | None = None, **kwargs: Any):
    """`datasets.load_dataset` on a folder written by `save_for_hub` (or a downloaded Hub repo)."""
    return datasets.load_dataset(str(directory), config_name, split=split, **kwargs)


def push_to_hub(
    ds: Dataset,
    repo_id: str,
    config_name: str | None = None,
    split: str = "train",
    card: bool = True,
    private: bool | None = None,
    token: str | None = None,
    *,
    stages: Sequence[Mapping[str, Any]] | None = None,
    license: str | None = None,
    title: str | None = None,
    max_shard_size: int | str | None = None,
    num_shards: int | None = None,
    retries: int = 3,
    report: YieldReport | str | Path | None = None,
    price_per_hour: float | None = None,
    analysis: bool = False,
    references: Mapping[str, Dataset | Sequence[str]] | None = None,
):
    """Push `ds` as config `config_name` of dataset repo `repo_id`, then its card and plots.

    The plots and a trial card are made first, so bad arguments fail before any upload.
    Data goes through `Dataset.push_to_hub(config_name=..., split=...)`, which already
    merges the YAML `configs`/`dataset_info`. The card is then rendered over the README
    that push left (downloaded at a known commit), so other configs' metadata and sections
    stay, and committed with `parent_commit` so a concurrent change is never overwritten
    (on a conflict it re-reads and retries). The token is only handed to the
    `huggingface_hub` client; it is never logged or written. Returns the card's `CommitInfo`
    (or the data's with `card=False`). `report`, `price_per_hour`, `analysis` and `references`
    are those of `save_for_hub`; the reports go up with the card.
    """
    config_name = _check_names(config_name, split)
    report = check_publish_options(report, analysis, references)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise ValueError(f"retries={retries!r}: give how many times to try the card commit, an int >= 1 (default 3).")
    push_data = functools.partial(
        ds.push_to_hub, repo_id, config_name=config_name, split=split, private=private, token=token,
        max_shard_size=max_shard_size, num_shards=num_shards,
        commit_message=f"Upload {config_name}/{split} ({len(ds):,} rows)",
    )
    if not card:
        return push_data()

    card_options: dict[str, Any] = {"config_name": config_name, "split": split, "repo_id": repo_id, "stages": stages,
                    "license": license, "title": title, "report": report, "price_per_hour": price_per_hour}
    with tempfile.TemporaryDirectory(prefix="magpie-card-") as tmp:
        root = Path(tmp) / "upload"
        # Plots and a trial card before the data push: an argument or rendering error surfaces
        # while the repository is untouched, not after its data changed.
        files = lay_out(ds, root, **card_options, analysis=analysis, references=references)
        section = card_options["analysis"] = files.section
        shown = [p for p in files.plots if p not in (section.figures if section else ())]  # the analysis links its own
        uploads = [p.file for p in files.plots]
        uploads += [f.relative_to(root).as_posix() for f in files.reports]
        push_data()
        # Same endpoint as the data push, so both halves go to one server.
        api = HfApi(endpoint=datasets.config.HF_ENDPOINT, token=token, library_name="magpie-datasets")
        return _commit_card(api, ds, root, shown, uploads, retries, **card_options)


def _commit_card(
    api: HfApi, ds: Dataset, root: Path, plots: Sequence[Plot], uploads: Sequence[str], retries: int, *,
    repo_id: str, config_name: str, **card_options: Any,
):
    """Render the card (linking `plots`) over the README at the repo's head and commit it with the
    files `uploads` (paths under `root`: plots, analysis figures, reports).

    The commit names its parent, so a concurrent change is never overwritten: on a conflict
    the README is read again and the card re-rendered on top.
    """
    new_files = set(uploads)
    for attempt in range(1, retries + 1):
        parent = api.repo_info(repo_id, repo_type="dataset").sha
        existing = _download_readme(api, repo_id, parent, root.parent / f"remote-{attempt}")
        new_card = render_card(ds, repo_id=repo_id, config_name=config_name, existing=existing, plots=plots,
                               **card_options)
        stale = [
            f for f in api.list_repo_files(repo_id, repo_type="dataset", revision=parent)
            if f.startswith((f"{PLOTS_DIR}/{config_name}/", f"{REPORTS_DIR}/{config_name}/")) and f not in new_files
        ]
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(README, str(new_card).encode("utf-8"))
        ]
        operations += [CommitOperationAdd(file, str(root / file)) for file in uploads]
        operations += [CommitOperationDelete(f) for f in stale]
        try:
            info = api.create_commit(
                repo_id, operations=operations, repo_type="dataset", parent_commit=parent,
                commit_message=f"Dataset card and plots for config {config_name}",
            )
        except HfHubHTTPError as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status in (409, 412) and attempt < retries:  # someone committed in between: redo on top
                logger.info("Card commit conflicted (HTTP %s); retrying on the new head.", status)
                continue
            raise
        logger.info("Pushed %s config %r with its card: %s", repo_id, config_name, info.commit_url)
        return info
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- helpers


def _check_names(config_name: str | None, split: str) -> str:
    config_name = config_name or "default"
    if config_name == "data" or not _CONFIG_RE.match(config_name):
        raise ValueError(
            f"config_name {config_name!r} cannot be used: it names a folder in the repository, so use "
            "letters, digits, '.', '_' or '-' (starting with a letter or digit), and not 'data' "
            "(the default config's folder)."
        )
    if not _SPLIT_RE.match(split):
        raise ValueError(f"split {split!r} is not a valid split name: use letters, digits and '_' (e.g. 'train').")
    return config_name


def _check_shard_options(max_shard_size: Any, num_shards: Any) -> None:
    if isinstance(max_shard_size, bool) or not isinstance(max_shard_size, int) or max_shard_size <= 0:
        raise ValueError(
            f"max_shard_size={max_shard_size!r}: give the largest shard size in bytes as a positive int "
            f"(default {DEFAULT_MAX_SHARD_SIZE}, 500 MiB)."
        )
    if num_shards is not None and (isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards <= 0):
        raise ValueError(f"num_shards={num_shards!r}: give a positive int, or None to size shards by max_shard_size.")


def _read_readme(directory: Path) -> str | None:
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file; save_for_hub writes a folder there: pass a folder path.")
    readme = directory / README
    return readme.read_text(encoding="utf-8") if readme.exists() else None


@contextlib.contextmanager
def _staging(directory: Path) -> Iterator[Path]:
    """An empty folder on the same file system as `directory` (so moving out of it is a rename), removed on exit.

    Inside `directory` when it exists, else beside it: a new `directory` then appears whole
    with one rename, or not at all.
    """
    parent = directory if directory.is_dir() else directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".magpie-staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()  # not mkdtemp: its 0700 mode would stay on a new directory
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(
    staging: Path, directory: Path, data_dir: str, split: str, plots_config: str | None,
    reports_config: str | None = None,
) -> None:
    """Swap the staged shards, plots and README into `directory`; the README last, as it describes the rest."""
    if not directory.exists():
        staging.rename(directory)
        return
    target = directory / data_dir
    target.mkdir(exist_ok=True)
    for old in target.glob(f"{split}-*.parquet"):
        if _is_split_shard(old, split):
            old.unlink()
    for shard in sorted((staging / data_dir).iterdir()):
        shard.replace(target / shard.name)
    if plots_config is not None:
        plots = directory / PLOTS_DIR / plots_config
        shutil.rmtree(plots, ignore_errors=True)
        plots.parent.mkdir(exist_ok=True)
        (staging / PLOTS_DIR / plots_config).replace(plots)
    if reports_config is not None:
        reports = directory / REPORTS_DIR / reports_config
        shutil.rmtree(reports, ignore_errors=True)
        reports.parent.mkdir(exist_ok=True)
        (staging / REPORTS_DIR / reports_config).replace(reports)
    (staging / README).replace(directory / README)


def _set_metadata(card: DatasetCard, metadata: Mapping[str, Any]) -> None:
    """Set YAML keys on a rendered card (its text is kept; `str(card)` dumps `card.data` afresh)."""
    for key, value in metadata.items():
        card.data[key] = value


def _data_dir(config_name: str) -> str:
    return "data" if config_name == "default" else config_name


def _is_split_shard(path: Path, split: str) -> bool:
    return re.fullmatch(rf"{re.escape(split)}-\d{{5}}-of-\d{{5}}\.parquet", path.name) is not None


def _estimated_bytes(ds: Dataset) -> int:
    """In-memory size of the rows `ds` shows (the table may hold more, after a filter)."""
    table_rows = max(1, ds.data.num_rows)
    return int(ds.data.nbytes * len(ds) / table_rows)


def _write_shards(ds: Dataset, folder: Path, split: str, max_shard_size: int, num_shards: int | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    n = num_shards or max(1, math.ceil(_estimated_bytes(ds) / max_shard_size))
    n = max(1, min(n, len(ds))) if len(ds) else 1
    paths = []
    for index in range(n):
        path = folder / f"{split}-{index:05d}-of-{n:05d}.parquet"
        ds.shard(num_shards=n, index=index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


def _merged_metadata(
    existing: str | None, config_name: str, data_dir: str, split: str, ds: Dataset, download_size: int
) -> dict[str, Any]:
    """`configs` and `dataset_info` YAML of the whole repository after adding this split."""
    data = DatasetCard(existing).data if existing and existing.strip() else DatasetCardData()
    infos = DatasetInfosDict.from_dataset_card_data(data)
    configs = MetadataConfigs.from_dataset_card_data(data)

    splits = SplitDict()
    old = infos.get(config_name)
    if old is not None and old.splits:
        others = {name: s for name, s in old.splits.items() if name != split}
        if others and old.features is not None and old.features != ds.features:
            raise ValueError(
                f"Config {config_name!r} already has split(s) {sorted(others)} with other features than this "
                f"dataset; splits of one config must share features. Save under another config_name, or "
                f"cast first: ds.cast(features_of_the_other_split).\nexisting: {old.features}\nnew: {ds.features}"
            )
        for s in others.values():
            splits.add(s)
    splits.add(SplitInfo(name=split, num_bytes=_estimated_bytes(ds), num_examples=len(ds)))
    info = DatasetInfo(
        features=ds.features, splits=splits, download_size=download_size,
        dataset_size=sum(s.num_bytes or 0 for s in splits.values()),
    )
    DatasetInfosDict({config_name: info}).to_dataset_card_data(data)

    entry = dict(configs.get(config_name, {}))
    data_files = sanitize_patterns(entry["data_files"]) if entry.get("data_files") else {}
    data_files[split] = [f"{data_dir}/{split}-*"]
    entry["data_files"] = [
        {"split": name, "path": patterns[0] if len(patterns) == 1 else patterns}
        for name, patterns in data_files.items()
    ]
    MetadataConfigs({config_name: entry}).to_dataset_card_data(data)
    return {"configs": data["configs"], "dataset_info": data["dataset_info"]}


def _card_with_metadata(existing: str | None, metadata: Mapping[str, Any]) -> DatasetCard:
    """The existing README (or an empty one) with `metadata` set on its YAML; body untouched."""
    old = DatasetCard(existing) if existing and existing.strip() else None
    data = DatasetCardData(**old.data.to_dict()) if old else DatasetCardData()
    for key, value in metadata.items():
        data[key] = value
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{old.text if old else ''}")


def _download_readme(api: HfApi, repo_id: str, revision: str | None, folder: Path) -> str | None:
    try:
        path = api.hf_hub_download(repo_id, README, repo_type="dataset", revision=revision, local_dir=folder)
    except EntryNotFoundError:
        return None
    return Path(path).read_text(encoding="utf-8")
