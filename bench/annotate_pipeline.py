"""The annotate pipeline end to end on the embedded models: time per stage and label histograms.

    python bench/annotate_pipeline.py                        # 200 rows -> bench/results/annotate_pipeline.json
    python bench/annotate_pipeline.py --rows 50 --output /tmp/pipeline.json

generate (steps 1+2) -> tag_with_llm (task category, quality, difficulty; constrained JSON)
-> tag_language -> min_neighbor_distance -> dedup -> filter (at least average quality, not
ending with ":", English). No reward model ships offline, so the paper's reward rule is left
out of the filter. Every stage runs as users run it: `Dataset.map(batched=True)` or a
whole-dataset function, with the `datasets` cache off so each time is the stage's own.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def histogram(values) -> dict[str, int]:
    counts = collections.Counter("None" if v is None else str(v) for v in values)
    return dict(counts.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--max-instruction-tokens", type=int, default=96)
    parser.add_argument("--max-response-tokens", type=int, default=192)
    parser.add_argument("--max-tag-tokens", type=int, default=256)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "annotate_pipeline.json")
    args = parser.parse_args()

    import datasets

    import magpie_datasets as magpie
    from magpie_datasets import filters

    datasets.disable_caching()
    stages = []

    def timed(name, run):
        start = time.perf_counter()
        out = run()
        seconds = time.perf_counter() - start
        stages.append({"stage": name, "seconds": round(seconds, 1), "rows_out": len(out)})
        print(f"{name:24s} {seconds:8.1f} s  {len(out)} rows", flush=True)
        return out

    ds = magpie.empty(args.rows)
    ds = timed("step 1 (instructions)", lambda: ds.map(
        magpie.add_magpie_instructions, batched=True, fn_kwargs={"max_tokens": args.max_instruction_tokens}))
    ds = timed("step 2 (responses)", lambda: ds.map(
        magpie.generate_responses, batched=True, fn_kwargs={"max_tokens": args.max_response_tokens}))
    ds = timed("tag_with_llm (3 tags)", lambda: ds.map(
        magpie.tag_with_llm, batched=True, fn_kwargs={"max_tokens": args.max_tag_tokens}))
    ds = timed("tag_language", lambda: ds.map(magpie.tag_language, batched=True))
    ds = timed("min_neighbor_distance", lambda: magpie.min_neighbor_distance(ds))
    tagged = ds
    ds = timed("dedup", lambda: magpie.dedup(ds))
    keep = filters.min_quality("average") & filters.not_ending_with(":") & filters.language_is("EN")
    ds = timed(f"filter ({keep.name})", lambda: ds.filter(keep, batched=True))

    report = {
        "rows": args.rows,
        "settings": vars(args) | {"output": str(args.output), "model": magpie.EMBEDDED_CHAT_MODEL},
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages), 1),
        "issues": {
            "instruction_issue": histogram(tagged["instruction_issue"]),
            "response_issue": histogram(tagged["response_issue"]),
        },
        "histograms": {
            column: histogram(tagged[column])
            for column in ("task_category", "input_quality", "difficulty", "language", "repeat_count")
        },
        "labels_read": {
            column: sum(v is not None for v in tagged[column]) for column in ("task_category", "input_quality", "difficulty")
        },
        "instructions_sent_to_the_judge": sum(bool(t.strip()) for t in tagged["instruction"]),
        "min_neighbor_distance": {
            "min": min(tagged["min_neighbor_distance"]),
            "median": sorted(tagged["min_neighbor_distance"])[len(tagged) // 2],
        },
        "sample": {k: tagged[0][k] for k in ("instruction", "task_category", "input_quality", "difficulty", "language")},
    }
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: report[k] for k in ("stages", "histograms", "labels_read")}, indent=1))
    print(f"report: {args.output}")


if __name__ == "__main__":
    main()
