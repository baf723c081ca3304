"""`magpie-datasets compare-responders`: which model should answer (step 2), ranked by CAR."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .report_output import print_report


def responder_arg(text: str) -> Any:
    """A `--responder` value: a model id, "embedded" (None), or a JSON object of `generate_responses` options."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"--responder {text!r} is not a JSON object ({err})") from None
    return None if text == "embedded" else text


def cmd_compare_responders(args: argparse.Namespace) -> int:
    from ..recipes import load_any
    from ..runners.responders import compare_responders, format_table

    ds = load_any(args.dataset, args.config, args.split)
    reward = {"reward_model": args.reward_model} if args.reward_model else {}  # else add_rewards' default
    report = compare_responders(ds, args.responder, base_model=args.base_model, sample_size=args.sample_size,
                                seed=args.seed, beta=args.beta, column=args.column, **reward)
    print_report(report, format_table(report), args.json, args.output)
    return 0


def add_compare_responders_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`magpie-datasets compare-responders DATASET --responder A --responder B [--base-model M] [--reward-model R]`."""
    p = subparsers.add_parser(
        "compare-responders",
        help="answer a sample of a dataset's instructions with each candidate step-2 model and rank them by "
             "compatibility-adjusted reward (arXiv 2411.07133)",
    )
    p.add_argument("dataset", help="a save_to_disk folder, a Hub folder or a data file with an instruction column")
    p.add_argument("--responder", action="append", type=responder_arg, required=True, metavar="MODEL|JSON",
                   help='a candidate (repeat, two or more): a model id, "embedded", or a JSON object of '
                        'generate_responses options, e.g. \'{"model": "org/m", "engine": "vllm", "name": "m-vllm"}\'')
    p.add_argument("--base-model", default=None, help="the model you will fine-tune (default: the embedded Gemma-3-270M base)")
    p.add_argument("--reward-model", default=None, help="the reward model (default: add_rewards' default)")
    p.add_argument("--sample-size", type=int, default=64, help="instructions answered by each responder (default: 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=3.0, help="CAR's weight of the base-model loss (default: 3.0)")
    p.add_argument("--column", default="instruction", help="the column holding the instructions")
    p.add_argument("--config", default=None, help="config of a Hub folder (default: its default config)")
    p.add_argument("--split", default="train")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--output", default=None, help="also write the JSON report to this file")
    p.set_defaults(func=cmd_compare_responders)
    return p
