"""Exactly-once resume: finished batches survive a crash or SIGKILL, nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, Value, load_from_disk

from magpie_datasets.runners.checkpoint import (
    check_output,
    run_resumable,
    save_dataset,
)
from magpie_datasets.runners.run_identity import (
    CheckpointMismatchError,
    is_secret_key,
    run_identity,
)
from magpie_datasets.schema import RESPONSE_FEATURES, typed_batch

calls: list[int] = []


def square(batch, offset=0):
    """A deterministic step that records which batches it saw (by first x)."""
    calls.append(batch["x"][0])
    return {"y": [x * x + offset for x in batch["x"]]}


crash_at: list[int] = []  # a module global, so the run's identity stays the same across the crash


def crashy(batch):
    if set(crash_at) & set(batch["x"]):
        raise RuntimeError(f"crash at {crash_at}")
    return {"z": [-x for x in batch["x"]]}


def issue(batch):
    # all None in the first batches: typed so the column is a string column from the start
    return typed_batch({"response_issue": [None if x < 12 else "empty" for x in batch["x"]]}, RESPONSE_FEATURES)


def untyped(batch):
    return {"note": [None if x < 12 else "late" for x in batch["x"]]}


def numbers(n: int = 23) -> Dataset:
    return Dataset.from_dict(
        {"x": list(range(n)), "label": [i % 2 for i in range(n)]},
        features=Features({"x": Value("int64"), "label": ClassLabel(names=["even", "odd"])}),
    )


def test_same_rows_as_map_and_finished_run_is_not_redone(tmp_path):
    ds = numbers()
    steps = [(square, {"offset": 1}), (issue, {}), (untyped, {})]
    calls.clear()
    out = run_resumable(ds, steps, tmp_path / "ck", batch_size=5)
    assert sorted(calls) == [0, 5, 10, 15, 20]  # each batch once (two in flight: in either order)
    expected = ds.map(square, batched=True, batch_size=5, fn_kwargs={"offset": 1}).map(issue, batched=True)
    # (Dataset.map itself would fail on `untyped`: its column is all None in the first batch.)
    expected = expected.add_column("note", [None] * 12 + ["late"] * 11, feature=Value("string"))
    assert out.to_list() == expected.to_list()
    assert out.features["label"] == ClassLabel(names=["even", "odd"])  # input features kept
    assert out.features["response_issue"] == Value("string")
    assert out.features["note"] == Value("string")  # null in early batches, promoted
    assert sorted(p.name for p in (tmp_path / "ck" / "batches").iterdir()) == [f"{i:07d}.arrow" for i in range(5)]

    calls.clear()
    again = run_resumable(ds, steps, tmp_path / "ck", batch_size=5)
    assert calls == []  # finished: read back, not recomputed
    assert again.to_list() == out.to_list()


def test_crash_resumes_from_the_missing_batches_only(tmp_path):
    ds, steps = numbers(), [(square, {}), (crashy, {})]
    calls.clear()
    crash_at[:] = [12]
    with pytest.raises(RuntimeError, match="crash at"):  # one batch at a time: batches 3 and 4 never start
        run_resumable(ds, steps, tmp_path / "ck", batch_size=5, in_flight=1)
    assert sorted(p.name for p in (tmp_path / "ck" / "batches").iterdir()) == ["0000000.arrow", "0000001.arrow"]
    crash_at[:] = []
    calls.clear()
    out = run_resumable(ds, steps, tmp_path / "ck", batch_size=5)
    assert sorted(calls) == [10, 15, 20]  # only the batches that were not finished (in flight at once: any order)
    assert out["x"] == list(range(23))
    assert out["y"] == [x * x for x in range(23)]
    assert out["z"] == [-x for x in range(23)]


def test_a_different_run_is_refused_and_nothing_is_written(tmp_path):
    ck = tmp_path / "ck"
    run_resumable(numbers(), [(square, {"offset": 0})], ck, batch_size=5)
    before = {p: p.stat().st_mtime_ns for p in ck.rglob("*")}
    for steps, size, data, what in [
        ([(square, {"offset": 2})], 5, numbers(), r"steps\[0\]\.fn_kwargs\.offset: 0 != 2"),
        ([(square, {"offset": 0})], 4, numbers(), r"batch_size: 5 != 4"),
        ([(square, {"offset": 0})], 5, numbers(24), r"input\.num_rows: 23 != 24"),
        ([(square, {"offset": 0}), (issue, {})], 5, numbers(), r"steps: 1 entries != 2"),
    ]:
        with pytest.raises(CheckpointMismatchError, match=what):
            run_resumable(data, steps, ck, batch_size=size)
    assert {p: p.stat().st_mtime_ns for p in ck.rglob("*")} == before

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointMismatchError, match="not empty and has no manifest.json"):
        run_resumable(numbers(), [(square, {})], other, batch_size=5)
    assert sorted(p.name for p in other.iterdir()) == ["lock", "notes.txt"]


def test_same_content_resumes_whatever_the_storage(tmp_path):
    # A dataset saved and loaded back is the same input: the identity hashes rows, not files.
    ds = numbers()
    ds.save_to_disk(tmp_path / "in")
    assert run_identity(ds, [(square, {})], 5) == run_identity(load_from_disk(tmp_path / "in"), [(square, {})], 5)
    assert run_identity(ds, [(square, {})], 5) != run_identity(numbers(22), [(square, {})], 5)


def test_empty_input_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no rows"):
        run_resumable(numbers(0), [(square, {})], tmp_path / "ck", batch_size=5)
    assert not (tmp_path / "ck").exists()


def test_output_directory_of_a_different_run_is_refused(tmp_path):
    ds = run_resumable(numbers(), [(square, {})], tmp_path / "ck", batch_size=5)
    identity = run_identity(numbers(), [(square, {})], 5)
    out = save_dataset(ds, tmp_path / "out", identity)
    assert load_from_disk(out)["y"] == [x * x for x in range(23)]
    assert check_output(out, identity) is True
    before = sorted((p.name, p.stat().st_size) for p in out.iterdir())

    other = run_identity(numbers(), [(square, {"offset": 3})], 5)
    with pytest.raises(CheckpointMismatchError, match=r"different run \(steps\[0\]\.fn_kwargs\.offset: \(absent\) != 3\)"):
        save_dataset(ds, out, other)
    assert sorted((p.name, p.stat().st_size) for p in out.iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    with pytest.raises(CheckpointMismatchError, match="files that this run did not write"):
        save_dataset(ds, foreign, identity)
    assert [p.name for p in foreign.iterdir()] == ["data.csv"]


CHILD = textwrap.dedent(
    """
    import hashlib, sys, time
    from datasets import Dataset
    from magpie_datasets.runners.checkpoint import run_resumable, save_dataset
    from magpie_datasets.runners.run_identity import run_identity

    def digest(batch, salt):
        time.sleep(0.03)  # slow enough to be killed mid-run
        return {"h": [hashlib.sha256(f"{salt}/{r}".encode()).hexdigest() for r in batch["row"]]}

    if __name__ == "__main__":
        ds = Dataset.from_dict({"row": list(range(int(sys.argv[3])))})
        steps = [(digest, {"salt": "s"})]
        out = run_resumable(ds, steps, sys.argv[1], batch_size=3)
        save_dataset(out, sys.argv[2], run_identity(ds, steps, 3))
    """
)


def batch_rows(ck: Path) -> list[int]:
    from datasets import Dataset as D

    rows: list[int] = []
    for f in sorted((ck / "batches").glob("*.arrow")) if (ck / "batches").exists() else []:
        rows += D.from_file(str(f))["row"]
    return rows


def test_sigkill_loses_and_duplicates_nothing(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ck, out, n = tmp_path / "ck", tmp_path / "out", 60
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    kills = 0
    for delay in (2.5, 0.3, 0.8):  # first delay covers interpreter start-up and imports
        child = subprocess.Popen([sys.executable, str(script), str(ck), str(out), str(n)], env=env)
        done_before = len(batch_rows(ck))
        deadline = time.monotonic() + 60
        # kill only after this attempt made progress, at a point that varies with the delay
        while len(batch_rows(ck)) == done_before and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(delay / 10)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
        rows = batch_rows(ck)
        assert len(rows) == len(set(rows))  # nothing duplicated at any point
        assert sorted(rows) == list(range(len(rows)))  # whole batches, in order, nothing skipped
    assert kills >= 2
    subprocess.run([sys.executable, str(script), str(ck), str(out), str(n)], env=env, check=True)
    result = load_from_disk(out)
    assert result["row"] == list(range(n))
    import hashlib

    assert result["h"] == [hashlib.sha256(f"s/{r}".encode()).hexdigest() for r in range(n)]
    assert json.loads((out / "magpie_run.json").read_text())["input"]["num_rows"] == n


def crash_after_first_batch(batch):
    if crash_at and batch["uuid"][0] != crash_at[0]:
        raise RuntimeError("killed")
    return {}



def test_resumed_generation_equals_an_uninterrupted_one(tmp_path, monkeypatch, one_torch_thread):
    """Steps 1 and 2 on the embedded model (sampled step 1, greedy step 2, seed 5)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from magpie_datasets.stages.generate import (
        add_magpie_instructions,
        empty,
        generate_responses,
    )

    options = {"engine_options": {"batch_size": 2}, "max_tokens": 6, "seed": 5}
    steps = [(add_magpie_instructions, options), (generate_responses, options), (crash_after_first_batch, {})]
    ds = empty(4)
    crash_at[:] = []
    whole = run_resumable(ds, steps, tmp_path / "whole", batch_size=2)

    crash_at[:] = [whole["uuid"][0]]  # the run dies in its second batch, after the first was written
    with pytest.raises(RuntimeError, match="killed"):
        run_resumable(ds, steps, tmp_path / "resumed", batch_size=2)
    assert len(list((tmp_path / "resumed" / "batches").glob("*.arrow"))) == 1
    crash_at[:] = []
    resumed = run_resumable(ds, steps, tmp_path / "resumed", batch_size=2)
    assert resumed.to_list() == whole.to_list()
    assert len(set(resumed["uuid"])) == 4 and any(q.strip() for q in resumed["instruction"])


