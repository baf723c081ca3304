"""Dataset cards: YAML metadata, provenance read from the rows, plots, merging configs."""

from __future__ import annotations

import statistics


from pathlib import Path

import pytest
import yaml
from datasets import Dataset, Features, Value

from magpie_datasets.publish import card as card_module
from magpie_datasets.publish.card import card_with_plots, render_card
from magpie_datasets.publish.card_jinja import CARD_TEMPLATE, SECTION_TEMPLATE, TEMPLATE_FOLDER, card_templates
from magpie_datasets.publish.statistics import license_for_model, size_category
from tests.published_sample import published_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIXTURE_PLOTS = {
    "task_category", "input_quality", "difficulty", "language",
    "min_neighbor_distance", "instruct_reward", "instruction_length", "response_length",
}


def front_matter(text: str) -> dict:
    assert text.startswith("---\n"), text[:80]
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def sample() -> Dataset:
    return published_dataset()


def test_card_from_published_rows_has_metadata_provenance_plots_and_citation(sample, tmp_path):
    stages = [
        {"stage": "add_magpie_instructions", "rows": 40, "model": "Qwen/Qwen2-72B-Instruct", "temperature": 1.0},
        {"stage": "filter", "rows": 20, "min_quality": "good|excellent"},
    ]
    card, plots = card_with_plots(sample, tmp_path, repo_id="me/magpie-qwen2", stages=stages)
    text = str(card)

    meta = front_matter(text)
    assert meta["license"] == "other" and meta["license_name"] == "tongyi-qianwen"  # Qwen2-72B's license
    assert meta["task_categories"] == ["text-generation"]
    assert {"synthetic", "magpie"} <= set(meta["tags"])
    assert meta["size_categories"] == ["n<1K"]
    assert meta["language"] == ["en", "es", "zh"]
    assert meta["pretty_name"] == "magpie-qwen2"

    # provenance comes from the rows' own columns
    assert '**`gen_input_configs.pre_query_template`**: `"<|im_start|>user\\n"`' in text
    assert '**`task_category_generator`**: `"meta-llama/Meta-Llama-3-8B-Instruct"`' in text
    assert '**`reward_model`**: `"sfairXC/FsfairX-LLaMA3-RM-v0.1"`' in text
    assert "| 1 | `add_magpie_instructions` | 40 |  |" in text
    assert "| 2 | `filter` | 20 | 50.0% | min_quality=`\"good\\|excellent\"` |" in text  # | escaped in a table
    assert "| `language` | EN 85%, ZH 10%, ES 5% |" in text
    rewards = sample["instruct_reward"][:]
    assert (f"| `instruct_reward` | mean {statistics.mean(rewards):.3g}, median {statistics.median(rewards):.3g}, "
            f"min {min(rewards):.3g}, max {max(rewards):.3g} (20 values) |") in text

    assert 'load_dataset("me/magpie-qwen2", split="train")' in text
    assert "eprint    = {2406.08464}" in text and "ICLR" in text
    assert f'"uuid": "{sample[0]["uuid"]}"' in text  # the sample row

    assert {p.column for p in plots} == FIXTURE_PLOTS
    for plot in plots:
        assert f"]({plot.file})" in text
        path = tmp_path / plot.file
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 2000
        assert plot.file.startswith("plots/default/")


def test_plots_only_for_columns_that_exist_and_have_values(tmp_path):
    ds = Dataset.from_dict(
        {"instruction": ["a", "bb"], "instruction_length": [1, 2], "instruct_reward": [None, None]},
        features=Features({"instruction": Value("string"), "instruction_length": Value("int64"),
                           "instruct_reward": Value("float64")}),
    )
    card, plots = card_with_plots(ds, tmp_path)
    assert [p.column for p in plots] == ["instruction_length"]
    assert sorted(f.name for f in (tmp_path / "plots" / "default").iterdir()) == ["instruction_length.png"]
    text = str(card)
    assert "![" in text and "instruct_reward.png" not in text
    assert front_matter(text)["license"] == "other"  # no generating model known
    assert "No stage log was given" in text


def test_license_table():
    assert license_for_model("meta-llama/Meta-Llama-3-70B-Instruct") == ("llama3", None)
    assert license_for_model("meta-llama/Llama-3.1-8B-Instruct") == ("llama3.1", None)
    assert license_for_model("meta-llama/Llama-3.3-70B-Instruct") == ("llama3.3", None)
    assert license_for_model("Qwen/Qwen2.5-7B-Instruct") == ("apache-2.0", None)
    assert license_for_model("HuggingFaceTB/SmolLM2-135M-Instruct") == ("apache-2.0", None)
    assert license_for_model("google/gemma-2-9b-it") == ("gemma", None)
    assert license_for_model("microsoft/Phi-3-medium-4k-instruct") == ("mit", None)
    assert license_for_model("/local/dir/my-model") == ("other", None)
    assert size_category(999) == "n<1K" and size_category(300_000) == "100K<n<1M"


def test_user_license_wins_and_existing_license_is_kept(sample):
    card = render_card(sample, license="cc-by-nc-4.0")
    meta = front_matter(str(card))
    assert meta["license"] == "cc-by-nc-4.0" and "license_name" not in meta
    # a later render of another config without a license keeps the one chosen
    again = render_card(sample.select(range(3)), config_name="small", existing=str(card))
    assert front_matter(str(again))["license"] == "cc-by-nc-4.0"


