"""The stage table is the one list of stages: the package, the recipes and the README agree with it
(the import layers are checked in test_import_graph.py)."""

import inspect
from pathlib import Path

import yaml

import magpie_datasets as magpie
from magpie_datasets import recipes
from magpie_datasets.stages import table
from magpie_datasets.stages.readme_table import readme_with_table
from magpie_datasets.version import versioned

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "magpie_datasets"


def test_every_stage_the_package_exports_is_in_the_table():
    names = {n for s in table.STAGES for n in (s.name, *s.aliases)}
    map_stages = {name for name in magpie.__all__ if isinstance(getattr(magpie, name), versioned)}
    assert map_stages and map_stages <= names
    for s in table.STAGES:
        assert s.kind in table.KINDS
        if s.kind == "filter":
            assert getattr(magpie.filters, s.name) is s.function
        else:
            assert getattr(magpie, s.name) is s.function and s.name in magpie.__all__
        assert (s.kind == "map") == isinstance(s.function, versioned), s.name
    # whole-dataset functions of the package (Dataset in, Dataset out) are stages too
    for name in ("dedup", "longest", "apply_recipe", "min_neighbor_distance"):
        assert table.stage(name).kind == "dataset"


def test_reads_have_writers_and_models_name_real_keywords():
    for s in table.STAGES:
        for column in s.reads:
            assert table.writer_of(column) != "the stage that writes it", (s.name, column)
        params = table.keywords(s.name)
        for model in s.models:
            for keyword in (model.argument, model.engine, model.options):
                assert keyword is None or keyword in params, (s.name, keyword)
        if s.kind == "map":  # keyword-only after the batch
            own = list(inspect.signature(s.function).parameters.values())[1:]
            assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in own), s.name


def test_recipes_run_the_table_and_every_builder_names_table_stages():
    assert set(recipes.MAP_STAGES) == {s.name for s in table.STAGES if s.kind == "map"}
    assert set(recipes.FILTERS) == {s.name for s in table.STAGES if s.kind == "filter"}
    assert set(recipes.DATASET_STAGES) == {s.name for s in table.STAGES if s.kind == "dataset"}
    builders = sorted((ROOT / "builders").glob("*.yaml"))
    assert builders
    for path in builders:
        for step in yaml.safe_load(path.read_text())["stages"]:
            assert table.stage(step["stage"]).kind != "source", (path.name, step["stage"])


def test_readme_stage_table_is_the_table():
    readme = (ROOT / "README.md").read_text()
    assert readme == readme_with_table(readme), "run: python -m magpie_datasets.stages.readme_table README.md"
    assert "| `tag_safety` | map |" in readme


def test_missing_column_messages_name_the_writer_from_the_table():
    try:
        magpie.filters.min_quality("good")({"instruction": ["x"]})
    except KeyError as err:
        assert "Run tag_with_llm first" in str(err)
    else:
        raise AssertionError("no error for a missing column")


def test_every_stage_documents_every_option():
    """Each keyword a stage takes has an `Args:` entry `name (`type`, ...): effect` in its docstring,
    as `Dataset.map` documents its arguments (filters: the factory's own arguments)."""
    undocumented = []
    for s in table.STAGES:
        doc = inspect.getdoc(s.function) or ""
        params = list(inspect.signature(s.function).parameters)
        for name in params if s.kind == "filter" else params[1:]:
            if f"\n{name} (" not in "\n" + "\n".join(line.strip() for line in doc.splitlines()):
                undocumented.append(f"{s.name}: {name}")
    assert undocumented == []
