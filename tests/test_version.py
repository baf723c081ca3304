"""The package version and a digest of its source are part of every stage's `datasets`
fingerprint and of a run's identity, so neither an upgrade nor an edit of a source install
silently reuses rows the old code wrote."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

import magpie_datasets as magpie
from magpie_datasets import filters, version
from magpie_datasets.recipes import MAP_STAGES
from magpie_datasets.runners import checkpoint, run_identity


def fingerprint_after(fn) -> str:
    ds = Dataset.from_dict({"instruction": ["hi"], "response": ["hello"]})
    return ds.map(fn, batched=True)._fingerprint


def test_every_map_stage_carries_the_version_into_the_fingerprint(monkeypatch):
    for name, fn in MAP_STAGES.items():
        assert isinstance(fn, version.versioned), name
        assert fn.__name__ == name and "batch" in inspect.signature(fn).parameters  # still reads as the function
    before = fingerprint_after(magpie.to_sharegpt)
    assert fingerprint_after(magpie.to_sharegpt) == before  # deterministic: the cache still works
    monkeypatch.setattr(version, "__version__", "99.0.0")  # an upgrade
    assert fingerprint_after(magpie.to_sharegpt) != before


def test_a_stage_pickles_back_to_itself():
    assert pickle.loads(pickle.dumps(magpie.generate_responses)) is magpie.generate_responses


def test_filters_carry_the_version():
    f = filters.min_quality("good")
    ds = Dataset.from_dict({"input_quality": ["good", "poor"]})
    upgraded = dataclasses.replace(f, version="99.0.0")
    assert ds.filter(f)._fingerprint == ds.filter(f)._fingerprint
    assert ds.filter(f)._fingerprint != ds.filter(upgraded)._fingerprint


def test_a_checkpoint_of_another_version_is_another_run(tmp_path, monkeypatch):
    ds = Dataset.from_dict({"instruction": ["hi"], "response": ["hello"]})
    steps = [(magpie.to_sharegpt, {})]
    checkpoint.run_resumable(ds, steps, tmp_path / "ckpt", batch_size=1)
    identity = run_identity.run_identity(ds, steps, 1)
    assert identity["package"] == f"magpie-datasets {version.code_version()}"
    assert version.code_version().startswith(magpie.__version__)
    monkeypatch.setattr(version, "__version__", "99.0.0")
    with pytest.raises(run_identity.CheckpointMismatchError, match="package"):
        checkpoint.run_resumable(ds, steps, tmp_path / "ckpt", batch_size=1)


# What a process that imports one copy of the package computes: the copy it imported, the
# fingerprint `datasets` gives a stage, and a checkpoint's identity.
PROBE = """
import json
from datasets import Dataset
from datasets.fingerprint import Hasher
import magpie_datasets
from magpie_datasets.runners import run_identity
steps = [(magpie_datasets.add_magpie_instructions, {})]
print(json.dumps({
    "file": magpie_datasets.__file__,
    "stage": Hasher.hash(magpie_datasets.add_magpie_instructions),
    "identity": run_identity.run_identity(Dataset.from_dict({"uuid": ["a"]}), steps, 1)["package"],
}))
"""


def copy_package(root: Path) -> Path:
    shutil.copytree(Path(magpie.__file__).parent, root / "magpie_datasets", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def probe(root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert Path(seen["file"]).resolve() == (root / "magpie_datasets" / "__init__.py").resolve()  # the copy, not this tree
    return seen


def test_an_edit_of_the_source_changes_fingerprints_and_run_identity(tmp_path):
    """A source install keeps its version from commit to commit: the code digest tells them apart."""
    roots = [copy_package(tmp_path / name) for name in ("same", "twin", "edited")]
    with open(roots[2] / "magpie_datasets" / "stages" / "generate.py", "a") as f:
        f.write("# one more line\n")
    same, twin, edited = map(probe, roots)
    assert same["stage"] == twin["stage"] and same["identity"] == twin["identity"]
    assert edited["stage"] != same["stage"] and edited["identity"] != same["identity"]
    for root, seen in zip(roots, (same, twin, edited)):  # the digest of the copy's own files
        digest = version.files_digest(root / "magpie_datasets")[:12]
        assert seen["identity"].startswith(f"magpie-datasets {magpie.__version__}") and seen["identity"].endswith(f"src.{digest}")