RECIPE = {
    "name": "tiny-resumable",
    "config_name": "tiny",
    "num_rows": 4,
    "engine_options": {"batch_size": 2},
    "models": {"generator": None},
    "stages": [
        {"stage": "add_magpie_instructions",
         "kwargs": {"model": "$generator", "engine_options": "$engine_options", "max_tokens": 5, "seed": 2},
         "batch_size": 2},
        {"stage": "not_ending_with", "kwargs": {"suffix": "::"}},
        {"stage": "generate_responses", "kwargs": {"engine_options": "$engine_options", "max_tokens": 5},
         "batch_size": 2},
    ],
}


def test_build_recipe_through_the_checkpoint_equals_a_plain_run(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from magpie_datasets.recipes import recipe_from_dict, run_recipe

    recipe = recipe_from_dict(RECIPE)
    plain, plain_log = run_recipe(recipe)
    checkpointed, log = run_recipe(recipe, checkpoint_dir=tmp_path / "ck")
    assert checkpointed.to_list() == plain.to_list() and log == plain_log
    stages = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert stages == ["00-add_magpie_instructions", "02-generate_responses"]  # one per map stage
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "ck").glob("*/batches/[0-9]*.arrow")}
    assert len(written) == 4  # two batches of two rows per map stage

    again, _ = run_recipe(recipe, checkpoint_dir=tmp_path / "ck")  # finished: read back, not redone
    assert again.to_list() == plain.to_list()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ck").glob("*/batches/[0-9]*.arrow")} == written


