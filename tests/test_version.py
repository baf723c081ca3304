"""The package version is part of every stage's `datasets` fingerprint and of a run's identity,
so an upgrade never silently reuses rows the old code wrote."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest
from datasets import Dataset

import magpie_datasets as magpie
from magpie_datasets import filters, version
from magpie_datasets.recipes import MAP_STAGES
from magpie_datasets.runners import checkpoint


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
    identity = checkpoint.run_identity(ds, steps, 1)
    assert identity["package"] == f"magpie-datasets {magpie.__version__}"
    monkeypatch.setattr(checkpoint, "__version__", "99.0.0")
    with pytest.raises(checkpoint.CheckpointMismatchError, match="package"):
        checkpoint.run_resumable(ds, steps, tmp_path / "ckpt", batch_size=1)
