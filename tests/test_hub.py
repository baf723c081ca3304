"""Hub layout: save_for_hub / load_dataset locally, push_to_hub against a loopback Hub.

The loopback tests run the real `datasets` + `huggingface_hub` client code against
tests/loopback_hub.py on 127.0.0.1. They prove what we send (files, YAML merge, parent
commits, token use) and that the client protocol round-trips; they do not prove the
real Hub's server-side behaviour (auth, YAML validation rules, Xet storage, rate limits).
"""

from __future__ import annotations

import os


import logging
from pathlib import Path

import datasets
import huggingface_hub.constants as hub_constants
import pytest
import yaml
from datasets import Features

from magpie_datasets.publish.hub import load_dataset, push_to_hub, save_for_hub
from tests.loopback_hub import LoopbackHub
from tests.published_sample import published_dataset

TOKEN = "hf_loopbackSECRETtoken0123456789"


def front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n", 2)[1])


def listing(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sample():
    return published_dataset()


@pytest.fixture(scope="module")
def zh(sample):
    return sample.filter(lambda row: row["language"] == "ZH")


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path, monkeypatch):
    # load_dataset caches prepared Arrow files; keep them per test so every load reads the folder
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def test_save_for_hub_layout_loads_back_with_the_same_features(sample, tmp_path):
    out = save_for_hub(sample, tmp_path / "repo", repo_id="me/magpie")
    files = listing(out)
    assert "data/train-00000-of-00001.parquet" in files and "README.md" in files
    assert {f for f in files if f.startswith("plots/default/")} >= {"plots/default/task_category.png"}
    assert not any(name.startswith(".magpie-staging") for name in os.listdir(out))

    meta = front_matter(files["README.md"].decode())
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 20
    assert Features._from_yaml_list(meta["dataset_info"]["features"]) == sample.features

    back = load_dataset(out, split="train")
    assert back.features == sample.features
    assert back.to_list() == sample.to_list()


def test_second_config_and_split_are_merged_and_replacing_a_split_drops_its_old_shards(sample, zh, tmp_path):
    out = tmp_path / "repo"
    save_for_hub(sample, out, num_shards=3)
    assert len(list((out / "data").glob("train-*.parquet"))) == 3
    save_for_hub(zh, out, config_name="zh")
    save_for_hub(sample.select(range(4)), out, split="test", card=False)
    save_for_hub(sample.select(range(10)), out, num_shards=1, card=False)  # replace train of default

    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    text = (out / "README.md").read_text()
    meta = front_matter(text)
    assert [c["config_name"] for c in meta["configs"]] == ["default", "zh"]
    default_files = {f["split"]: f["path"] for f in meta["configs"][0]["data_files"]}
    assert default_files == {"train": "data/train-*", "test": "data/test-*"}
    infos = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in meta["dataset_info"]}
    assert infos == {"default": {"train": 10, "test": 4}, "zh": {"train": 2}}
    assert text.count("<!-- magpie-datasets:config ") == 2 and "(plots/zh/language.png)" in text

    assert len(load_dataset(out, split="train")) == 10
    assert len(load_dataset(out, split="test")) == 4
    zh_back = load_dataset(out, "zh", split="train")
    assert zh_back.features == zh.features and zh_back["uuid"] == zh["uuid"]


def test_a_rejected_save_leaves_the_folder_as_it_was(sample, tmp_path):
    out = save_for_hub(sample, tmp_path / "repo")
    before = listing(out)
    other_features = sample.select_columns(["uuid", "instruction"])
    with pytest.raises(ValueError, match="splits of one config must share features"):
        save_for_hub(other_features, out, split="test")
    with pytest.raises(ValueError, match="'data'"):
        save_for_hub(sample, out, config_name="data")
    with pytest.raises(ValueError, match="split 'train set'"):
        save_for_hub(sample, out, split="train set")
    assert listing(out) == before


def test_a_card_that_fails_to_render_leaves_no_half_written_folder(sample, tmp_path):
    # a real rendering failure, raised after the staging folder was made: rows must be a count
    bad_stages = [{"stage": "add_magpie_instructions", "rows": 20}, {"stage": "filter", "rows": None}]
    fresh = tmp_path / "parent" / "repo"
    with pytest.raises(ValueError, match=r"stages\[1\]\['rows'\] = None"):
        save_for_hub(sample, fresh, stages=bad_stages)
    assert not fresh.exists() and os.listdir(fresh.parent) == []

    out = save_for_hub(sample, tmp_path / "repo")
    before = listing(out)
    with pytest.raises(ValueError, match=r"stages\[1\]\['rows'\] = None"):
        save_for_hub(sample.select(range(5)), out, config_name="small", stages=bad_stages)
    with pytest.raises(ValueError, match="max_shard_size=0"):
        save_for_hub(sample, out, max_shard_size=0)
    assert listing(out) == before and sorted(os.listdir(out)) == ["README.md", "data", "plots"]


