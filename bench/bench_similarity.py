"""Benchmark `min_neighbor_distance`: time (encode / index+search / attach) and peak memory.

    python bench/bench_similarity.py                       # 10k and 100k texts, 1M FAISS-only
    python bench/bench_similarity.py --text 10000          # one text run (prints one JSON line)
    python bench/bench_similarity.py --vectors 1000000     # FAISS part alone on random unit vectors

Each measurement runs in its own process so `ru_maxrss` is that run's peak. Text runs use
synthetic instructions with 1% planted exact and near duplicates and the embedded
all-MiniLM-L6-v2 on CPU, through the same code path as the stage; vector runs generate
each row's vector from its index (no full array is ever held) with 0.1% planted near
duplicates, so the peak shows what the index and the search need, not the input.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VERBS = ["Explain", "Summarize", "Describe", "Compare", "List the pros and cons of", "Write a short essay on",
         "Give three examples of", "What is the history of", "How would you teach", "Critique"]
TOPICS = ["photosynthesis", "the French revolution", "binary search trees", "inflation", "plate tectonics",
          "the immune system", "jazz music", "quantum entanglement", "supply chains", "the Roman empire",
          "neural networks", "climate change", "sourdough baking", "chess openings", "black holes",
          "the stock market", "Shakespeare's sonnets", "volcanoes", "recursion", "urban gardening"]
AUDIENCES = ["to a child", "to a graduate student", "in one paragraph", "using an analogy", "for a podcast",
             "with a table", "in Spanish", "as a poem", "step by step", "for a job interview"]


def synthetic_texts(n: int, seed: int = 0) -> tuple[list[str], int]:
    """n instructions; the last 1% copy (half exactly, half with a changed ending) earlier rows."""
    rng = np.random.default_rng(seed)
    texts = [
        f"{VERBS[v]} {TOPICS[t]} {AUDIENCES[a]}, focusing on point {k}."
        for v, t, a, k in zip(rng.integers(0, len(VERBS), n), rng.integers(0, len(TOPICS), n),
                              rng.integers(0, len(AUDIENCES), n), rng.integers(0, 10_000, n))
    ]
    planted = n // 100
    for j, source in enumerate(rng.choice(n - planted, planted, replace=False)):
        texts[n - planted + j] = texts[source] if j % 2 else texts[source].rstrip(".") + "!"
    return texts, planted


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_text(n: int, compare_exact: bool, threads: int | None) -> dict:
    import torch
    from datasets import Dataset

    from magpie_datasets.schema import conversation_uuid
    from magpie_datasets.stages import similarity

    if threads:
        torch.set_num_threads(threads)  # on an oversubscribed machine 1 thread encodes faster than 2
    texts, planted = synthetic_texts(n)
    ds = Dataset.from_dict({"uuid": [conversation_uuid("bench", i) for i in range(n)], "instruction": texts})
    del texts
    encode = similarity._encoder(similarity._model_dir(None), "cpu", 128)
    encode(["warm up"])  # model load is not part of the per-row cost
    rss_before = current_rss_mib()

    spent = {"encode": 0.0}
    column = ds.select_columns(["instruction"])
    kept_vectors = tempfile.mkdtemp(prefix="bench-vectors-") if compare_exact else None

    def vectors_of(rows):
        start = time.perf_counter()
        vectors = encode(similarity._texts(column, rows))
        spent["encode"] += time.perf_counter() - start
        if kept_vectors:  # to disk, not memory: the peak below stays the stage's own
            np.save(os.path.join(kept_vectors, f"{rows[0]}-{len(rows)}.npy"), np.stack([rows.astype(np.float32)], 1))
            np.save(os.path.join(kept_vectors, f"{rows[0]}-{len(rows)}-v.npy"), vectors)
        return vectors

    exact = n <= similarity.DEFAULT_EXACT_MAX_ROWS
    start = time.perf_counter()
    stats = similarity.streamed_neighbor_stats(n, vectors_of, 0.05, similarity.DEFAULT_EXACT_MAX_ROWS, 16, 0)
    index_and_search = time.perf_counter() - start - spent["encode"]
    start = time.perf_counter()
    config = {"column": "instruction", "embedding_model": None, "model_source": None, "threshold": 0.05,
              "index": "exact" if exact else "ivf", "nprobe": None if exact else 16}
    out = similarity.attach_neighbor_columns(ds, stats, config)
    attach = time.perf_counter() - start
    result = {
        "mode": "text", "rows": n, "index": "IndexFlatL2" if exact else "IndexIVFFlat",
        "torch_threads": torch.get_num_threads(),
        "encode_s": round(spent["encode"], 1), "index_search_s": round(index_and_search, 1),
        "attach_s": round(attach, 2), "rows_per_s_encode": round(n / spent["encode"]),
        "rss_before_mib": round(rss_before), "peak_rss_mib": round(peak_rss_mib()),
        "planted": planted, "rows_with_duplicates": int(np.count_nonzero(stats.repeat_count)),
        "kept_by_dedup": sum(1 for u, m in zip(out["uuid"], out["min_similar_uuid"]) if m in (None, u)),
        "load_avg_1m": round(os.getloadavg()[0], 1),  # this machine's 2 cores are shared
    }
    if kept_vectors and not exact:
        # IVF vs exact search on the same embeddings (after the peak above was read)
        vectors = np.zeros((n, 384), dtype=np.float32)
        for name in os.listdir(kept_vectors):
            if name.endswith("-v.npy"):
                rows = np.load(os.path.join(kept_vectors, name[: -len("-v.npy")] + ".npy"))[:, 0].astype(np.int64)
                vectors[rows] = np.load(os.path.join(kept_vectors, name))
        shutil.rmtree(kept_vectors)
        start = time.perf_counter()
        truth = similarity.neighbor_stats(vectors, exact_max_rows=n)
        result["exact_search_s"] = round(time.perf_counter() - start, 1)
        dup = truth.repeat_count > 0
        result["exact_rows_with_duplicates"] = int(dup.sum())
        result["duplicate_recall_vs_exact"] = round(float(np.mean(stats.first_similar[dup] == truth.first_similar[dup])), 4)
        result["same_repeat_count_share"] = round(float(np.mean(stats.repeat_count == truth.repeat_count)), 4)
        result["same_min_distance_share"] = round(float(np.mean(np.abs(stats.distance - truth.distance) < 1e-5)), 4)
    return result


def run_vectors(n: int, dim: int = 384) -> dict:
    from magpie_datasets.stages import similarity

    planted = n // 1000
    sources = np.arange(planted) * 7  # row n - planted + j copies row 7j with noise

    def vector(row: int) -> np.ndarray:
        if row >= n - planted:
            base = vector(int(sources[row - (n - planted)]))
            noisy = base + np.random.default_rng(-row % 2**32 + 1).normal(0, 0.008, dim).astype(np.float32)
            return noisy / np.linalg.norm(noisy)
        v = np.random.default_rng(row).standard_normal(dim, dtype=np.float32)
        return v / np.linalg.norm(v)

    spent = {"generate": 0.0}

    def vectors_of(rows):
        start = time.perf_counter()
        out = np.stack([vector(int(r)) for r in rows])
        spent["generate"] += time.perf_counter() - start
        return out

    rss_before = current_rss_mib()
    start = time.perf_counter()
    stats = similarity.streamed_neighbor_stats(
        n, vectors_of, 0.05, similarity.DEFAULT_EXACT_MAX_ROWS, 16, 0
    )
    total = time.perf_counter() - start
    copies = np.arange(n - planted, n)
    return {
        "mode": "vectors", "rows": n, "dim": dim, "index": "IndexIVFFlat" if n > similarity.DEFAULT_EXACT_MAX_ROWS else "IndexFlatL2",
        "generate_s": round(spent["generate"], 1), "index_search_s": round(total - spent["generate"], 1),
        "rss_before_mib": round(rss_before), "peak_rss_mib": round(peak_rss_mib()),
        "index_vectors_mib": round(n * dim * 4 / 2**20),
        "planted": planted, "recall": float(np.mean(stats.first_similar[copies] == sources)),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=int, help="one text run with this many rows")
    parser.add_argument("--vectors", type=int, help="one FAISS-only run with this many rows")
    parser.add_argument("--compare-exact", action="store_true", help="also time exact search (text runs)")
    parser.add_argument("--threads", type=int, help="torch threads for encoding (default: torch's)")
    args = parser.parse_args()
    if args.text:
        print(json.dumps(run_text(args.text, args.compare_exact, args.threads)), flush=True)
        return
    if args.vectors:
        print(json.dumps(run_vectors(args.vectors)), flush=True)
        return
    threads = ["--threads", str(args.threads)] if args.threads else []
    runs = [["--text", "10000", *threads], ["--text", "100000", "--compare-exact", *threads], ["--vectors", "1000000"]]
    for extra in runs:  # one process per run: ru_maxrss is per process
        out = subprocess.run([sys.executable, __file__, *extra], check=True, capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
