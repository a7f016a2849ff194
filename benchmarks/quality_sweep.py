"""Validation loss against wall-clock time for candidate training settings.

Runs `charrnn train` on tinyshakespeare (or --corpus) with a time budget for each candidate, one
after the other (nothing else should run on the machine), and prints val loss (nats/char) at 2, 5
and 10 minutes of wall time from process start, read from the JSONL log. With --torch, also runs
the PyTorch anchor (2x256 LSTM, Adam 2e-3, B50 T100, clip 5) on the same split in the same run.

    python benchmarks/quality_sweep.py --minutes 10 --only default
    python benchmarks/quality_sweep.py --minutes 4 --only h256,h384d2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"

CANDIDATES: dict[str, list[str]] = {
    "default": [],
    "h256d1cos": ["--hidden", "256", "--dropout", "0.1", "--lr", "3e-3", "--schedule", "cosine"],
    "h384d2cos": ["--hidden", "384", "--dropout", "0.2", "--lr", "3e-3", "--schedule", "cosine"],
    "h256t50d1cos": [
        "--hidden",
        "256",
        "--seq",
        "50",
        "--dropout",
        "0.1",
        "--lr",
        "3e-3",
        "--schedule",
        "cosine",
    ],
    "h128t50": ["--hidden", "128", "--seq", "50", "--lr", "3e-3"],
    "h256": ["--hidden", "256"],
}
MARKS = (2, 5, 10)


def val_at(records: list[dict], t0: float, minutes: float) -> float | None:
    """The last val loss logged at or before `minutes` of wall time since t0."""
    best = None
    for r in records:
        if r["time"] - t0 <= minutes * 60 and r["val_loss"] is not None:
            best = r["val_loss"]
    return best


def run_charrnn(name: str, flags: list[str], minutes: float, corpus: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "charrnn",
            "train",
            str(corpus),
            "--quiet",
            "--out",
            tmp,
            "--max-time",
            f"{minutes * 60:.0f}s",
            "--log-jsonl",
            str(log),
            *flags,
        ]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"name": name, "error": proc.stderr.strip().splitlines()[-1:]}
        records = [json.loads(line) for line in log.read_text().splitlines()]
    final = records[-1]
    return {
        "name": name,
        "flags": " ".join(flags) or "(defaults)",
        **{f"val@{m}m": val_at(records, t0, m) for m in MARKS if m <= minutes},
        "final_val": final["val_loss"],
        "best_val": min(r["val_loss"] for r in records if r["val_loss"] is not None),
        "final_train": final["train_loss"],
        "chars_per_second": final["chars_per_second"],
        "steps": final["step"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--only", default="", help="comma-separated candidate names")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--json", action="store_true", help="one JSON object per candidate")
    args = ap.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus}")
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    print(f"# {args.corpus.name}, {args.minutes:g} min each, host cpus: {os.cpu_count()}")
    for name in names:
        result = run_charrnn(name, CANDIDATES[name], args.minutes, args.corpus)
        print(json.dumps(result) if args.json else result, flush=True)


if __name__ == "__main__":
    main()
