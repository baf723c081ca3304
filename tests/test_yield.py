"""The yield-and-cost report: rows in and out, drop reasons, tokens, resume, the CLI's report file."""

import json

import pytest

from magpie_datasets.engines.base import Completion, counted, generated_tokens
from magpie_datasets.runners.ledger import (
    REPORT_FILE,
    Meter,
    StageYield,
    YieldReport,
    summed,
)



def test_counted_adds_every_completion_and_each_prompt_once():
    prompt, completion = generated_tokens("prompt"), generated_tokens("completion")
    counted([[Completion("a", "stop", 7, 3), Completion("b", "length", 7, 5)], [Completion("c", "stop", 2, 1)], []])
    assert generated_tokens("prompt") - prompt == 9
    assert generated_tokens("completion") - completion == 9
    with pytest.raises(ValueError, match="'completion' or 'prompt'"):
        generated_tokens("output")


def test_engine_tokens_equal_the_sum_over_its_completions(monkeypatch, one_torch_thread):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from magpie_datasets.engines import Sampling, load_engine

    engine = load_engine()
    meter = Meter()
    results = engine.generate(["<|im_start|>user\n", "<|im_start|>user\nHi<|im_end|>\n"],
                              Sampling(n=2, max_tokens=4, seed=1))
    figures = meter.figures()
    assert figures["completion_tokens"] == sum(c.completion_tokens for r in results for c in r) > 0
    assert figures["prompt_tokens"] == sum(r[0].prompt_tokens for r in results) > 0
    assert figures["seconds"] > 0 and figures["peak_rss_bytes"] > 2**20  # a loaded model: megabytes at least


RECIPE = {
    "name": "tiny-yield",
    "config_name": "tiny",
    "num_rows": 6,
    "engine_options": {"batch_size": 3},
    "models": {"generator": None},
    "stages": [
        {"stage": "add_magpie_instructions",
         "kwargs": {"model": "$generator", "engine_options": "$engine_options", "max_tokens": 6, "seed": 3},
         "batch_size": 3},
        {"stage": "not_ending_with", "kwargs": {"suffix": "?"}},
        {"stage": "generate_responses", "kwargs": {"engine_options": "$engine_options", "max_tokens": 4}},
        {"stage": "longest", "kwargs": {"k": 2}},
    ],
}


