"""Recipes in builders/: every file validates (dry run), overrides scale them, a recipe runs
end to end, and the republish workflow only runs commands that exist."""

from __future__ import annotations



import argparse
import re
import shlex
import shutil
from pathlib import Path

import datasets
import pytest
import yaml

from magpie_datasets import recipes
from magpie_datasets.cli.build import add_build_parser, cmd_build, overrides_from_args
from magpie_datasets.publish.hub import load_dataset
from magpie_datasets.recipes import (
    RecipeError,
    load_recipe,
    recipe_from_dict,
    scaled,
    validate_recipe,
)
from magpie_datasets.stages import language
from tests.published_sample import PUBLISHED_FEATURES, write_published_repo

ROOT = Path(__file__).parents[1]
BUILDERS = sorted((ROOT / "builders").glob("*.yaml"))
WORKFLOW = ROOT / ".github" / "workflows" / "republish.yml"
CPU_SCALE = "--num-rows 50 --model embedded --max-tokens 128 --skip tag_safety --skip add_rewards --skip reward_diff"


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magpie-datasets")
    add_build_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_the_family_is_there():
    names = {path.stem for path in BUILDERS}
    assert names == {"magpie-air", "magpie-pro", "magpie-pro-300k-filtered", "magpie-pro-mt", "magpie-pro-dpo",
                     "magpie-qwen2-pro-chinese", "magpie-reasoning", "magpie-prefill-code"}


@pytest.mark.parametrize("path", BUILDERS, ids=lambda p: p.stem)
def test_every_recipe_validates_full_size_and_scaled_down(path):
    recipe = load_recipe(path)  # validates stage names, kwargs against signatures, $roles
    assert recipe.num_rows >= 100_000 and recipe.engine == "vllm"
    assert [s.stage for s in recipe.stages][0] == "add_magpie_instructions"
    first = recipes.resolve_kwargs(recipe, recipe.stages[0])
    assert (first["temperature"], first["top_p"], first["max_tokens"]) == (1.0, 1.0, 2048)  # the paper's step-1 decoding
    for step in recipe.stages:
        kwargs = recipes.resolve_kwargs(recipe, step)
        if step.stage == "generate_responses" and path.stem == "magpie-reasoning":  # DeepSeek-R1's recommendation
            assert (kwargs["temperature"], kwargs["top_p"], kwargs["max_tokens"], kwargs["repetition_penalty"]) == (
                0.6, 0.95, 32768, 1.0)
        elif step.stage == "generate_responses":  # step 2: greedy, 4096 tokens, no repetition penalty
            assert (kwargs["temperature"], kwargs["max_tokens"], kwargs["repetition_penalty"]) == (0.0, 4096, 1.0)
        if step.stage == "min_neighbor_distance":
            assert kwargs == {"model": "sentence-transformers/all-mpnet-base-v2", "threshold": 0.05}

    small = validate_recipe(scaled(recipe, **overrides_from_args(build_parser().parse_args(
        ["build", str(path), "--output", "x", *CPU_SCALE.split()]))))
    assert small.num_rows == 50 and small.engine == "transformers"
    assert all(v is None for v in small.models.values())
    assert not {"tag_safety", "add_rewards", "reward_diff"} & {s.stage for s in small.stages}
    for step in small.stages:
        kwargs = recipes.resolve_kwargs(small, step)
        assert kwargs.get("model", None) is None or step.stage in ("apply_recipe",)
        assert all(v <= 128 for k, v in kwargs.items() if k.endswith("max_tokens"))
        if step.stage in ("apply_recipe", "longest"):
            assert 1 <= kwargs["k"] <= 50


