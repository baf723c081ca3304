"""Fault test: SIGKILL a resumable run at random points, resume it, count lost and duplicated rows.

    python bench/kill_test.py                       # both trial sets, 10 kills each
    python bench/kill_test.py --mode generate --trials 10 --rows 24

Trial sets:
- `pure`: `run_resumable` over a cheap deterministic step (a hash per row, slowed down so
  kills land inside batches and inside the atomic writes).
- `generate`: the real CLI, `magpie-datasets generate` (steps 1 and 2 on the embedded
  SmolLM2 model, transformers engine, small max_tokens), killed while it loads, samples
  or writes. Its final output is compared with an uninterrupted run of the same command.

After every kill the finished batches on disk are read back: every row must appear at
most once (0 duplicated) and only whole batches in their fixed positions. At the end the
resumed run must hold every row exactly once (0 lost) and, for `generate`, equal the
uninterrupted run. Prints a summary and writes it as JSON (`--report`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PURE_CHILD = textwrap.dedent(
    """
    import hashlib, sys, time
    from datasets import Dataset
    from magpie_datasets.runners.checkpoint import run_resumable, save_dataset
    from magpie_datasets.runners.run_identity import run_identity

    def digest(batch, salt):
        time.sleep(0.05)
        return {"h": [hashlib.sha256(f"{salt}/{r}".encode()).hexdigest() for r in batch["row"]]}

    if __name__ == "__main__":
        checkpoint, output, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
        ds = Dataset.from_dict({"row": list(range(rows))})
        steps = [(digest, {"salt": "kill-test"})]
        out = run_resumable(ds, steps, checkpoint, batch_size=4)
        save_dataset(out, output, run_identity(ds, steps, 4))
    """
)


def batch_files(checkpoint: Path) -> list[Path]:
    return sorted((checkpoint / "batches").glob("*.arrow")) if (checkpoint / "batches").exists() else []


def rows_on_disk(checkpoint: Path, key: str) -> list[tuple[int, list]]:
    """(batch index, values of `key`) of every finished batch file."""
    from datasets import Dataset

    return [(int(f.stem), Dataset.from_file(str(f))[key]) for f in batch_files(checkpoint)]


def check_partial(checkpoint: Path, key: str, expected: list, batch_size: int) -> dict:
    """Duplicates and misplaced rows among the finished batches after a kill."""
    found = rows_on_disk(checkpoint, key)
    values = [v for _, vs in found for v in vs]
    misplaced = sum(vs != expected[i * batch_size : (i + 1) * batch_size] for i, vs in found)
    return {"batches": len(found), "rows": len(values), "duplicated": len(values) - len(set(values)), "misplaced": misplaced}


def kill_loop(command, checkpoint: Path, output: Path, trials: int, rng: random.Random, key, expected, batch_size, env, max_wait):
    """Start `command` again and again, SIGKILL it at a random point, until `trials` kills are done."""
    kills = []
    while len(kills) < trials:
        before = len(batch_files(checkpoint))
        started = time.monotonic()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random moment: some attempts die before any new batch, most after 0-2 new ones
        # plus a random part of the next batch (mid-sampling or mid-write).
        want_new = rng.choice([0, 1, 1, 2])
        while (
            child.poll() is None
            and len(batch_files(checkpoint)) < before + want_new
            and time.monotonic() - started < max_wait
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 1.0))
        if child.poll() is not None:  # finished before we could kill it: start over
            if output.exists():
                shutil.rmtree(output)
                raise RuntimeError("the run finished before all kills were done: use more rows")
            continue
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = check_partial(checkpoint, key, expected, batch_size)
        state.update(after_s=round(time.monotonic() - started, 2), new_batches=len(batch_files(checkpoint)) - before)
        kills.append(state)
        print(f"  kill {len(kills):2d} after {state['after_s']:5.2f}s: {state}", flush=True)
    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    if resumed.returncode != 0:
        raise RuntimeError(f"resume failed: {resumed.stderr[-2000:]}")
    return kills


def pure_trials(trials: int, rows: int, rng: random.Random, work: Path, env: dict) -> dict:
    script = work / "pure_child.py"
    script.write_text(PURE_CHILD)
    checkpoint, output = work / "pure.ckpt", work / "pure.out"
    expected = list(range(rows))
    command = [sys.executable, str(script), str(checkpoint), str(output), str(rows)]
    kills = kill_loop(command, checkpoint, output, trials, rng, "row", expected, 4, env, max_wait=30)
    from datasets import load_from_disk

    result = load_from_disk(str(output))
    got = result["row"]
    hashes_ok = result["h"] == [hashlib.sha256(f"kill-test/{r}".encode()).hexdigest() for r in expected]
    return summary("pure", kills, got, expected, extra={"values_equal_reference": hashes_ok})


def generate_trials(trials: int, rows: int, rng: random.Random, work: Path, env: dict, max_tokens: int) -> dict:
    from datasets import load_from_disk

    args = ["--num-rows", str(rows), "--batch-size", "2", "--seed", "3",
            "--max-instruction-tokens", str(max_tokens), "--max-response-tokens", str(max_tokens)]
    cli = [sys.executable, "-m", "magpie_datasets.cli", "generate", *args]
    reference = work / "gen.reference"
    t0 = time.monotonic()
    subprocess.run([*cli, "--output", str(reference)], env=env, check=True, capture_output=True)
    uninterrupted_s = time.monotonic() - t0
    ref = load_from_disk(str(reference))
    expected = ref["uuid"]
    print(f"  uninterrupted run: {rows} rows in {uninterrupted_s:.1f}s", flush=True)

    checkpoint, output = work / "gen.ckpt", work / "gen.out"
    command = [*cli, "--output", str(output), "--checkpoint-dir", str(checkpoint)]
    kills = kill_loop(command, checkpoint, output, trials, rng, "uuid", expected, 2, env, max_wait=120)
    result = load_from_disk(str(output))
    same = result.to_list() == ref.to_list()
    return summary("generate", kills, result["uuid"], expected,
                   extra={"equal_to_uninterrupted_run": same, "uninterrupted_s": round(uninterrupted_s, 1),
                          "max_tokens": max_tokens})


def summary(name: str, kills: list[dict], got: list, expected: list, extra: dict) -> dict:
    lost = len(set(expected) - set(got))
    duplicated = len(got) - len(set(got))
    ok = (
        lost == 0
        and duplicated == 0
        and got == expected
        and all(k["duplicated"] == 0 and k["misplaced"] == 0 for k in kills)
        and all(extra.get(k, True) for k in ("values_equal_reference", "equal_to_uninterrupted_run"))
    )
    result = {
        "trial_set": name,
        "kills": len(kills),
        "kills_with_progress": sum(k["new_batches"] > 0 for k in kills),
        "rows": len(expected),
        "lost": lost,
        "duplicated": duplicated,
        "duplicated_after_any_kill": sum(k["duplicated"] for k in kills),
        "misplaced_after_any_kill": sum(k["misplaced"] for k in kills),
        "passed": ok,
        **extra,
        "trials": kills,
    }
    print(f"{name}: {len(kills)} kills, lost={lost}, duplicated={duplicated}, passed={ok}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["pure", "generate", "both"], default="both")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--rows", type=int, default=0, help="rows per run (default: 400 pure, 40 generate)")
    parser.add_argument("--max-tokens", type=int, default=8, help="generate: max tokens for steps 1 and 2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    parser.add_argument("--report", default=str(ROOT / "bench" / "kill_test.json"))
    args = parser.parse_args()

    rng = random.Random(args.seed)
    # One torch thread per run: the uninterrupted and the resumed runs then do the same arithmetic,
    # and a shared 2-core machine is not oversubscribed.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results = []
    with tempfile.TemporaryDirectory(prefix="magpie-kill-") as tmp:
        work = Path(tmp)
        if args.mode in ("pure", "both"):
            results.append(pure_trials(args.trials, args.rows or 400, rng, work, env))
        if args.mode in ("generate", "both"):
            results.append(generate_trials(args.trials, args.rows or 40, rng, work, env, args.max_tokens))
    Path(args.report).write_text(json.dumps(results, indent=2))
    print(f"report: {args.report}")
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
