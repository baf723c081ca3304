"""What vLLM's scheduler stats cost: `VLLMEngine` with `disable_log_stats=False` (our default, so the
progress bars can show the KV-cache use) against `True` (vLLM's own `LLM` default).

    python bench/bench_vllm_log_stats.py              # 4 pairs, 256 rows x 128 tokens
    python bench/bench_vllm_log_stats.py --pairs 2 --rows 64

Each run is its own process (one vLLM engine core at a time), on the embedded SmolLM2, step-1-like
prompts, seeded sampling at temperature 1, the same tokens out of both settings. The pairs
alternate which setting goes first, so the drift of a shared machine favours neither. Written as
JSON: every run's tok/s and the CPU seconds of this front-end process (where the stats are
collected per step; the scheduler's share in the engine core is a few counters per step), and
on / off per pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_run(stats: bool, rows: int, max_tokens: int) -> dict:
    from magpie_datasets.engines.base import Sampling
    from magpie_datasets.engines.embedded import smollm2_dir
    from magpie_datasets.engines.vllm import VLLMEngine

    engine = VLLMEngine(smollm2_dir(), disable_log_stats=not stats)
    sampling = Sampling(n=1, max_tokens=max_tokens, temperature=1.0)
    prompts = [f"Write a story about number {i}" for i in range(rows)]
    engine.generate(prompts[:8], sampling, seeds=list(range(8)))  # warm-up, outside the timing
    cpu, start = time.process_time(), time.perf_counter()
    out = engine.generate(prompts, sampling, seeds=list(range(rows)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(c.completion_tokens for row in out for c in row)
    engine.close()
    return {"stats": stats, "tokens": tokens, "tok_s": round(tokens / wall, 1), "front_cpu_s": round(cpu, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--one", choices=("on", "off"), help=argparse.SUPPRESS)  # a child run
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "vllm_log_stats.json"))
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_run(args.one == "on", args.rows, args.max_tokens)))
        return
    runs = []
    for pair in range(args.pairs):
        order = ("on", "off") if pair % 2 == 0 else ("off", "on")
        done = {}
        for setting in order:
            child = subprocess.run(
                [sys.executable, __file__, "--one", setting, "--rows", str(args.rows), "--max-tokens", str(args.max_tokens)],
                capture_output=True, text=True, check=True,
            )
            done[setting] = json.loads(child.stdout.split("RESULT ", 1)[1].splitlines()[0])
            print(setting, done[setting], flush=True)
        assert done["on"]["tokens"] == done["off"]["tokens"], "the two settings generated different tokens"
        runs.append({"order": list(order), **done, "on_vs_off": round(done["on"]["tok_s"] / done["off"]["tok_s"], 3)})
    ratios = [r["on_vs_off"] for r in runs]
    result = {
        "what": "tok/s with vLLM's scheduler stats on (our default) / off, one process per run, alternating order",
        "rows": args.rows, "max_tokens": args.max_tokens, "runs": runs,
        "on_vs_off_mean": round(statistics.mean(ratios), 3), "on_vs_off_min_max": [min(ratios), max(ratios)],
        "front_cpu_s_mean": {s: round(statistics.mean(r[s]["front_cpu_s"] for r in runs), 3) for s in ("on", "off")},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
