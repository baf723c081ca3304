"""The installed package is the product: build the wheel, install it into a fresh venv, use it.

The development install is editable, so every other test reads the source tree; this one
proves that the wheel carries what the code needs at run time (the card templates above
all), by running the installed console script and `save_for_hub` from outside the tree.
Dependencies come from the current environment through a `.pth` line (nothing is
downloaded); the package itself only from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "magpie_datasets"
TEMPLATES = sorted(p.relative_to(ROOT).as_posix() for p in (PACKAGE / "publish" / "card_templates").glob("*.jinja"))
MEASUREMENTS = sorted(p.relative_to(ROOT).as_posix() for p in (PACKAGE / "analysis" / "measurements").glob("*/*.py"))
CONFIG = "wheel-check"
# Not copied into the build: the build writes build/ and *.egg-info into its source, and the
# working tree is shared, so it builds from a copy.
NOT_SOURCE = (".git", ".venv", "*.egg-info", "__pycache__", "build", "dist", "out", ".pytest_cache", ".hypothesis")

SAVE_SNIPPET = f"""
import json, sys
import datasets, magpie_datasets
ds = datasets.load_from_disk("out")
folder = magpie_datasets.save_for_hub(ds, "hub", config_name={CONFIG!r}, repo_id="me/wheel",
                                      stages=[{{"stage": "generate", "rows": len(ds)}}])
back = magpie_datasets.publish.hub.load_dataset(folder, {CONFIG!r}, split="train")
print(json.dumps({{"package": magpie_datasets.__file__, "rows": len(ds), "loaded_rows": len(back),
                  "same_features": back.features == ds.features}}))
"""


MEASURE_SNIPPET = """
import json, evaluate
from magpie_datasets import analysis
texts = ["Write a poem about the sea.", "Write a story about a dog.", "How do I sort a list in Python?",
         "Explain recursion to a child.", "What is the capital of France?", "Write a poem about the moon."]
loaded = {name: evaluate.load(analysis.measurement_path(name)) for name in analysis.MEASUREMENTS}
out = {
    "paths": [analysis.measurement_path(name) for name in analysis.MEASUREMENTS],
    "lengths": loaded["length_distribution"].compute(data=[10, 20, 30], column="response_length")["mean"],
    "labels": loaded["label_distribution"].compute(data=["good", "poor", "good"], column="input_quality")["counts"],
    "ablation": loaded["decoding_ablation"].compute(temperature=[1.0, 1.0], top_p=[1.0, 1.0], difficulty=["easy", "hard"]),
    "verbs": loaded["root_verbs"].compute(data=texts, top_verbs=1, top_objects=1)["root_verbs"],
    "diversity": loaded["topic_diversity"].compute(data=texts)["sample_size"],
    "coverage": sorted(loaded["coverage"].compute(data=texts, reference_sets={"same": texts})["coverage"]),
    "car": loaded["compatibility_adjusted_reward"].compute(rewards=[2.0, 1.0], losses=[0.5, 0.5], beta=2.0)["car"],
}
print(json.dumps(out))
"""


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def fresh_venv(folder: Path) -> Path:
    """A venv without our package whose imports fall back to this environment's site-packages."""
    run([sys.executable, "-m", "venv", "--without-pip", folder], cwd=folder.parent)
    python = folder / "bin" / "python"
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=folder).strip())
    # A plain path line: the .pth files in there (our editable install's finder) are not run.
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return python


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", HF_DATASETS_CACHE=str(tmp / "datasets-cache"))
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", tmp / "dist", source], cwd=tmp)
    (built,) = (tmp / "dist").glob("magpie_datasets-*.whl")
    return built


def test_package_source_has_no_symlinks():
    links = [p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*") if p.is_symlink()]
    assert links == []  # a wheel drops what a symlink points to outside the package
    assert TEMPLATES == ["magpie_datasets/publish/card_templates/analysis_section.md.jinja",
                         "magpie_datasets/publish/card_templates/config_section.md.jinja",
                         "magpie_datasets/publish/card_templates/dataset_card.md.jinja",
                         "magpie_datasets/publish/card_templates/yield_table.md.jinja"]


def test_wheel_holds_every_module_and_the_card_templates_as_files(wheel):
    with zipfile.ZipFile(wheel) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        for name in TEMPLATES + MEASUREMENTS:
            assert archive.read(name) == (ROOT / name).read_bytes()
        links = [name for name, info in infos.items() if stat.S_ISLNK(info.external_attr >> 16)]
    assert links == []
    modules = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= set(infos)
    entry_points = [n for n in infos if n.endswith(".dist-info/entry_points.txt")]
    assert len(entry_points) == 1


def test_installed_wheel_generates_and_saves_a_card_with_plots_from_outside_the_tree(wheel, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(tmp_path)

    run([tmp_path / "venv" / "bin" / "magpie-datasets", "generate", "--num-rows", "3",
         "--max-instruction-tokens", "16", "--max-response-tokens", "16", "--output", "out"], cwd=work, env=env)
    result = json.loads(run([python, "-c", SAVE_SNIPPET], cwd=work, env=env).strip().splitlines()[-1])

    package = Path(result["package"])
    assert package.is_relative_to(tmp_path / "venv") and not package.is_relative_to(ROOT)
    assert (result["rows"], result["loaded_rows"], result["same_features"]) == (3, 3, True)
    card = (work / "hub" / "README.md").read_text(encoding="utf-8")
    assert f"<!-- magpie-datasets:config {CONFIG} -->" in card and f"## Subset `{CONFIG}`" in card
    assert "3 rows in split `train`" in card and f'load_dataset("me/wheel", "{CONFIG}", split="train")' in card
    plots = sorted(p.name for p in (work / "hub" / "plots" / CONFIG).glob("*.png"))
    assert plots == ["instruction_length.png", "response_length.png"]
    assert all((work / "hub" / "plots" / CONFIG / p).read_bytes().startswith(b"\x89PNG") for p in plots)
    assert all(f"(plots/{CONFIG}/{p})" in card for p in plots)
    assert sorted(p.name for p in (work / "hub" / CONFIG).iterdir()) == ["train-00000-of-00001.parquet"]


def test_installed_wheel_loads_every_measurement_with_evaluate_offline(wheel, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {**clean_env(tmp_path), "HF_EVALUATE_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    result = json.loads(run([python, "-c", MEASURE_SNIPPET], cwd=work, env=env).strip().splitlines()[-1])

    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in result["paths"])
    assert result["lengths"] == 20.0 and result["labels"] == {"good": 2, "poor": 1}
    assert result["ablation"]["configurations"][0]["rows"] == 2
    assert result["verbs"] == [{"verb": "write", "count": 3, "objects": [{"noun": "poem", "count": 2}]}]
    assert result["diversity"] == 6 and result["coverage"] == ["same"]
    assert result["car"] == 0.75  # 1.5 / (1 + 2.0 * 0.5)
