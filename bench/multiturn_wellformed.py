"""How many 3-turn conversations the embedded model writes well-formed (MAGPIE-MT on a CPU).

    python bench/multiturn_wellformed.py                      # 40 rows -> bench/results/multiturn_wellformed.json
    python bench/multiturn_wellformed.py --rows 10 --num-turns 2
    python bench/multiturn_wellformed.py --early-stop --max-response-tokens 1024 --no-penalize-prompt   # 38/40

Steps 1+2, then `add_turns(num_turns=3)`. A conversation is well-formed when no turn is
empty, truncated by max_tokens or leaks template markup: `instruction_issue`,
`response_issue` and `turns_issue` all None. Reported over all rows and over the rows whose
first turn was well-formed (the ones a user would continue), with the end of every turn that
stopped a conversation. SmolLM2-135M (4-bit GGUF) loops, so the answers use a repetition
penalty (`--repetition-penalty`, 1.0 in the paper; stop tokens are exempt in both engines;
`--no-penalize-prompt` keeps it off the conversation before each answer of turns 2+) and
a token cap the CPU can afford; `--early-stop` cuts instructions at their first newline (the
release's default) and `--response-temperature` samples the answers instead of greedy
decoding. All settings are recorded in the report.
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


def failed_turn_tail(row: dict) -> dict:
    """Which turn stopped the conversation, why, and its last 300 characters."""
    issue = row["instruction_issue"] and f"instruction: {row['instruction_issue']}"
    issue = issue or (row["response_issue"] and f"response: {row['response_issue']}") or row["turns_issue"]
    column = issue.split(":")[0]
    return {"turn": column, "why": issue.split(": ", 1)[1], "tail": (row[column] or "")[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--num-turns", type=int, default=3)
    parser.add_argument("--max-instruction-tokens", type=int, default=256)
    parser.add_argument("--max-response-tokens", type=int, default=512)
    parser.add_argument("--repetition-penalty", type=float, default=1.2)
    parser.add_argument("--penalize-prompt", action=argparse.BooleanOptionalAction, default=True,
                        help="turns 2+: whether the penalty also counts the conversation so far")
    parser.add_argument("--response-temperature", type=float, default=0.0, help="0 = greedy, as in the paper")
    parser.add_argument("--early-stop", action="store_true", help="cut instructions at their first newline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "multiturn_wellformed.json")
    args = parser.parse_args()

    import datasets

    import magpie_datasets as magpie

    datasets.disable_caching()
    start = time.perf_counter()
    ds = magpie.empty(args.rows).map(
        magpie.add_magpie_instructions, batched=True,
        fn_kwargs={"max_tokens": args.max_instruction_tokens, "seed": args.seed, "early_stop": args.early_stop})
    ds = ds.map(magpie.generate_responses, batched=True, fn_kwargs={
        "max_tokens": args.max_response_tokens, "repetition_penalty": args.repetition_penalty,
        "temperature": args.response_temperature, "seed": args.seed})
    ds = ds.map(magpie.add_turns, batched=True, fn_kwargs={
        "num_turns": args.num_turns, "max_tokens": args.max_instruction_tokens, "seed": args.seed,
        "response_max_tokens": args.max_response_tokens, "response_repetition_penalty": args.repetition_penalty,
        "response_penalize_prompt": args.penalize_prompt,
        "response_temperature": args.response_temperature, "early_stop": args.early_stop})
    seconds = time.perf_counter() - start

    first_ok = [i is None and r is None for i, r in zip(ds["instruction_issue"], ds["response_issue"])]
    whole_ok = [ok and t is None for ok, t in zip(first_ok, ds["turns_issue"])]
    expected_turns = 2 * args.num_turns
    # well-formed rows must hold every turn, alternating human/gpt, none empty
    for ok, conversation in zip(whole_ok, ds["conversations"]):
        if ok:
            assert [m["from"] for m in conversation] == ["human", "gpt"] * args.num_turns, conversation
            assert len(conversation) == expected_turns and all(m["value"].strip() for m in conversation)
    continued = sum(first_ok)
    report = {
        "settings": vars(args) | {"output": str(args.output), "model": magpie.EMBEDDED_CHAT_MODEL},
        "seconds": round(seconds, 1),
        "rows": len(ds),
        "well_formed": sum(whole_ok),
        "well_formed_share": round(sum(whole_ok) / len(ds), 3),
        "first_turn_well_formed": continued,
        "well_formed_share_of_those": round(sum(whole_ok) / continued, 3) if continued else None,
        "why_not": dict(collections.Counter(
            f"turn 1: {i or r}" if not first else t for i, r, t, first in
            zip(ds["instruction_issue"], ds["response_issue"], ds["turns_issue"], first_ok) if not (first and t is None)
        ).most_common()),
        "sample": ds.filter(lambda row: row["turns_issue"] is None)[:1]["conversations"],
        # the end of each turn that stopped a conversation: rambling, or a loop the penalty missed?
        "failed_turn_tails": [failed_turn_tail(row) for row in ds if row["turns_issue"] or not (
            row["instruction_issue"] is None and row["response_issue"] is None)],
    }
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "sample"}, indent=1))
    print(f"report: {args.output}")


if __name__ == "__main__":
    main()