def test_published_family_settings():
    chinese = load_recipe(ROOT / "builders" / "magpie-qwen2-pro-chinese.yaml")
    assert chinese.models["generator"] == "Qwen/Qwen2-72B-Instruct"
    assert any(s.stage == "language_is" and s.args == ("ZH",) for s in chinese.stages)
    dpo = load_recipe(ROOT / "builders" / "magpie-pro-dpo.yaml")
    samples = next(recipes.resolve_kwargs(dpo, s) for s in dpo.stages if s.stage == "add_response_samples")
    assert (samples["k"], samples["temperature"]) == (5, 0.8)
    assert [s.stage for s in dpo.stages][-2:] == ["add_rewards", "to_preference_pairs"]
    mt = load_recipe(ROOT / "builders" / "magpie-pro-mt.yaml")
    assert next(s.kwargs["num_turns"] for s in mt.stages if s.stage == "add_turns") == 2
    filtered = load_recipe(ROOT / "builders" / "magpie-pro-300k-filtered.yaml")
    assert filtered.stages[-1].kwargs == {"name": "pro-300k", "k": 300000, "seed": 42}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stages": [{"stage": "tag_everything"}]}, r"stages\[0\] \(tag_everything\): unknown stage"),
        ({"stages": [{"stage": "generate_responses", "kwargs": {"temprature": 0.0}}]},
         r"stages\[0\] \(generate_responses\): got an unexpected keyword argument 'temprature'"),
        ({"stages": [{"stage": "longest"}]}, r"stages\[0\] \(longest\): missing a required argument: 'k'"),
        ({"stages": [{"stage": "tag_with_llm", "kwargs": {"model": "$judge"}}]}, r"'\$judge' refers to nothing"),
        ({"stages": [{"stage": "generate_responses", "args": [1]}]}, "args .* for filter stages only"),
        ({"stages": [{"stage": "generate_responses", "temperature": 0}]}, r"unknown key\(s\) \['temperature'\]"),
        ({"num_rows": 0}, "num_rows must be a positive integer"),
        ({"models_": {}}, r"unknown key\(s\) \['models_'\]"),
    ],
)
def test_bad_recipes_fail_with_one_clear_error(change, message):
    data = {"name": "x", "num_rows": 10, "stages": [{"stage": "generate_responses"}], **change}
    with pytest.raises(RecipeError, match=message):
        validate_recipe(recipe_from_dict(data, "bad.yaml"))


