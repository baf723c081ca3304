"""The card's yield-and-cost table and analysis section, and `magpie-datasets analyze`."""

import json
import re
from pathlib import Path

import pytest
from datasets import Dataset

from magpie_datasets.publish.hub import save_for_hub
from magpie_datasets.runners.ledger import REPORT_FILE, StageYield, YieldReport
from tests.published_sample import write_published_repo

CPU = {"cpu": "Test CPU", "cpu_count": 2, "gpu": None, "gpu_count": 0}
REPORT = YieldReport((
    StageYield("empty", "source", 0, 40, 0.0, hardware=CPU),
    StageYield("add_magpie_instructions", "map", 40, 40, 72.0, prompt_tokens=400, completion_tokens=1440,
               engines=("transformers:embedded",), hardware=CPU, peak_rss_bytes=3 * 2**30),
    StageYield("min_quality", "filter", 40, 20, 36.0, hardware=CPU, dropped={"input_quality >= good": 20}),
))  # 108 s = 0.03 CPU-hours for 20 kept rows: 1.5 CPU-hours per 1,000

TOPICS = ["the sea", "a cat", "the moon", "autumn leaves", "a lighthouse", "rain in the city"]
INSTRUCTIONS = (
    [f"Write a poem about {t}." for t in TOPICS]
    + [f"Explain how {t} works in simple words." for t in ("photosynthesis", "a compiler", "inflation", "a vaccine")]
    + [f"Translate '{w}' into French." for w in ("good morning", "thank you", "see you soon")]
    + ["What is the capital of France?", "Summarize the plot of Hamlet.", "List three uses of baking soda.",
       "Describe the water cycle.", "Write a story about a dragon.", "Give me tips to sleep better."]
)  # 19 rows
BENCHMARK = ["What is the capital of France?", "Summarize the plot of Hamlet.",  # planted exact copies
             "Prove that the square root of two is irrational.", "Design a REST API for a library."]


def dataset() -> Dataset:
    n = len(INSTRUCTIONS)
    quality = ["good", "excellent", "average", "poor", "good"]
    return Dataset.from_dict({
        "uuid": [f"u{i}" for i in range(n)],
        "instruction": INSTRUCTIONS,
        "response": ["An answer."] * n,
        "gen_input_configs": [{"temperature": 1.0 if i % 2 else 1.2, "top_p": 1.0 if i % 2 else 0.99} for i in range(n)],
        "input_quality": [quality[i % 5] for i in range(n)],
        "difficulty": ["easy" if i % 3 else "hard" for i in range(n)],
    })


def linked_files(readme: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)


def test_every_card_shows_the_yield_table_and_the_cost_per_1000_kept_rows(tmp_path):
    out = save_for_hub(dataset(), tmp_path / "repo", report=REPORT, price_per_hour=2.5)
    readme = (out / "README.md").read_text()
    assert "### Yield and cost" in readme
    assert "**Cost per 1,000 kept rows: 1.5 CPU-hours** (0.03 CPU-hours in all, 108.0 s, for 20 kept rows" in readme
    assert "At 2.50 per CPU-hour: **3.75 per 1,000 kept rows**, 0.075 in all." in readme
    row = next(line for line in readme.splitlines() if line.startswith("| `add_magpie_instructions` | map"))
    assert row.split(" | ")[1:10] == ["map", "40", "40", "", "72.0", "400", "1,440", "20.0", "transformers:embedded"]
    assert "| `min_quality` | filter | 40 | 20 | input_quality >= good: 20 |" in readme
    assert "Test CPU (2 cores)" in readme and "3.00 GiB" in readme
    assert YieldReport.read(out / "reports" / "default" / REPORT_FILE) == REPORT

    # a report file, e.g. the one `generate` saved beside its dataset, works as well; no price: no money
    REPORT.write(tmp_path / REPORT_FILE)
    again = save_for_hub(dataset(), tmp_path / "other", report=tmp_path / REPORT_FILE)
    text = (again / "README.md").read_text()
    assert "1.5 CPU-hours" in text and "per CPU-hour" not in text
    with pytest.raises(ValueError, match="references are for the analysis section"):
        save_for_hub(dataset(), tmp_path / "third", references={"b": BENCHMARK})
    assert not (tmp_path / "third").exists()


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysed")
    out = save_for_hub(dataset(), root / "repo", report=REPORT, analysis=True, references={"bench": BENCHMARK})
    return out


