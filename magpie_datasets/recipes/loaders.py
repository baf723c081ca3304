"""Datasets on disk for a build or an analysis: `load_any` (a folder or a data file) and
`load_references` (the `--reference [NAME=]DIR` datasets)."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset

from .recipe import RecipeError


def load_any(path: str | Path, config_name: str | None = None, split: str = "train") -> Dataset:
    """A dataset on disk: a `save_to_disk` folder, a Hub folder (ours or a downloaded Magpie repo),
    a folder of data files, or one .parquet / .jsonl / .json / .csv file; `split` of it."""
    import datasets

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such dataset; give a folder written by save_to_disk or save_for_hub, or a data file")
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise RecipeError(f"{path} has splits {sorted(loaded)}, not {split!r}: choose one with --split")
            loaded = loaded[split]
        return loaded
    if path.is_file():
        kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}.get(path.suffix)
        if kind is None:
            raise RecipeError(f"{path}: a data file is .parquet, .jsonl, .json or .csv")
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    return datasets.load_dataset(str(path), config_name, split=split)


def load_references(specs: list[str] | tuple[str, ...]) -> dict[str, Dataset]:
    """`["alpaca=refs/alpaca", "refs/arena"]` -> `{"alpaca": Dataset, "arena": Dataset}` (name: the folder's by default)."""
    out: dict[str, Dataset] = {}
    for spec in specs:
        name, _, where = spec.rpartition("=") if "=" in spec else ("", "", spec)
        name = name or Path(where.rstrip("/")).name
        if name in out:
            raise RecipeError(f"--reference {spec}: the name {name!r} is taken; name it: --reference OTHER={where}")
        out[name] = load_any(where)
    return out
