"""The recipe runner keeps a model the next stage loads again: it compares the concrete models
each stage loads (name, engine, options; "the rows' model" resolved from the rows), frees only
those the next stage does not use, and the yield ledger names the models each stage used.
Loads are counted on the real loaders (tiny models, offline)."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset


from magpie_datasets import engines
from magpie_datasets.engines.embedded import EMBEDDED_CHAT_MODEL
from magpie_datasets.engines.transformers_engine import TransformersEngine
from magpie_datasets.recipes import cache_keys, recipe_from_dict, run_recipe_measured
from magpie_datasets.runners.ledger import engines_of
from magpie_datasets.stages.rewards import loading
from magpie_datasets.stages.table import stage_models
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model


@pytest.fixture(autouse=True)
def no_models_held(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engines.release_engines()
    yield
    engines.release_engines()


@pytest.fixture
def chat_loads(monkeypatch):
    """Every `TransformersEngine` the run creates (each one a load of weights)."""
    made = []
    original = TransformersEngine.__init__

    def counting(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(TransformersEngine, "__init__", counting)
    return made


@pytest.fixture
def reward_loads(monkeypatch):
    """The reward models the run loads, by name."""
    loaded = []
    original = loading._load_reward_model

    def counting(model, *args, **kwargs):
        loaded.append(model)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(loading, "_load_reward_model", counting)
    return loaded


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-rm")
    return save_tiny_model(directory, byte_tokenizer(CHATML, CHATML_SPECIALS, name=str(directory)), "reward")


def tiny_chat_model(tmp_path_factory, name, seed):
    directory = tmp_path_factory.mktemp(name)
    return save_tiny_model(directory, byte_tokenizer(CHATML, CHATML_SPECIALS, name=str(directory)), seed=seed)


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory):
    """Two tiny chat models, each a local folder."""
    return tiny_chat_model(tmp_path_factory, "tiny-chat-a", 1), tiny_chat_model(tmp_path_factory, "tiny-chat-b", 2)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-base")
    return save_tiny_model(directory, byte_tokenizer(None, name=str(directory)), "causal", seed=1)


def run(stages, num_rows=2, source=None):
    data = {"name": "reuse", "num_rows": num_rows, "license": "apache-2.0", "stages": stages}
    return run_recipe_measured(recipe_from_dict({**data, **({"source": source} if source else {})}))


@pytest.mark.parametrize("named", ["folder", "none"])
def test_responses_from_the_rows_model_reuse_the_step_1_model(named, chat_models, chat_loads):
    model = chat_models[0] if named == "folder" else None  # None: the embedded SmolLM2, rows name its id
    ds, _, report = run([
        {"stage": "add_magpie_instructions", "kwargs": {"model": model, "max_tokens": 8, "seed": 1}},
        {"stage": "generate_responses", "kwargs": {"max_tokens": 8}},  # the rows' model
    ])
    assert len(chat_loads) == 1, [llm.model_id for llm in chat_loads]
    assert set(ds["model"]) == {model or EMBEDDED_CHAT_MODEL}
    assert chat_loads[0].model is not None  # never released
    # the ledger names the model the rows named, as for step 1
    engines_used = {s.stage: s.engines for s in report.stages}
    shown = "embedded" if model is None else model
    assert engines_used["add_magpie_instructions"] == engines_used["generate_responses"] == (f"transformers:{shown}",)


def test_a_stage_with_other_models_still_releases_first(chat_models, chat_loads):
    one, two = chat_models
    _, _, report = run([
        {"stage": "add_magpie_instructions", "kwargs": {"model": one, "max_tokens": 8, "seed": 1}},
        {"stage": "generate_responses", "kwargs": {"model": two, "max_tokens": 8}},
    ])
    assert [llm.model_id for llm in chat_loads] == [one, two]
    assert chat_loads[0].model is None and chat_loads[1].model is not None  # one at a time
    assert [s.engines for s in report.stages[1:]] == [(f"transformers:{one}",), (f"transformers:{two}",)]


def test_the_ledger_names_the_rows_model_not_embedded():
    # rows written by another model: generate_responses without `model` answers with it
    rows = Dataset.from_dict({"instruction": ["Say hi.", "Name a colour."], "model": ["org/other", None]})
    used = stage_models("generate_responses", {}, rows)
    assert used == (("chat", "org/other", "transformers", {}), ("chat", EMBEDDED_CHAT_MODEL, "transformers", {}))
    assert engines_of("generate_responses", {}, used) == ("transformers:org/other", "transformers:embedded")
    assert engines_of("generate_responses", {}) == ("transformers:rows' model",)  # rows unknown: not "embedded"
    assert stage_models("generate_responses", {}, rows.select([])) == ()  # no rows: nothing loads


def test_reward_diff_reuses_the_reward_model_of_add_rewards(tmp_path, reward_model, base_model, chat_loads,
                                                             reward_loads):
    source = tmp_path / "rows"
    source.mkdir()
    rows = [{"instruction": "What is 2+2?", "response": "4"}, {"instruction": "Say hi.", "response": "Hi!"}]
    (source / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds, _, report = run([
        {"stage": "add_rewards", "kwargs": {"model": reward_model}},
        {"stage": "reward_diff", "kwargs": {"model": reward_model, "base_model": base_model, "max_tokens": 4}},
        # the reward model alone again (other scoring settings, same loaded model): the base model goes
        {"stage": "add_rewards", "kwargs": {"model": reward_model, "engine_options": {"batch_size": 1}}},
    ], source=str(source))
    assert reward_loads == [reward_model]
    assert [llm.model_id for llm in chat_loads] == [base_model]
    assert chat_loads[0].model is None  # released before the last stage, which does not use it
    assert set(engines._engines) == {loading.reward_model_key(reward_model)}  # the reward model alone
    assert cache_keys(stage_models("reward_diff", {"model": reward_model, "base_model": base_model})) == {
        loading.reward_model_key(reward_model), engines.engine_key(base_model)}
    assert all(isinstance(r, float) for r in ds["reward_difference"])
    assert [s.engines for s in report.stages[1:]] == [
        (reward_model,), (reward_model, f"transformers:{base_model}"), (reward_model,)]
