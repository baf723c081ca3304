"""A build that uses several models holds one at a time: the recipe runner releases the
loaded ones between stages whose models differ (`engines.release_engines`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


from magpie_datasets import engines
from magpie_datasets.engines.embedded import smollm2_dir

# peak RSS of the build's process tree (the CLI runs in a child of this wrapper)
PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:])\n"
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)\n"
)


def model_copies(root: Path, count: int) -> list[str]:
    """`count` distinct local model folders of the embedded model (links to its files)."""
    source = Path(smollm2_dir())
    folders = []
    for i in range(count):
        folder = root / f"smollm2-copy-{i}"
        folder.mkdir()
        for file in source.iterdir():
            (folder / file.name).symlink_to(file)
        folders.append(str(folder))
    return folders


def peak_of_build(tmp_path: Path, name: str, models: list[str]) -> int:
    stages = [{"stage": "add_magpie_instructions", "kwargs": {"model": models[0], "max_tokens": 12, "seed": 1}}]
    stages += [{"stage": "generate_responses", "kwargs": {"model": m, "max_tokens": 12}} for m in models[1:]]
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({"name": name, "num_rows": 4, "license": "apache-2.0", "stages": stages}))
    command = [sys.executable, "-c", PEAK, sys.executable, "-m", "magpie_datasets.cli", "build", str(recipe),
               "--output", str(tmp_path / name)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK_KB")]
    assert line and line[0].split()[2] == "0", proc.stdout[-2000:] + proc.stderr[-4000:]
    return int(line[0].split()[1]) * 1024


def test_peak_memory_stays_flat_with_one_model_per_stage(tmp_path):
    weights = sum(f.stat().st_size for f in Path(smollm2_dir()).glob("*.safetensors"))
    one, two, three = model_copies(tmp_path, 3)
    single = peak_of_build(tmp_path, "one-model", [one, one, one])
    several = peak_of_build(tmp_path, "three-models", [one, two, three])
    print(json.dumps({"one_model_peak_mb": single >> 20, "three_models_peak_mb": several >> 20,
                      "weights_mb": weights >> 20}))
    # holding all three would add two copies of the weights; one at a time adds none
    assert several < single + weights // 2, (single >> 20, several >> 20, weights >> 20)


def test_release_engines_unloads_every_cached_model():
    llm = engines.load_engine(None)
    assert engines.release_engines() >= 1
    assert llm.model is None  # the weights went with it, even though we still hold the engine
    assert engines.release_engines() == 0
    again = engines.load_engine(None)
    assert again is not llm and again.model is not None
