"""A randomly initialised model of the embedded model's architecture, for speed checks where the
embedded model's weights cannot travel (the GPU check of `bench/gpu_check_device.sh`).

    python bench/random_model.py architecture .gpu-check/smollm2-architecture   # here: config + tokenizer
    python bench/random_model.py weights .gpu-check/smollm2-architecture /tmp/random-smollm2  # there

`architecture` copies the embedded SmolLM2-135M-Instruct's config, generation config, tokenizer and
chat template (3.5 MB, no weights) out of this machine's converted copy. `weights` gives that
architecture seeded random weights (bfloat16) and saves a folder every engine loads. Speed does
not depend on the weights where every row generates the same number of tokens (the bench's
`--ignore-eos`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def copy_architecture(out: Path) -> None:
    from magpie_datasets.engines.embedded import smollm2_dir

    source = Path(smollm2_dir())
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (source / name).exists():
            shutil.copy2(source / name, out / name)


def random_weights(architecture: Path, out: Path, seed: int = 0) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(architecture)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in FILES:  # the tokenizer and template as they are; config as saved with the weights
        if name != "config.json" and (architecture / name).exists():
            shutil.copy2(architecture / name, out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("architecture").add_argument("out", type=Path)
    weights = sub.add_parser("weights")
    weights.add_argument("architecture", type=Path)
    weights.add_argument("out", type=Path)
    weights.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "architecture":
        copy_architecture(args.out)
    else:
        random_weights(args.architecture, args.out, args.seed)


if __name__ == "__main__":
    main()