def test_batches_in_flight_give_the_rows_of_dataset_map(tmp_path, monkeypatch, one_torch_thread):
    """Four two-row checkpoint batches, three in flight at once: their calls meet in one engine
    loop (rows of one batch join the engine's batch while another's decode) and the rows are
    those of `Dataset.map`, sampled step 1 and greedy step 2 alike; so are those with the
    in-flight count taken from the engine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from magpie_datasets.stages.generate import add_magpie_instructions, empty, generate_responses

    options = {"engine_options": {"batch_size": 3}, "max_tokens": 8, "seed": 11}
    steps = [(add_magpie_instructions, options), (generate_responses, options)]
    ds = empty(8)
    mapped = ds.map(add_magpie_instructions, batched=True, fn_kwargs=options)
    mapped = mapped.map(generate_responses, batched=True, fn_kwargs=options)
    for flight in (3, None):
        streamed = run_resumable(ds, steps, tmp_path / f"in-flight-{flight}", batch_size=2, in_flight=flight)
        assert streamed.to_list() == mapped.to_list(), flight
    assert len(set(mapped["instruction"])) > 4  # sampled rows, not one text repeated


def test_in_flight_batches_are_committed_in_order_and_a_failure_keeps_the_finished_ones(tmp_path):
    """A batch that fails stops the run; the batches that finished, before and after it, are written."""
    crash_at[:] = [6]
    with pytest.raises(RuntimeError, match="crash at"):
        run_resumable(numbers(12), [(crashy, {})], tmp_path / "ck", batch_size=2, in_flight=3)
    written = sorted(p.name for p in (tmp_path / "ck" / "batches").glob("[0-9]*.arrow"))
    assert "0000003.arrow" not in written and written[:3] == ["0000000.arrow", "0000001.arrow", "0000002.arrow"]
    crash_at[:] = []
    assert run_resumable(numbers(12), [(crashy, {})], tmp_path / "ck", batch_size=2, in_flight=3)["z"] == [
        -x for x in range(12)
    ]


def test_in_flight_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ValueError, match="in_flight must be an integer >= 1"):
        run_resumable(numbers(4), [(square, {})], tmp_path / "ck", in_flight=0)
    assert not (tmp_path / "ck").exists()


def test_is_secret_key_is_the_union_of_the_manifest_and_card_rules():
    secret = [
        "token", "TOKEN", "hf_token", "use_auth_token", "access_token", "auth_token", "api_token",
        "api_key", "password", "secret", "authorization", "credential", "credentials",
        "github_token", "eos_token", "client_secret", "openai_api_key", "OPENAI_API_KEY",
    ]
    public = ["max_tokens", "model", "seed", "temperature", "tokens", "secrets", "api_keys", "tokenizer", "token_limit"]
    assert {key: is_secret_key(key) for key in secret} == dict.fromkeys(secret, True)
    assert {key: is_secret_key(key) for key in public} == dict.fromkeys(public, False)
