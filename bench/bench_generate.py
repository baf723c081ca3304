"""Steps 1 and 2 through the `datasets` transforms vs the bare engine, same prompts, same run.

    python bench/bench_generate.py                          # transformers and vllm, 256 + 64 rows
    python bench/bench_generate.py --engines transformers --rows1 64 --max-tokens1 32

For each engine (embedded SmolLM2-135M-Instruct): step 1 samples `--rows1` instructions
(`add_magpie_instructions` through `Dataset.map(batched=True)`) and the bare engine
samples the same ones (`engine.generate` on the same pre-query, same seed); step 2
answers `--rows2` of them (`generate_responses` vs `engine.generate` on the same chat
prompts, greedy). Both paths are seeded alike, so they generate the same texts: the
bench checks that, so the token counts (taken from the bare run) are the same work.
Printed: rows/s and tokens/s of both, and transform/bare (target >= 0.9), from wall
time and from CPU time (this process and vLLM's workers: steadier on a shared machine).
Model loading is excluded (one warm-up call first). With `--repeats 2` the paths run
A B B A, so slow drift on a shared machine does not favour one; the fastest run counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_seconds() -> float:
    """CPU time of this process and its live children (vLLM's engine and workers).

    On a shared machine wall time swings with other people's jobs; CPU time counts only
    the work done, so its ratio is the steadier figure."""
    try:
        import psutil
    except ImportError:
        return time.process_time()
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu


def bare_step1(llm, uuids, max_tokens, seed):
    from magpie_datasets.engines.base import Sampling
    from magpie_datasets.stages.generate import clean_instruction, row_seed
    from magpie_datasets.templates import magpie_template

    template = magpie_template(llm.tokenizer)
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=max_tokens, stop=template.stop)
    seeds = [row_seed(seed, u) for u in uuids]
    with Timer() as timer:
        completions = [c for c, in llm.generate([template.pre_query] * len(uuids), sampling, seeds=seeds)]
    texts = [clean_instruction(c.text, False, False)[0] for c in completions]
    return timer, texts, sum(c.completion_tokens for c in completions)


def bare_step2(llm, instructions, max_tokens, seed):
    from magpie_datasets.engines.base import Sampling
    from magpie_datasets.templates import chat_prompt, magpie_template
    todo = [q for q in instructions if q.strip()]
    sampling = Sampling(
        temperature=0.0,
        max_tokens=max_tokens,
        stop=magpie_template(llm.tokenizer, system_prompt="template").stop,
    )
    prompts = [chat_prompt(llm.tokenizer, [{"role": "user", "content": q}]) for q in todo]
    with Timer() as timer:
        results = llm.generate(prompts, sampling)
    return timer, [c.text.strip() for (c,) in results], sum(c.completion_tokens for (c,) in results)


def transform(dataset, fn, **fn_kwargs):
    with Timer() as timer:
        out = dataset.map(fn, batched=True, batch_size=len(dataset), fn_kwargs=fn_kwargs, load_from_cache_file=False)
    return timer, out


def text_tokens(tokenizer, texts) -> int:
    """Tokens in the final texts: the same yardstick for both paths when their texts differ
    (vLLM's seeded sampling is not bit-stable across runs: batch make-up changes bf16 numerics)."""
    return sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"])


def measure(engine, args):
    import magpie_datasets as magpie
    from magpie_datasets.engines import Sampling, load_engine

    llm = load_engine(None, engine)
    llm.generate(["Hello"], Sampling(max_tokens=2, seed=0))  # warm-up: first-call costs are not the transform's
    rows = []
    ds = magpie.empty(args.rows1)
    uuids = list(ds["uuid"])
    step1_kwargs = {"engine": engine, "max_tokens": args.max_tokens1, "seed": args.seed}
    step2_kwargs = {"engine": engine, "max_tokens": args.max_tokens2, "seed": args.seed}
    instructions = None
    for run in range(args.repeats):
        first_bare = run % 2 == 0
        for path in ("bare", "transform") if first_bare else ("transform", "bare"):
            if path == "bare":
                seconds, texts, tokens = bare_step1(llm, uuids, args.max_tokens1, args.seed)
                rows.append({"engine": engine, "step": 1, "path": "bare", "seconds": seconds.wall, "cpu": seconds.cpu, "rows": len(texts),
                             "tokens": tokens, "texts": texts})
            else:
                seconds, out = transform(ds, magpie.add_magpie_instructions, **step1_kwargs)
                instructions = out
                rows.append({"engine": engine, "step": 1, "path": "transform", "seconds": seconds.wall, "cpu": seconds.cpu, "rows": len(out),
                             "texts": list(out["instruction"])})
    answer = instructions.filter(lambda r: bool(r["instruction"].strip())).select(range(args.rows2))
    for run in range(args.repeats):
        first_bare = run % 2 == 1
        for path in ("bare", "transform") if first_bare else ("transform", "bare"):
            if path == "bare":
                seconds, texts, tokens = bare_step2(llm, list(answer["instruction"]), args.max_tokens2, args.seed)
                rows.append({"engine": engine, "step": 2, "path": "bare", "seconds": seconds.wall, "cpu": seconds.cpu, "rows": len(texts),
                             "tokens": tokens, "texts": texts})
            else:
                seconds, out = transform(answer, magpie.generate_responses, **step2_kwargs)
                rows.append({"engine": engine, "step": 2, "path": "transform", "seconds": seconds.wall, "cpu": seconds.cpu, "rows": len(out),
                             "texts": list(out["response"])})
    for row in rows:
        row["text_tokens"] = text_tokens(llm.tokenizer, row["texts"])
    return rows


def summarise(rows):
    summary = []
    for engine in dict.fromkeys(r["engine"] for r in rows):
        for step in (1, 2):
            bare = [r for r in rows if r["engine"] == engine and r["step"] == step and r["path"] == "bare"]
            through = [r for r in rows if r["engine"] == engine and r["step"] == step and r["path"] == "transform"]
            if not bare or not through:
                continue
            tokens = bare[0]["tokens"]
            same = all(r["texts"] == bare[0]["texts"] for r in bare + through)
            b = min(r["seconds"] for r in bare)
            t = min(r["seconds"] for r in through)
            b_cpu = min(r["cpu"] for r in bare)
            t_cpu = min(r["cpu"] for r in through)
            # work per second measured in text tokens, for when the two paths' texts differ
            b_rate = max(r["text_tokens"] / r["seconds"] for r in bare)
            t_rate = max(r["text_tokens"] / r["seconds"] for r in through)
            b_cpu_rate = max(r["text_tokens"] / r["cpu"] for r in bare)
            t_cpu_rate = max(r["text_tokens"] / r["cpu"] for r in through)
            line = {
                "engine": engine,
                "step": step,
                "rows": bare[0]["rows"],
                "tokens": tokens,
                "same_texts": same,
                "bare_s": round(b, 2),
                "transform_s": round(t, 2),
                "bare_rows_per_s": round(bare[0]["rows"] / b, 2),
                "transform_rows_per_s": round(through[0]["rows"] / t, 2),
                "bare_tok_per_s": round(tokens / b, 1),
                "transform_tok_per_s": round(tokens / t, 1),
                "ratio": round(b / t, 3),
                "cpu_ratio": round(b_cpu / t_cpu, 3),
                "text_token_ratio": round(t_rate / b_rate, 3),
                "text_token_cpu_ratio": round(t_cpu_rate / b_cpu_rate, 3),
                "text_tokens": {"bare": [r["text_tokens"] for r in bare], "transform": [r["text_tokens"] for r in through]},
                "all_seconds": {"bare": [round(r["seconds"], 2) for r in bare],
                                "transform": [round(r["seconds"], 2) for r in through]},
                "all_cpu_seconds": {"bare": [round(r["cpu"], 2) for r in bare],
                                    "transform": [round(r["cpu"], 2) for r in through]},
            }
            summary.append(line)
            print(
                f"{engine:12s} step {step}: {line['rows']} rows, {tokens} tokens | "
                f"transform {line['transform_rows_per_s']} rows/s {line['transform_tok_per_s']} tok/s | "
                f"bare {line['bare_rows_per_s']} rows/s {line['bare_tok_per_s']} tok/s | "
                f"transform/bare {line['ratio']:.3f} (CPU time: {line['cpu_ratio']:.3f}) | same texts: {same}"
                + ("" if same else f" | per text token: {line['text_token_ratio']:.3f} (CPU: {line['text_token_cpu_ratio']:.3f})"),
                flush=True,
            )
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["transformers", "vllm"], choices=["transformers", "vllm"])
    parser.add_argument("--rows1", type=int, default=256)
    parser.add_argument("--max-tokens1", type=int, default=128)
    parser.add_argument("--rows2", type=int, default=64)
    parser.add_argument("--max-tokens2", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each path; the fastest counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for transformers (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for engine in args.engines:
        rows += measure(engine, args)
        summarise([r for r in rows if r["engine"] == engine])
    print("--- summary ---")
    summary = summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