def test_card_false_writes_only_the_metadata(sample, tmp_path):
    out = save_for_hub(sample, tmp_path / "repo", card=False)
    text = (out / "README.md").read_text()
    assert "configs" in front_matter(text) and "magpie-datasets:begin" not in text
    assert not (out / "plots").exists()
    assert load_dataset(out, split="train").features == sample.features


# ----------------------------------------------------------------------------- loopback Hub


@pytest.fixture
def hub(monkeypatch):
    with LoopbackHub() as server:
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hub_constants, "HF_HUB_DISABLE_XET", True)  # the loopback speaks plain LFS
        monkeypatch.setattr(hub_constants, "ENDPOINT", server.url)
        monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", server.url)
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        yield server


def test_push_twice_with_two_configs_keeps_both_and_never_leaks_the_token(
    sample, zh, hub, tmp_path, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    stages = [{"stage": "filter", "rows": 20, "token": TOKEN}]  # a careless stage log must not leak it either
    push_to_hub(sample, "me/magpie", token=TOKEN, stages=stages)
    push_to_hub(zh, "me/magpie", config_name="zh", token=TOKEN, private=True)

    files = hub.files("me/magpie")
    assert {"README.md", "data/train-00000-of-00001.parquet", "zh/train-00000-of-00001.parquet",
            "plots/default/task_category.png", "plots/zh/task_category.png"} <= set(files)
    text = files["README.md"].decode()
    meta = front_matter(text)
    assert [c["config_name"] for c in meta["configs"]] == ["default", "zh"]
    assert {i["config_name"] for i in meta["dataset_info"]} == {"default", "zh"}
    assert meta["license"] == "other" and meta["license_name"] == "tongyi-qianwen"
    assert text.count("<!-- magpie-datasets:config ") == 2
    for plot in ["plots/default/difficulty.png", "plots/zh/response_length.png"]:
        assert f"]({plot})" in text and files[plot][:4] == b"\x89PNG"

    # what was pushed loads back with the same features
    local = tmp_path / "download"
    for name, content in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(content)
    assert load_dataset(local, "zh", split="train").features == zh.features
    assert load_dataset(local, split="train").to_list() == sample.to_list()

    # the token went to the Hub API as a bearer header, and nowhere else
    api_calls = [r for r in hub.requests if r[1].startswith(("/api/datasets/", "/api/repos/", "/datasets/"))]
    assert api_calls and all(auth == f"Bearer {TOKEN}" for _, _, auth in api_calls)
    assert not any(TOKEN.encode() in content for content in files.values())
    assert not any(TOKEN.encode() in content for content in listing(tmp_path).values())
    assert TOKEN not in caplog.text
    captured = capsys.readouterr()
    assert TOKEN not in captured.out and TOKEN not in captured.err


def test_card_commit_on_top_of_a_concurrent_edit_keeps_that_edit(sample, hub):
    push_to_hub(sample.select(range(5)), "me/shared", token=TOKEN)

    def co_author(repo_id, summary):
        if summary.startswith("Dataset card"):
            hub.before_commit = None  # once
            readme = hub.files(repo_id)["README.md"] + b"\nNote added by a co-author.\n"
            hub.commit_files(repo_id, {"README.md": readme}, "co-author edit")

    hub.before_commit = co_author
    push_to_hub(sample, "me/shared", config_name="full", token=TOKEN)

    text = hub.files("me/shared")["README.md"].decode()
    assert "Note added by a co-author." in text
    assert "<!-- magpie-datasets:config default -->" in text and "<!-- magpie-datasets:config full -->" in text
    card_commits = [r for r in hub.requests if r[0] == "POST" and r[1].endswith("/commit/main")]
    assert len(card_commits) == 5  # data, card; data, card rejected (stale parent), card again


def test_bad_stage_log_fails_before_anything_is_sent(sample, hub):
    with pytest.raises(ValueError, match="stages\\[0\\]"):
        push_to_hub(sample, "me/never", token=TOKEN, stages=[{"rows": 3}])
    assert not [r for r in hub.requests if "/me/never" in r[1] or r[1] == "/api/repos/create"]
