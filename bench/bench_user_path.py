"""Steps 1 and 2 on the paths users take, against the engine's one-call ceiling, in one process.

    python bench/bench_user_path.py --engine vllm --rows 512                  # the issue's setting
    python bench/bench_user_path.py --engine transformers --rows 64 --max-response-tokens 128

Every path makes the same rows from the same options: the CLI's `generate` steps
(`cli.generate_steps`: sampled step 1 with the row seeds, greedy step 2, the embedded model's
caps unless given) on the same loaded engine.

- `ceiling`: every step-1 prompt in one engine call, then every step-2 prompt in one call; for
  vLLM the bare `vllm.LLM.generate` on the requests our engine builds (`VLLMEngine.requests`),
  for transformers one call of its own `generate`. The calls are those the stages made on the
  first path, replayed (the rows are seeded per row, so one call gives the same texts).
- `cli`: `magpie-datasets generate` at its defaults (in this process: the same engine).
- `run_resumable[B]`: the checkpoint runner at checkpoint batch B (the CLI's runner).
- `dataset_map`: `Dataset.map(batched=True)` at its default batch of 1,000.

The paths run ceiling, the others, ceiling again (A B ... A), so drift on a shared machine shows.
Tokens are the completion tokens the engine generated; `rows_as_dataset_map` counts the rows equal
to those of the first (recording) `Dataset.map` run: all of them with vLLM; with the transformers
engine a near-tie between two tokens can go the other way when a batch pads a row differently
(the order of float sums changes), so a few rows, and the token count, may differ. Printed and written as JSON: seconds, tok/s and the ratio
to the mean of the two ceiling runs. Model loading is excluded (a warm-up call first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="vllm")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--max-instruction-tokens", type=int, default=128)
    parser.add_argument("--max-response-tokens", type=int, default=256)
    parser.add_argument("--checkpoint-sizes", default="16,64,512,4096",
                        help="run_resumable checkpoint batch sizes, comma separated")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from magpie_datasets import cli
    from magpie_datasets.engines import load_engine
    from magpie_datasets.engines.base import Sampling, generated_tokens
    from magpie_datasets.runners.checkpoint import run_resumable
    from magpie_datasets.stages.generate import empty

    argv = ["generate", "--engine", args.engine, "--num-rows", str(args.rows),
            "--max-instruction-tokens", str(args.max_instruction_tokens),
            "--max-response-tokens", str(args.max_response_tokens)]
    work = Path(tempfile.mkdtemp(prefix="bench-user-path-"))
    steps = cli.generate_steps(cli.build_parser().parse_args([*argv, "--output", str(work / "x")]))
    options = steps[0][1]
    engine = load_engine(options["model"], args.engine, **options["engine_options"])
    engine.generate(["Hello"], Sampling(max_tokens=4, temperature=0))  # warm-up: loading is not timed

    # the calls the stages make, recorded on the first path, replayed as one call per step
    recorded: list[tuple] = []
    generate = engine.generate

    def recording(prompts, sampling, seeds=None):
        recorded.append((list(prompts), sampling, None if seeds is None else list(seeds)))
        return generate(prompts, sampling, seeds)

    def rows_of(ds):
        return [(r["uuid"], r["instruction"], r["response"]) for r in ds]

    def ceiling():
        by_sampling: dict = {}
        for prompts, sampling, seeds in recorded:
            p, s = by_sampling.setdefault(sampling, ([], []))
            p.extend(prompts)
            s.extend(seeds or [])
        tokens = 0  # completion tokens, counted as the engines count them
        for sampling, (prompts, seeds) in by_sampling.items():
            if args.engine == "vllm":
                requests, params = engine.requests(prompts, sampling, seeds or None)
                outputs = engine.llm.generate(requests, params, use_tqdm=False)
                tokens += sum(len(o.token_ids) for out in outputs for o in out.outputs)
            else:
                out = engine.generate(prompts, sampling, seeds or None)
                tokens += sum(c.completion_tokens for per in out for c in per)
        return tokens

    results, reference = [], []

    def timed(name, run):
        before = generated_tokens()
        start = time.perf_counter()
        value = run()
        seconds = time.perf_counter() - start
        tokens = value if isinstance(value, int) else generated_tokens() - before
        same = None
        if not isinstance(value, int):
            rows = rows_of(value)
            assert len(rows) == len(reference), f"{name} made {len(rows)} rows, not {len(reference)}"
            same = sum(a == b for a, b in zip(rows, reference))
        results.append({"path": name, "seconds": round(seconds, 2), "tokens": tokens,
                        "tok_per_s": round(tokens / seconds, 1), "rows_as_dataset_map": same})
        print(json.dumps(results[-1]), flush=True)

    def through_map():
        ds = empty(args.rows)
        for fn, kwargs in steps:
            ds = ds.map(fn, batched=True, fn_kwargs=kwargs)
        return ds

    # path 0 (untimed for the ratios): record the stages' calls
    engine.generate = recording
    rows_of_map = through_map()
    engine.generate = generate
    reference = rows_of(rows_of_map)

    def through_cli():
        from datasets import load_from_disk

        output = work / f"cli-{len(results)}"
        assert cli.main([*argv, "--output", str(output), "--no-preflight"]) in (0, None)
        return load_from_disk(str(output))

    timed("ceiling", ceiling)
    timed("cli", through_cli)
    for size in [int(s) for s in args.checkpoint_sizes.split(",") if s]:
        timed(f"run_resumable[{size}]", lambda size=size: run_resumable(
            empty(args.rows), steps, work / f"ck-{size}", batch_size=size))
    timed("dataset_map", through_map)
    timed("ceiling", ceiling)

    ceilings = [r["tok_per_s"] for r in results if r["path"] == "ceiling"]
    mean = sum(ceilings) / len(ceilings)
    for r in results:
        r["vs_ceiling"] = round(r["tok_per_s"] / mean, 3)
    report = {"args": vars(args), "engine": args.engine, "cores": os.cpu_count(), "ceiling_tok_per_s": mean,
              "ceiling_drift": round(ceilings[-1] / ceilings[0], 3), "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