def test_overrides():
    recipe = load_recipe(ROOT / "builders" / "magpie-pro-300k-filtered.yaml")
    other = scaled(recipe, model="Qwen/Qwen2.5-0.5B-Instruct")
    assert other.models["generator"] == other.models["tagger"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert other.models["reward"] == "sfairXC/FsfairX-LLaMA3-RM-v0.1" and other.engine == "vllm"
    # the recipe's license is its Llama-3 generator's: another generator's rows get their own
    assert recipe.license == "llama3" and scaled(recipe, num_rows=10).license == "llama3"
    assert other.license is None and scaled(recipe, model="embedded").license is None
    assert scaled(recipe, num_rows=10_000).stages[-1].kwargs["k"] == 3000  # 300K of 1M -> 3K of 10K
    with pytest.raises(RecipeError, match="unknown stage 'add_reward'"):
        scaled(recipe, skip=["add_reward"])


def test_a_recipe_runs_on_published_rows_and_builds_a_hub_folder_through_the_cli(tmp_path, capsys):
    """No model needed: start from the published-schema fixture, tag language, filter, keep the longest."""
    source = write_published_repo(tmp_path / "published")
    recipe_file = tmp_path / "english-filtered.yaml"
    recipe_file.write_text(yaml.safe_dump({
        "name": "English filtered", "config_name": "en", "num_rows": 20, "source": str(source),
        "stages": [
            {"stage": "tag_language", "kwargs": {"column": "instruction", "low_accuracy": True}},
            {"stage": "language_is", "args": ["EN"]},
            {"stage": "min_quality", "kwargs": {"label": "good"}},
            {"stage": "apply_recipe", "kwargs": {"name": "pro-300k", "k": 4}},
        ],
    }))
    out = tmp_path / "hub"
    args = build_parser().parse_args(["build", str(recipe_file), "--num-rows", "20", "--output", str(out)])
    assert args.func(args) == 0
    assert "rows written to" in capsys.readouterr().out

    ds = load_dataset(out, "en", split="train")
    assert len(ds) == 4 and set(ds["language"]) == {"EN"}
    assert {name: ds.features[name] for name in PUBLISHED_FEATURES} == dict(PUBLISHED_FEATURES)
    # the same steps as plain datasets calls give the row counts the card's stage log shows
    tagged = load_dataset(source, split="train").map(language.tag_language, batched=True,
                                                     fn_kwargs={"low_accuracy": True})
    english = tagged.filter(lambda row: row["language"] == "EN")
    good = english.filter(lambda row: row["input_quality"] in ("good", "excellent"))
    assert 0 < len(good) < len(english) < 20
    text = (out / "README.md").read_text()
    for stage, rows in [("source", 20), ("tag_language", 20), ("language_is", len(english)),
                        ("min_quality", len(good)), ("apply_recipe", 4)]:
        assert re.search(rf"\| `{stage}` \| {rows} \|", text), stage
    plots = re.findall(r"\]\((plots/en/[a-z_]+\.png)\)", text)
    assert len(plots) == 8 and all((out / p).is_file() for p in plots)


# ----------------------------------------------------------------------------- republish.yml


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_republish_runs_on_dispatch_and_schedule_and_keeps_the_token_in_one_step():
    data = workflow()
    assert "workflow_dispatch" in data["on"]
    crons = [entry["cron"] for entry in data["on"]["schedule"]]
    assert crons and all(len(cron.split()) == 5 for cron in crons)
    job = data["jobs"]["build-and-push"]
    listed = job["strategy"]["matrix"]["recipe"]
    assert sorted(listed) == sorted(p.stem for p in BUILDERS)
    text = WORKFLOW.read_text()
    assert text.count("secrets.HF_TOKEN") == 1
    push_step = next(step for step in job["steps"] if "--push" in step.get("run", ""))
    assert push_step["env"] == {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"}
    assert "HF_TOKEN" not in push_step["run"]  # never on a command line or echoed


def test_every_command_the_workflow_runs_exists():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^magpie-datasets = "magpie_datasets\.cli:main"', pyproject, re.M)
    job = workflow()["jobs"]["build-and-push"]
    for step in job["steps"]:
        if "uses" in step:
            assert re.fullmatch(r"actions/(checkout|setup-python)@v\d+", step["uses"])
            continue
        for recipe in job["strategy"]["matrix"]["recipe"]:
            for scale in ("", CPU_SCALE):
                script = step["run"].replace("${{ matrix.recipe }}", recipe)
                assert "${{" not in script, script
                script = script.replace("$SCALE_ARGS", scale).replace('"$REPO"', "me/magpie-family")
                for command in commands(script):
                    check_command(command)


def commands(script: str) -> list[list[str]]:
    found = []
    for line in script.splitlines():
        line = line.split("||")[0].strip()  # the fallback branch is echo/exit only
        if line:
            found.append(shlex.split(line))
    return found


def check_command(argv: list[str]) -> None:
    program = argv[0]
    if program in ("test", "echo", "exit"):
        return
    if program == "python":
        assert argv[1:4] == ["-m", "pip", "install"], argv
        assert shutil.which("python") or shutil.which("python3")
        return
    assert program == "magpie-datasets", f"unexpected command {argv}"
    args = build_parser().parse_args(argv[1:])  # SystemExit on an unknown option
    assert args.command == "build" and Path(ROOT / args.recipe).is_file(), argv
    plan = validate_recipe(scaled(load_recipe(ROOT / args.recipe), **overrides_from_args(args)))
    assert plan.stages


def test_the_cli_has_the_build_command():
    from magpie_datasets import cli

    args = cli.build_parser().parse_args(["build", str(BUILDERS[0]), "--dry-run"])
    assert args.func is cmd_build


# ----------------------------------------------------------------------------- done check of issue 5


@pytest.mark.slow
def test_scaled_down_air_recipe_builds_a_hub_folder_with_its_card_and_plots(tmp_path):
    """Magpie-Air at 50 rows on the embedded models (CPU, offline): generate, tag, language,
    neighbours -> local Hub folder -> card with every plot its columns allow -> load_dataset."""
    out = tmp_path / "hub"
    args = build_parser().parse_args(
        ["build", str(ROOT / "builders" / "magpie-air.yaml"), "--output", str(out), *CPU_SCALE.split()]
    )
    assert args.func(args) == 0

    ds = load_dataset(out, "air", split="train")
    assert len(ds) == 50
    for name in ("uuid", "model", "gen_input_configs", "instruction", "response", "conversations", "task_category",
                 "other_task_category", "input_quality", "difficulty", "language", "min_neighbor_distance",
                 "repeat_count", "min_similar_uuid", "instruction_length", "response_length"):
        if name in PUBLISHED_FEATURES and name != "gen_input_configs":
            assert ds.features[name] == PUBLISHED_FEATURES[name], name
    assert ds.features["gen_input_configs"]["pre_query_template"] == PUBLISHED_FEATURES["gen_input_configs"][
        "pre_query_template"]

    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n", 2)[1])
    # the recipe's llama3 is its Llama-3 generator's license; SmolLM2's outputs carry SmolLM2's
    assert meta["license"] == "apache-2.0"
    assert [c["config_name"] for c in meta["configs"]] == ["air"]
    plots = re.findall(r"\]\((plots/air/[a-z_]+\.png)\)", text)
    expected = {"task_category", "input_quality", "difficulty", "language", "min_neighbor_distance",
                "instruction_length", "response_length"}
    with_values = {c for c in expected if any(v is not None for v in ds[c])}  # a tag the tiny judge never gave has no plot
    assert {Path(p).stem for p in plots} == with_values and {"language", "instruction_length"} <= with_values
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in plots)
    for stage in ("empty", "add_magpie_instructions", "generate_responses", "tag_with_llm", "tag_language",
                  "min_neighbor_distance"):
        assert f"| `{stage}` | 50 |" in text


def test_scaled_down_prefill_recipe_starts_every_instruction_with_a_drawn_prefix(tmp_path):
    """Magpie-Prefill (KodCode style) at 8 rows on the embedded model: each instruction starts with
    the prefix its row drew from the recipe's weighted mix, recorded per row and shown in the card."""
    recipe = load_recipe(ROOT / "builders" / "magpie-prefill-code.yaml")
    mix = recipes.resolve_kwargs(recipe, recipe.stages[0])["instruction_prefix"]
    prefixes = {entry["prefix"] for entry in mix}
    out = tmp_path / "hub"
    args = build_parser().parse_args(["build", str(ROOT / "builders" / "magpie-prefill-code.yaml"), "--output",
                                      str(out), "--num-rows", "8", "--model", "embedded", "--max-tokens", "32",
                                      "--skip", "tag_with_llm", "--no-analysis"])
    assert args.func(args) == 0
    ds = load_dataset(str(out), "prefill-code", split="train")
    drawn = [row["gen_input_configs"]["instruction_prefix"] for row in ds]
    assert set(drawn) <= prefixes and len(set(drawn)) >= 2  # a mix, drawn per row
    assert all(row["instruction"].startswith(prefix) for row, prefix in zip(ds, drawn))
    assert "instruction_prefix=" in (out / "README.md").read_text()  # the card's stage settings show the mix


def test_a_stage_sets_its_own_engine_options_and_embedded_runs_drop_them():
    recipe = load_recipe(ROOT / "builders" / "magpie-pro-300k-filtered.yaml")
    by_stage = {step.stage: recipes.resolve_kwargs(recipe, step) for step in recipe.stages}
    assert by_stage["add_magpie_instructions"]["engine_options"] == {"tensor_parallel_size": 4}
    assert by_stage["tag_with_llm"]["engine_options"] == {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.9}
    small = scaled(recipe, model="embedded")
    for step in small.stages:  # vLLM settings must not reach the transformers engine
        kwargs = recipes.resolve_kwargs(small, step)
        assert kwargs.get("engine", "transformers") == "transformers" and not kwargs.get("engine_options"), step.stage

