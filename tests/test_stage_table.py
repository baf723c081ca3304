"""The stage table is the one list of stages: the package, the recipes and the README agree with it,
and imports flow one way through the layers."""

import ast
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


# layer of each part of the package; a module may import only from its own layer or below
LAYERS = {"version": 0, "extras": 0, "schema": 0, "templates": 0, "engines": 1, "stages": 2, "runners": 3, "publish": 3,
          "analysis": 3, "recipes": 4, "cli": 5}
SHARED_STAGE_HELPERS = {"table", "entry", "columns", "rows", "texts", "answering", "sanitize"}


def _imports(path: Path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield target, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("magpie_datasets"):
            yield node.module, [a.name for a in node.names]


def _part(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_flow_one_way():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        here = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if here in (None, "__init__"):
            continue
        for target, names in _imports(path):
            there = _part(target)
            if there is None:  # `from .. import x`: x is the part
                there = names[0]
            if LAYERS.get(there, 0) > LAYERS[here]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
            # the table collects the stage modules; any other stage uses another only through shared helpers
            if here == there == "stages" and path.parent.name == "stages" and path.stem not in ("table", "__init__"):
                sibling = target.split(".")[2] if len(target.split(".")) > 2 else names[0]
                public = set(magpie.__all__)
                if sibling not in SHARED_STAGE_HELPERS and not set(names) <= public and sibling != path.stem:
                    wrong.append(f"{path.relative_to(ROOT)} imports {target}: {names} (another stage's internals)")
    assert wrong == []


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
