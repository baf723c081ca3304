"""Tokens generated per step-1 instruction with and without `early_stop`, on the embedded model.

    python bench/bench_early_stop.py --rows 64 --max-tokens 256 --seed 0

Same rows, same seed, same `max_tokens`; the only difference is `early_stop`, which makes the
first newline a stop string (as the authors' release does), so the engine stops there instead of
generating to the cap and cutting afterwards. Writes `bench/results/bench_early_stop.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(rows: int, max_tokens: int, seed: int, early_stop: bool) -> dict:
    import magpie_datasets as magpie
    from magpie_datasets.engines.base import generated_tokens

    before, started = generated_tokens(), time.perf_counter()
    ds = magpie.empty(rows).map(
        magpie.add_magpie_instructions, batched=True, load_from_cache_file=False,
        fn_kwargs={"max_tokens": max_tokens, "seed": seed, "early_stop": early_stop},
    )
    tokens, seconds = generated_tokens() - before, time.perf_counter() - started
    return {
        "early_stop": early_stop,
        "tokens": tokens,
        "tokens_per_instruction": tokens / rows,
        "seconds": round(seconds, 2),
        "hit_max_tokens": ds["instruction_issue"].count("max_tokens"),
        "instructions": ds["instruction"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_early_stop.json"))
    args = parser.parse_args()

    import magpie_datasets as magpie
    from magpie_datasets.engines import load_engine

    load_engine(None)  # loading is not part of either run
    full = run(args.rows, args.max_tokens, args.seed, early_stop=False)
    early = run(args.rows, args.max_tokens, args.seed, early_stop=True)
    # Same seeds, so an early-stopped instruction is the full one's first line, except where
    # other rows finishing sooner changed the batch (numerics) or the text began with a newline
    same_first_lines = sum(e == f.split("\n", 1)[0].strip() for e, f in zip(early["instructions"], full["instructions"]))
    result = {
        "model": magpie.EMBEDDED_CHAT_MODEL,
        "rows": args.rows,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "without_early_stop": {**{k: v for k, v in full.items() if k != "instructions"},
                               "multi_line": sum("\n" in text for text in full["instructions"])},
        "with_early_stop": {k: v for k, v in early.items() if k != "instructions"},
        "token_ratio_with_over_without": early["tokens"] / max(full["tokens"], 1),
        "early_instruction_is_first_line_of_full": same_first_lines,
        "dtype": str(load_engine(None).dtype).removeprefix("torch."),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