def test_recipe_records_rows_drops_and_tokens_per_stage(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from magpie_datasets.recipes import recipe_from_dict, run_recipe_measured
    from magpie_datasets.stages.generate import add_magpie_instructions, empty

    recipe = recipe_from_dict(RECIPE)
    before = generated_tokens("completion")
    ds, log, report = run_recipe_measured(recipe)
    spent = generated_tokens("completion") - before

    # the instructions as step 1 alone writes them: which end with "?" decides the filter's drops
    alone = empty(6).map(add_magpie_instructions, batched=True, batch_size=3,
                         fn_kwargs={"model": None, "engine_options": {"batch_size": 3}, "max_tokens": 6, "seed": 3})
    ending = sum(1 for q in alone["instruction"] if not isinstance(q, str) or q.rstrip().endswith("?"))

    stages = {s.stage: s for s in report.stages}
    assert [s.stage for s in report.stages] == ["empty", "add_magpie_instructions", "not_ending_with",
                                                "generate_responses", "longest"]
    assert [(s.rows_in, s.rows_out) for s in report.stages] == [
        (0, 6), (6, 6), (6, 6 - ending), (6 - ending, 6 - ending), (6 - ending, min(2, 6 - ending))]
    assert stages["not_ending_with"].dropped == {"instruction not ending with '?'": ending}
    assert stages["longest"].dropped == ({"longest": 6 - ending - 2} if 6 - ending > 2 else {})
    assert stages["add_magpie_instructions"].dropped == {}
    assert [entry["rows"] for entry in log] == [s.rows_out for s in report.stages]  # the card's log agrees
    assert report.kept_rows == len(ds)

    # tokens: the generation stages hold every token the engine counted in the run, the others none
    assert stages["add_magpie_instructions"].completion_tokens > 0
    assert stages["add_magpie_instructions"].prompt_tokens > 0
    assert stages["not_ending_with"].completion_tokens == stages["longest"].completion_tokens == 0
    assert sum(s.completion_tokens for s in report.stages) == spent
    assert stages["add_magpie_instructions"].engines == ("transformers:embedded",)
    assert stages["add_magpie_instructions"].tokens_per_second > 0
    assert all(s.hardware["cpu_count"] >= 1 and s.peak_rss_bytes > 0 for s in report.stages)

    cost = report.cost(price_per_hour=2.0)
    hours = sum(s.seconds for s in report.stages) / 3600
    assert cost["unit"] == "CPU-hours" and cost["hours"] == pytest.approx(hours)
    assert cost["hours_per_1000_kept"] == pytest.approx(hours * 1000 / len(ds))
    assert cost["price_per_1000_kept"] == pytest.approx(2.0 * hours * 1000 / len(ds))
    assert YieldReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


crash_at: list[str] = []


def crashing(batch):
    if crash_at and batch["uuid"][0] == crash_at[0]:
        raise RuntimeError("killed")
    return {}


def test_resume_keeps_the_figures_of_the_finished_batches(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from magpie_datasets.runners.checkpoint import checkpoint_report, run_resumable
    from magpie_datasets.stages.generate import add_magpie_instructions, empty

    ds = empty(4)
    step1 = (add_magpie_instructions, {"max_tokens": 4, "seed": 9, "engine_options": {"batch_size": 2}})
    steps = [step1, (crashing, {})]
    rows = run_resumable(ds, steps, tmp_path / "whole", batch_size=2)
    whole = checkpoint_report(tmp_path / "whole")
    crash_at[:] = [rows["uuid"][2]]  # the second batch dies in its second step (step 1 wrote this uuid)
    with pytest.raises(RuntimeError, match="killed"):
        run_resumable(ds, steps, tmp_path / "ck", batch_size=2)
    first = json.loads((tmp_path / "ck" / "yield" / "0000000.json").read_text())
    assert not (tmp_path / "ck" / "yield" / "0000001.json").exists()
    crash_at.clear()
    run_resumable(ds, steps, tmp_path / "ck", batch_size=2)
    resumed = checkpoint_report(tmp_path / "ck")
    assert json.loads((tmp_path / "ck" / "yield" / "0000000.json").read_text()) == first  # kept, not redone
    assert [s.stage for s in resumed.stages] == ["add_magpie_instructions", "crashing"]
    # the same rows were generated once each over both runs: the same tokens as the run never killed
    assert resumed.stages[0].completion_tokens == whole.stages[0].completion_tokens > 0
    assert resumed.stages[0].prompt_tokens == whole.stages[0].prompt_tokens
    assert resumed.stages[0].completion_tokens > first["steps"][0]["completion_tokens"] > 0
    assert (resumed.stages[0].rows_in, resumed.stages[0].rows_out) == (4, 4)
    assert resumed.stages[0].seconds == pytest.approx(
        sum(json.loads(p.read_text())["steps"][0]["seconds"] for p in (tmp_path / "ck" / "yield").glob("*.json")))


def test_generate_cli_saves_the_report_beside_the_dataset(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_from_disk

    from magpie_datasets.cli import main

    before = generated_tokens("completion")
    out = tmp_path / "out"
    assert main(["generate", "--num-rows", "2", "--batch-size", "2", "--max-instruction-tokens", "4",
                 "--max-response-tokens", "3", "--output", str(out)]) == 0
    spent = generated_tokens("completion") - before
    report = YieldReport.read(out / REPORT_FILE)
    assert [(s.stage, s.rows_in, s.rows_out) for s in report.stages] == [
        ("add_magpie_instructions", 2, 2), ("generate_responses", 2, 2)]
    assert sum(s.completion_tokens for s in report.stages) == spent > 0
    assert len(load_from_disk(out)) == 2  # the extra file does not disturb the saved dataset


def test_summed_makes_unmeasured_batches_unknown_and_bad_records_fail():
    f = {"seconds": 1.5, "prompt_tokens": 2, "completion_tokens": 3, "peak_rss_bytes": 10, "peak_gpu_bytes": None}
    assert summed([f, None])["completion_tokens"] is None and summed([f, None])["seconds"] == 1.5
    with pytest.raises(ValueError, match="needs stage, kind, rows_in"):
        StageYield.from_dict({"stage": "x"})
    with pytest.raises(ValueError, match="price of one device-hour"):
        YieldReport(()).cost(price_per_hour=-1)
