"""Benchmark `contamination`: 1M rows x 10k reference questions, exact search, bounded memory.

    python bench/bench_contamination.py                     # all runs below, writes bench/results/contamination.json
    python bench/bench_contamination.py --search 1000000    # one chunked search run (one JSON line)
    python bench/bench_contamination.py --one-shot 20000    # the baseline: one full similarity matrix
    python bench/bench_contamination.py --encode 1000       # encode rate of the default embedding model

Encoding a million texts would take hours on this CPU, so the search runs on synthetic unit
vectors of the embedding dimension (768, all-mpnet-base-v2's; `--dim`), generated per chunk
from the row index (no full array is ever held), through the stage's own
`nearest_reference` (FAISS `IndexFlatIP`, `chunk_rows` rows per search). Every 1,000th row
copies a reference question with a little noise, and the run checks each is matched to it.
The baseline, on fewer rows, is what one would write without chunking: the full rows x
questions similarity matrix with NumPy, then its row maxima; the chunked search on the same
rows must give the same answers. The encode run times the real embedding model on synthetic
instructions, to extrapolate the cost of embedding 1M rows + 10k questions. Each run is its
own process, so `ru_maxrss` is that run's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results" / "contamination.json"
QUESTIONS = 10_000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit_rows(seed: int, n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def reference_vectors(dim: int) -> np.ndarray:
    return unit_rows(10**9, QUESTIONS, dim)


def row_vectors(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Vectors of `rows` (a contiguous chunk): random, except rows divisible by 1000, which are
    noisy copies of reference question (row // 1000) % QUESTIONS."""
    vectors = unit_rows(int(rows[0]), len(rows), reference.shape[1])
    planted = rows[rows % 1000 == 0]
    if len(planted):
        noisy = reference[(planted // 1000) % len(reference)] + np.random.default_rng(int(rows[0]) + 1).normal(
            0, 0.01, (len(planted), reference.shape[1])).astype(np.float32)
        vectors[planted - rows[0]] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return vectors


def run_search(n: int, dim: int, chunk_rows: int) -> dict:
    import faiss

    from magpie_datasets.stages.contamination import nearest_reference

    reference = reference_vectors(dim)
    spent = {"generate": 0.0}

    def vectors_of(rows):
        start = time.perf_counter()
        out = row_vectors(rows, reference)
        spent["generate"] += time.perf_counter() - start
        return out

    start = time.perf_counter()
    similarity, match = nearest_reference(n, vectors_of, reference, chunk_rows)
    total = time.perf_counter() - start
    planted = np.arange(0, n, 1000)
    return {
        "mode": "chunked IndexFlatIP", "rows": n, "questions": QUESTIONS, "dim": dim, "chunk_rows": chunk_rows,
        "faiss_threads": faiss.omp_get_max_threads(),
        "search_s": round(total - spent["generate"], 1), "generate_vectors_s": round(spent["generate"], 1),
        "rows_per_s": round(n / (total - spent["generate"])), "peak_rss_mib": round(peak_rss_mib()),
        "reference_index_mib": round(QUESTIONS * dim * 4 / 2**20, 1),
        "planted": len(planted), "planted_matched": int(np.sum(match[planted] == (planted // 1000) % QUESTIONS)),
        "planted_min_similarity": round(float(similarity[planted].min()), 4),
        "others_max_similarity": round(float(np.delete(similarity, planted).max()), 4),
        "flagged_at_0.9": int(np.sum(similarity >= 0.9)),
        "checksum": round(float(similarity.astype(np.float64).sum()), 3),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def run_one_shot(n: int, dim: int) -> dict:
    """Baseline: the full n x questions matrix in one go (NumPy BLAS), then the chunked search on
    the same rows in the same process, after the baseline's peak was read."""
    from magpie_datasets.stages.contamination import nearest_reference

    reference = reference_vectors(dim)
    rows = row_vectors(np.arange(n), reference)
    start = time.perf_counter()
    full = rows @ reference.T
    best, best_i = full.max(axis=1), full.argmax(axis=1)
    spent = time.perf_counter() - start
    result = {
        "mode": "one-shot full matrix (NumPy)", "rows": n, "questions": QUESTIONS, "dim": dim,
        "search_s": round(spent, 1), "rows_per_s": round(n / spent), "peak_rss_mib": round(peak_rss_mib()),
        "matrix_mib": round(full.nbytes / 2**20), "checksum": round(float(best.astype(np.float64).sum()), 3),
    }
    del full
    start = time.perf_counter()
    similarity, match = nearest_reference(n, lambda r: rows[r], reference)
    result["chunked_same_rows_s"] = round(time.perf_counter() - start, 1)
    result["same_match_share"] = float(np.mean(match == best_i))
    result["max_similarity_difference"] = float(np.abs(similarity - best).max())
    result["load_avg_1m"] = round(os.getloadavg()[0], 1)
    return result


def run_encode(n: int, model: str | None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_similarity import synthetic_texts

    from magpie_datasets.engines.embedding import embedder

    texts, _ = synthetic_texts(n)
    embed = embedder(model, {"device": "cpu"})
    embed.encode(["warm up"])
    start = time.perf_counter()
    vectors = embed.encode(texts)
    spent = time.perf_counter() - start
    return {
        "mode": "encode", "model": embed.model, "texts": n, "dim": int(vectors.shape[1]),
        "encode_s": round(spent, 1), "s_per_1000_texts": round(1000 * spent / n, 1),
        "extrapolated_1m_rows_plus_10k_questions_h": round((1_000_000 + QUESTIONS) * spent / n / 3600, 1),
        "peak_rss_mib": round(peak_rss_mib()), "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def _child(*args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    line = out.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search", type=int, help="one chunked search run with this many rows")
    parser.add_argument("--one-shot", type=int, help="one baseline run (full matrix) with this many rows")
    parser.add_argument("--encode", type=int, help="time encoding this many texts with the default model")
    parser.add_argument("--model", help="embedding model for --encode (default: the stage's default)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--chunk-rows", type=int, default=8_192)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main run")
    parser.add_argument("--mpnet-path", help="a --target folder with all-mpnet-base-v2's PyPI parts, also timed")
    args = parser.parse_args()
    if args.search:
        print(json.dumps(run_search(args.search, args.dim, args.chunk_rows)), flush=True)
        return
    if args.one_shot:
        print(json.dumps(run_one_shot(args.one_shot, args.dim)), flush=True)
        return
    if args.encode:
        print(json.dumps(run_encode(args.encode, args.model)), flush=True)
        return
    dim = ["--dim", str(args.dim)]
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "note": "2 cores shared with other jobs; see load_avg_1m of each run"},
        "baseline_one_shot_20k": _child("--one-shot", "20000", *dim),
        "chunked_20k": _child("--search", "20000", *dim),
        "chunked_1m": _child("--search", str(args.rows), *dim, "--chunk-rows", str(args.chunk_rows)),
        "encode_default": _child("--encode", "1000"),
    }
    if args.mpnet_path:
        result["encode_mpnet"] = _child("--encode", "1000", env={"PYTHONPATH": args.mpnet_path})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