def test_second_config_merges_and_keeps_user_text(sample, tmp_path):
    first, _ = card_with_plots(sample, tmp_path, repo_id="me/m")
    edited = str(first).replace("<!-- magpie-datasets:begin -->", "Hand-written intro.\n\n<!-- magpie-datasets:begin -->")
    edited += "\nHand-written footer.\n"

    zh = sample.filter(lambda row: row["language"] == "ZH")
    second, zh_plots = card_with_plots(zh, tmp_path, config_name="zh", existing=edited, repo_id="me/m")
    text = str(second)
    assert text.count("<!-- magpie-datasets:config default -->") == 1
    assert text.count("<!-- magpie-datasets:config zh -->") == 1
    assert text.index("Hand-written intro.") < text.index("<!-- magpie-datasets:begin -->")
    assert text.index("Hand-written footer.") > text.index("<!-- magpie-datasets:end -->")
    assert 'load_dataset("me/m", "zh", split="train")' in text
    assert "| `zh` | `train` | 2 |" in text and all(p.file.startswith("plots/zh/") for p in zh_plots)
    assert (tmp_path / "plots" / "default" / "task_category.png").exists()  # first config's plots stay

    # rendering the default config again replaces its section instead of adding one
    third = render_card(sample.select(range(5)), existing=text, repo_id="me/m")
    assert str(third).count("<!-- magpie-datasets:config default -->") == 1
    assert "5 rows in split `train`" in str(third) and "20 rows in split" not in str(third)
    assert "<!-- magpie-datasets:config zh -->" in str(third)


def test_bad_stage_log_is_one_clear_error_and_secrets_stay_out(sample, tmp_path):
    with pytest.raises(ValueError, match="'stage' .*'rows'"):
        card_with_plots(sample, tmp_path, stages=[{"stage": "filter"}])
    assert not (tmp_path / "plots").exists()  # failed before writing anything
    card = render_card(sample, stages=[{"stage": "push", "rows": 20, "token": "hf_xyz", "hf_token": "hf_abc",
                                              "max_tokens": 128}])
    assert "hf_xyz" not in str(card) and "hf_abc" not in str(card) and "max_tokens=`128`" in str(card)


def test_templates_are_real_files_inside_the_package():
    # a symlink out of the package is lost in a wheel; the wheel itself is checked in test_wheel.py
    packaged = Path(card_module.__file__).parent / TEMPLATE_FOLDER
    assert not packaged.is_symlink()
    for name in (CARD_TEMPLATE, SECTION_TEMPLATE):
        template = packaged / name
        assert template.is_file() and not template.is_symlink()
    env = card_templates()
    section, _, _ = env.loader.get_source(env, SECTION_TEMPLATE)
    assert section == (packaged / SECTION_TEMPLATE).read_text() and "magpie-datasets:config" in section


def test_guard_model_comes_from_the_rows(tmp_path):
    guard = "google/shieldgemma-2b"
    ds = Dataset.from_dict({
        "instruction": ["Hi?", "Hello?"],
        "llama_guard_2": ["safe", "unsafe\nS1"],
        "safety_model": [guard, guard],
        "safety_configs": [{"column": "instruction", "model": guard, "engine": "transformers", "max_tokens": 10}] * 2,
    })
    card, _ = card_with_plots(ds, tmp_path)
    text = str(card)
    assert f'**`safety_model`**: `"{guard}"`' in text and f'**`safety_configs.model`**: `"{guard}"`' in text
    assert '**`safety_configs.engine`**: `"transformers"`' in text and "**`safety_configs.max_tokens`**: `10`" in text
    assert "Llama-Guard-2" not in text


def test_settings_of_the_configs_structs_show_in_the_card():
    source = "gguf:gemma-3-270m-it-Q4_K_M.gguf sha256:0123abcd"
    ds = Dataset.from_dict({
        "task_category": ["Math", "Coding & Debugging"],
        "tag_configs": [{"tags": ["task_category"], "model": "google/gemma-3-270m-it", "model_source": source,
                         "engine": "transformers", "dtype": "float32", "constrained": True, "max_tokens": 64}] * 2,
        "neighbor_configs": [{"embedding_model": "BAAI/bge-small-en-v1.5", "threshold": 0.05, "index": "exact"}] * 2,
        "language_configs": [{"column": "instruction", "detector": "lingua", "low_accuracy": False}] * 2,
    })
    text = str(render_card(ds))
    assert f'**`tag_configs.model_source`**: `"{source}"`' in text
    assert "**`tag_configs.constrained`**: `true`" in text and '**`tag_configs.dtype`**: `"float32"`' in text
    assert '**`neighbor_configs.embedding_model`**: `"BAAI/bge-small-en-v1.5"`' in text
    assert "**`neighbor_configs.threshold`**: `0.05`" in text and '**`neighbor_configs.index`**: `"exact"`' in text
    assert '**`language_configs.detector`**: `"lingua"`' in text and "**`language_configs.low_accuracy`**: `false`" in text
