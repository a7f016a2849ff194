"""Recipe exploration without timing noise: candidates trained for the same number of steps,
two at a time (one per core, `--threads 1`), each scored on the held-out text.

A budget's steps are those a time-budgeted run reached on this machine (read them from its
log), so every candidate sees the characters the budget buys at the baseline's speed; a
candidate slower per step than the baseline must have its steps scaled down by hand. The wall
time printed is not a budget (single thread, beside another run).

    python benchmarks/explore_fixed_steps.py --steps 7345 --out results/explore.jsonl \\
        'wd25=--layers 2 --hidden 384 --dropout 0.3 --weight-drop 0.25' \\
        'wd50=--layers 2 --hidden 384 --dropout 0.2 --weight-drop 0.5'
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host import CORPUS, clean_env, host_kind
from quality_vs_peers import charrnn_eval, last10_file


def one(name: str, flags: str, steps: int, corpus: Path, last10: Path, work: Path) -> dict:
    out, log = work / name, work / f"{name}.jsonl"
    cmd = [
        sys.executable, "-m", "charrnn", "train", str(corpus), "--steps", str(steps),
        "--threads", "1", "--quiet", "--out", str(out), "--name", "x", "--log-jsonl", str(log),
        *shlex.split(flags),
    ]  # fmt: skip
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed: {proc.stderr.strip()[-400:]}")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    vals = [r["val_loss"] for r in records if r["val_loss"] is not None]
    best = min(vals)
    best_ckpt = out / "x-best.npz"
    return {
        "name": name,
        "flags": flags,
        "steps": steps,
        "wall": round(time.time() - t0),
        "best_val": round(best, 4),
        "best_at": round((vals.index(best) + 1) / len(vals), 2),
        "final_val": round(vals[-1], 4),
        "final_train": round(records[-1]["train_loss"], 4),
        "test5": charrnn_eval(best_ckpt),
        "last10": charrnn_eval(best_ckpt, str(last10)),
        "curve": [round(v, 3) for v in vals],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("candidates", nargs="+", help="NAME=FLAGS for charrnn train")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--out", type=Path, required=True, help="JSONL file to append rows to")
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args()
    host = host_kind()
    print(f"# {host}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        last10 = last10_file(args.corpus, work)
        jobs = [c.split("=", 1) for c in args.candidates]
        with ThreadPoolExecutor(args.parallel) as pool:
            futures = [
                pool.submit(one, n, f, args.steps, args.corpus, last10, work) for n, f in jobs
            ]
            for fut in futures:
                row = fut.result() | {"threads": 1, "host": host}
                with args.out.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(
                    f"{row['name']:<12} best val {row['best_val']:.4f} ({row['best_at']:.0%}) "
                    f"final {row['final_val']:.4f} train {row['final_train']:.4f} "
                    f"test5 {row['test5']:.4f} last10 {row['last10']:.4f} {row['wall']} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
