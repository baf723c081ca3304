"""compare_responders: candidate step-2 models ranked by compatibility-adjusted reward (arXiv 2411.07133),
on tiny models made here (the real classes, the real loading code) where the answer is known."""

import json
import os

import pytest
from datasets import Dataset

from magpie_datasets.cli import main
from magpie_datasets.analysis import compatibility_adjusted_reward, measurement_path
from magpie_datasets.analysis.compatibility import car
from magpie_datasets.runners.responders import (
    answer_loss,
    compare_responders,
    format_table,
    recommend,
    responder_spec,
)
from magpie_datasets.runners.run_identity import CheckpointMismatchError
from tests.tiny_models import CHATML, CHATML_SPECIALS, byte_tokenizer, save_tiny_model

QUESTIONS = ["What is 2+2?", "Name a colour.", "Say hi.", "Count to three.", "", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    def saved(kind, seed):
        directory = tmp_path_factory.mktemp(f"tiny-{kind}-{seed}")
        return save_tiny_model(directory, byte_tokenizer(CHATML, CHATML_SPECIALS, name=str(directory)), kind, seed=seed)

    return {"a": saved("causal", 1), "b": saved("causal", 2), "reward": saved("reward", 3)}


def test_car_is_the_mean_reward_discounted_by_the_base_models_loss():
    assert car(2.0, 0.5, beta=2.0) == 1.0 and car(3.0, 0.0) == 3.0
    equal_rewards = [{"responder": "likely", "car": car(1.0, 0.4), "mean_reward": 1.0, "mean_base_loss": 0.4},
                     {"responder": "unlikely", "car": car(1.0, 0.9), "mean_reward": 1.0, "mean_base_loss": 0.9}]
    assert recommend(equal_rewards)["responder"] == "likely"  # equal rewards: the lower loss wins
    equal_losses = [{"responder": "plain", "car": car(1.0, 0.5), "mean_reward": 1.0, "mean_base_loss": 0.5},
                    {"responder": "better", "car": car(1.5, 0.5), "mean_reward": 1.5, "mean_base_loss": 0.5}]
    assert recommend(equal_losses)["responder"] == "better"  # equal losses: the higher reward wins
    assert recommend(equal_losses)["warning"] is None
    negative = [{**row, "mean_reward": -1.0, "car": car(-1.0, 0.5)} for row in equal_losses[:1]]
    assert "CAR assumes positive rewards" in recommend(negative)["warning"]


def test_the_evaluate_measurement_gives_the_function_s_figures(tmp_path):
    import evaluate

    measured = evaluate.load(measurement_path("compatibility_adjusted_reward"), cache_dir=str(tmp_path)).compute(
        rewards=[2.0, 1.0, 3.0], losses=[0.5, 0.5, 1.0], beta=2.0)
    assert measured == compatibility_adjusted_reward([2.0, 1.0, 3.0], [0.5, 0.5, 1.0], beta=2.0)
    assert measured["mean_reward"] == 2.0 and measured["mean_base_loss"] == pytest.approx(2 / 3)
    assert measured["car"] == pytest.approx(2.0 / (1 + 2.0 * 2 / 3))


def test_responder_specs_name_themselves_and_bad_ones_say_what_to_give():
    assert responder_spec(None) == ("HuggingFaceTB/SmolLM2-135M-Instruct", {"model": None})
    assert responder_spec({"model": "m", "name": "mine", "temperature": 0.7}) == ("mine", {"model": "m", "temperature": 0.7})
    with pytest.raises(ValueError, match="a responder is a model id or a dict"):
        responder_spec(3)
    with pytest.raises(ValueError, match="two or more responders with distinct names"):
        compare_responders(Dataset.from_dict({"instruction": ["x"]}), ["m", "m"])
    with pytest.raises(ValueError, match="column 'prompt', which the dataset lacks"):
        compare_responders(Dataset.from_dict({"instruction": ["x"]}), ["m", "n"], column="prompt")


def test_the_base_model_finds_its_own_greedy_answers_likelier_and_they_win(models, tmp_path):
    """Responder `a` is the base model itself (its greedy answers are the base model's likeliest
    tokens), `b` another random model: `a`'s answers get the lower loss. The table's CAR is the
    formula on its own means, and the recommendation is the highest CAR."""
    ds = Dataset.from_dict({"instruction": QUESTIONS})
    responders = [{"model": models["a"], "name": "a", "max_tokens": 12}, {"model": models["b"], "name": "b", "max_tokens": 12}]
    report = compare_responders(ds, responders, base_model=models["a"], reward_model=models["reward"],
                                sample_size=4, beta=3.0)
    rows = {r["responder"]: r for r in report["responders"]}
    assert report["rows"] == 4 and all(r["rows"] == 4 for r in rows.values())  # the empty instruction is left out
    assert rows["a"]["mean_base_loss"] < rows["b"]["mean_base_loss"]
    for r in rows.values():
        assert r["car"] == pytest.approx(r["mean_reward"] / (1 + 3.0 * r["mean_base_loss"]))
        assert r["completion_tokens"] > 0 and r["seconds"] >= 0 and r["answers_scored"] > 0
    best = max(rows.values(), key=lambda r: r["car"])
    assert report["recommendation"]["responder"] == best["responder"]
    assert "CAR" in format_table(report).splitlines()[1]

    # the same through the command line, from a dataset on disk
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "report.json"
    assert main(["compare-responders", str(tmp_path / "ds"), "--responder", json.dumps(responders[0]),
                 "--responder", json.dumps(responders[1]), "--base-model", models["a"], "--reward-model",
                 models["reward"], "--sample-size", "4", "--output", str(out)]) == 0
    again = {r["responder"]: r for r in json.loads(out.read_text())["responders"]}
    assert again["a"]["mean_base_loss"] == pytest.approx(rows["a"]["mean_base_loss"])
    assert again["b"]["mean_reward"] == pytest.approx(rows["b"]["mean_reward"])


def test_answer_loss_is_the_mean_negative_log_likelihood_of_the_answer_tokens(models):
    import torch

    from magpie_datasets.engines.models import ModelSpec
    from magpie_datasets.templates import chat_prompt

    engine = ModelSpec(models["a"], "transformers", {}).load()
    tokenizer = engine.tokenizer
    prompt = tokenizer(chat_prompt(tokenizer, [{"role": "user", "content": "Say hi."}]), add_special_tokens=False).input_ids
    answer = tokenizer("Hello!", add_special_tokens=False).input_ids
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([prompt + answer])).logits[0].float()
    expected = -sum(torch.log_softmax(logits[len(prompt) - 1 + k], -1)[t] for k, t in enumerate(answer)) / len(answer)
    assert answer_loss(engine, "Say hi.", "Hello!") == pytest.approx(float(expected), rel=1e-5)
    assert answer_loss(engine, "Say hi.", "") is None