def test_the_analysis_section_has_every_part_and_its_figures_exist(analysed):
    readme = (analysed / "README.md").read_text()
    for heading in ("### Analysis", "#### Coverage", "#### Topic diversity", "#### Root verbs and their direct objects",
                    "#### Decoding ablation", "#### Contamination", "#### Yield and cost"):
        assert heading in readme, heading
    assert readme.count("Cost per 1,000 kept rows") == 1  # inside the analysis, not twice
    files = linked_files(readme)
    assert "plots/default/analysis/coverage.png" in files and "plots/default/analysis/root_verbs.png" in files
    for file in files:
        assert (analysed / file).is_file() and (analysed / file).read_bytes()[:4] == b"\x89PNG", file

    results = json.loads((analysed / "reports" / "default" / "analysis.json").read_text())
    assert results["rows"] == len(INSTRUCTIONS)
    assert 0 < results["topic_diversity"]["topic_diversity"] <= 2
    assert set(results["coverage"]["coverage"]) == {"bench"}
    verbs = {v["verb"]: v for v in results["root_verbs"]["root_verbs"]}
    assert verbs["write"]["count"] == 7 and verbs["write"]["objects"][0] == {"noun": "poem", "count": 6}
    assert "| write | 7 | poem (6), story (1) |" in readme
    ablation = results["decoding_ablation"]["configurations"]
    assert [(c["temperature"], c["top_p"], c["rows"]) for c in ablation] == [(1.0, 1.0, 9), (1.2, 0.99, 10)]
    bench = results["contamination"]["bench"]
    assert bench["rows_flagged"] == 2 and bench["questions_matched"] == 2  # the two planted copies
    assert "| `bench` | 4 | 2 of 19 | 2 | 0.9 |" in readme
    assert results["yield"]["cost"]["hours_per_1000_kept"] == pytest.approx(1.5)


def test_analyze_cli_on_a_saved_dataset_and_on_a_published_one(tmp_path, analysed):
    from magpie_datasets.cli import main

    saved = tmp_path / "saved"
    dataset().save_to_disk(str(saved))
    REPORT.write(saved / REPORT_FILE)  # where `generate` leaves it
    refs = tmp_path / "bench"
    Dataset.from_dict({"instruction": BENCHMARK}).save_to_disk(str(refs))
    assert main(["analyze", str(saved), "--reference", str(refs), "--output", str(tmp_path / "a"),
                 "--price-per-hour", "2.5"]) == 0
    text = (tmp_path / "a" / "analysis.md").read_text()
    assert text.startswith("# Analysis of `saved`\n\n## Analysis")
    assert "### Coverage" in text and "### Contamination" in text and "3.75 per 1,000 kept rows" in text
    for file in linked_files(text):
        assert (tmp_path / "a" / file).is_file(), file
    results = json.loads((tmp_path / "a" / "analysis.json").read_text())
    card = json.loads((analysed / "reports" / "default" / "analysis.json").read_text())
    assert results["contamination"]["bench"]["rows_flagged"] == 2
    assert results["topic_diversity"] == card["topic_diversity"]  # the card and the command agree
    assert results["root_verbs"] == card["root_verbs"]

    published = write_published_repo(tmp_path / "published")  # a Hub folder in the authors' schema
    assert main(["analyze", str(published), "--output", str(tmp_path / "p")]) == 0
    text = (tmp_path / "p" / "analysis.md").read_text()
    assert "No reference datasets were given" in text and "### Decoding ablation" in text
    assert json.loads((tmp_path / "p" / "analysis.json").read_text())["rows"] == 20
    assert Path(tmp_path / "p" / "plots" / "root_verbs.png").is_file()

    with pytest.raises(SystemExit, match="no such dataset"):
        main(["analyze", str(tmp_path / "missing")])


@pytest.fixture
def hub(monkeypatch):
    import datasets
    from huggingface_hub import constants

    from tests.loopback_hub import LoopbackHub

    with LoopbackHub() as server:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback speaks plain LFS
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", server.url)
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        yield server


def test_push_uploads_the_reports_and_the_analysis_figures_with_the_card(hub):
    from magpie_datasets.publish.hub import push_to_hub

    push_to_hub(dataset(), "me/analysed", token="hf_loopback", report=REPORT, price_per_hour=2.5, analysis=True)
    files = hub.files("me/analysed")
    readme = files["README.md"].decode()
    assert YieldReport.from_dict(json.loads(files["reports/default/yield_report.json"])) == REPORT
    assert json.loads(files["reports/default/analysis.json"])["rows"] == len(INSTRUCTIONS)
    assert "3.75 per 1,000 kept rows" in readme and "#### Topic diversity" in readme
    for file in linked_files(readme):
        assert files[file][:4] == b"\x89PNG", file
    assert "plots/default/analysis/root_verbs.png" in linked_files(readme)