def test_a_recipe_runs_it_as_a_report_stage_and_the_card_shows_its_table(models, tmp_path):
    """In a recipe, `compare_responders` is a report stage: the rows go on unchanged, the report goes
    into the stage log, and the card gets a section with its table and recommendation. A bad
    candidate list fails validation, before any stage runs; the preflight checks its models."""
    from magpie_datasets.publish.card import render_card
    from magpie_datasets.recipes import RecipeError, preflight_recipe, recipe_from_dict, validate_recipe
    from magpie_datasets.recipes.run import run_recipe

    ds = Dataset.from_dict({"instruction": QUESTIONS})
    ds.save_to_disk(str(tmp_path / "questions"))
    candidates = [{"model": models["a"], "name": "a", "max_tokens": 8}, {"model": models["b"], "name": "b", "max_tokens": 8}]
    recipe = {
        "name": "pick", "config_name": "pick", "num_rows": 6, "source": str(tmp_path / "questions"),
        "stages": [{"stage": "compare_responders", "kwargs": {
            "responders": candidates, "base_model": models["a"], "reward_model": models["reward"], "sample_size": 3}}],
    }
    out, log = run_recipe(recipe_from_dict(recipe), checkpoint_dir=tmp_path / "ckpt")
    assert out["instruction"] == QUESTIONS  # a report leaves the rows as they were
    report = log[-1]["report"]
    assert log[-1]["stage"] == "compare_responders" and report["rows"] == 3
    # the checkpoint keeps the report: a resumed build reads it back (its timings too), not rerun
    assert json.loads((tmp_path / "ckpt" / "00-compare_responders" / "report.json").read_text()) == report
    hidden = tmp_path / "reward-moved-away"
    os.rename(models["reward"], hidden)  # a rerun would need it
    try:
        assert run_recipe(recipe_from_dict(recipe), checkpoint_dir=tmp_path / "ckpt")[1][-1]["report"] == report
    finally:
        os.rename(hidden, models["reward"])
    other = {**recipe, "stages": [{**recipe["stages"][0], "kwargs": {**recipe["stages"][0]["kwargs"], "sample_size": 2}}]}
    with pytest.raises(CheckpointMismatchError, match=r"sample_size: 3 != 2"):
        run_recipe(recipe_from_dict(other), checkpoint_dir=tmp_path / "ckpt")
    best = report["recommendation"]["responder"]
    assert best == max(report["responders"], key=lambda r: r["car"])["responder"]

    card = str(render_card(out, config_name="pick", stages=log))
    section = card[card.index("### Choice of responder"):]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in lines] == sorted(("a", "b"), key=lambda n: n != best)  # best CAR first
    for line, row in zip(lines, sorted(report["responders"], key=lambda r: -r["car"])):
        assert f"| {row['car']:.4g} |" in line and f"| {row['mean_base_loss']:.4g} |" in line
    assert f"Recommendation: {report['recommendation']['reason']}" in section
    assert "CAR = r / (1 + 3.0 L)" in section
    assert '"responders"' not in card.split("### Choice of responder")[0].split("| 2 |")[-1]  # not dumped as settings

    bad = {**recipe, "stages": [{"stage": "compare_responders", "kwargs": {"responders": [models["a"]]}}]}
    with pytest.raises(RecipeError, match=r"stages\[0\] \(compare_responders\): .*two or more responders"):
        validate_recipe(recipe_from_dict(bad))
    missing = {**recipe, "stages": [{"stage": "compare_responders", "kwargs": {
        "responders": [models["a"], str(tmp_path / "no-such-model")], "base_model": models["a"],
        "reward_model": models["reward"]}}]}
    problems = [p.what for p in preflight_recipe(recipe_from_dict(missing)).problems]
    assert any("no-such-model" in p for p in problems), problems
