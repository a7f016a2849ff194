"""The best model per minute: charrnn's defaults against two PyTorch peers, same text, same
cores, same minutes, one after the other (nothing else may run on the machine).

For each budget, in this order:
  charrnn   `charrnn train CORPUS --max-time M --threads N`, nothing else: the model its rule
            picks for the budget and this machine; scored with `charrnn eval` (best checkpoint)
  lstm      PyTorch nn.LSTM trained with the recipe charrnn chose (size, dropout, optimizer,
            schedule, batch, clip; best-validation weights kept): peers/torch_lstm.py
  gpt       a small GPT with nanoGPT's documented CPU recipe for shakespeare_char: peers/gpt.py
All three are scored on the same held-out text: charrnn's test split (the corpus's last 5 %)
and the last 10 % (nanoGPT's validation split), in nats/char; the margins are against charrnn.
`above best` is the share of the run's evaluations (by time) at which charrnn's val loss sat more
than 0.02 above its best so far.

Benchmarks run with numpy's own BLAS kernel choice: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are
removed from the environment of every run (a user's machine does not set them).

    python benchmarks/quality_vs_peers.py --minutes 2,5,10,30 --threads 2
    python benchmarks/quality_vs_peers.py --minutes 10 --threads 1 --only charrnn,gpt
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host import CORPUS, ROOT, clean_env, host_kind  # noqa: F401  (host_kind: quality_sweep)

RESULTS = ROOT / "benchmarks" / "results" / "quality_vs_peers.jsonl"
RECIPE_FIELDS = (
    "hidden", "layers", "dropout", "weight_drop", "lr", "optimizer", "weight_decay", "betas",
    "batch", "seq", "clip", "schedule", "warmup_steps", "min_lr_ratio",
)  # fmt: skip


def above_best(records: list[dict], tolerance: float = 0.02) -> float:
    """Share of the run's time (between evaluations) with val loss > best so far + tolerance."""
    best, above, last = float("inf"), 0.0, 0.0
    for r in records:
        t, v = r["elapsed"], r["val_loss"]
        if v is None:
            continue
        if v > best + tolerance:
            above += t - last
        best = min(best, v)
        last = t
    return above / last if last else 0.0


def last10_file(corpus: Path, folder: Path) -> Path:
    """folder/last10.txt: the corpus's last 10 % (nanoGPT's validation split of
    tinyshakespeare)."""
    text = corpus.read_text(encoding="utf-8")
    out = folder / "last10.txt"
    out.write_text(text[int(len(text) * 0.9) :], encoding="utf-8")
    return out


def charrnn_eval(ckpt: Path, *text: str) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "charrnn", "eval", *text, "-c", str(ckpt), "--json"],
        capture_output=True, text=True, env=clean_env(), check=True,
    ).stdout  # fmt: skip
    return json.loads(out.splitlines()[0])["nats_per_char"]


def run_charrnn(
    minutes: float, threads: int, corpus: Path, last10: Path, work: Path, flags=()
) -> dict:
    """`charrnn train` for `minutes` (defaults, or `flags`), its best checkpoint scored."""
    out = work / "charrnn"
    log = work / "charrnn.jsonl"
    cmd = [
        sys.executable, "-m", "charrnn", "train", str(corpus), "--max-time", f"{minutes * 60:g}s",
        "--threads", str(threads), "--quiet", "--out", str(out), "--name", "q",
        "--log-jsonl", str(log), *flags,
    ]  # fmt: skip
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0:
        raise SystemExit(f"charrnn train failed: {proc.stderr.strip()[-400:]}")
    wall = time.time() - t0
    best = out / "q-best.npz"
    import numpy as np

    with np.load(best, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    model, train = meta["model_config"], meta["train_config"]
    recipe = {k: model.get(k, train.get(k)) for k in RECIPE_FIELDS}
    chosen = [line for line in proc.stderr.splitlines() if "chosen for the budget" in line]
    return {
        "system": "charrnn",
        "recipe": recipe,
        "chosen": chosen[0].removeprefix("charrnn: ") if chosen else None,
        "sizing": meta.get("sizing"),
        "flags": list(flags),
        "steps": records[-1]["step"],
        "epochs": round(records[-1]["epoch"], 2),
        "chars_per_second": round(records[-1]["chars_per_second"]),
        "wall_seconds": round(wall, 1),
        "best_val": round(min(r["val_loss"] for r in records if r["val_loss"] is not None), 4),
        "final_train": round(records[-1]["train_loss"], 4),
        "above_best": round(above_best(records), 3),
        "test": charrnn_eval(best),
        "last10": charrnn_eval(best, str(last10)),
        "history": [(round(r["elapsed"], 1), r["step"], round(r["val_loss"], 4)) for r in records],
    }


def run_peer(script: str, minutes: float, threads: int, corpus: Path, extra: list[str]) -> dict:
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "peers" / script), "--corpus", str(corpus),
        "--minutes", f"{minutes:g}", "--threads", str(threads), *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed: {proc.stderr.strip()[-600:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def table(rows: list[dict], minutes: float, threads: int, host: str) -> str:
    ours = next(r for r in rows if r["system"] == "charrnn")
    lines = [
        f"\n{minutes:g} min, {threads} thread(s), {host}",
        f"{'system':<14} {'chars/s':>9} {'best val':>9} {'last 5 %':>9} {'margin':>8} "
        f"{'last 10 %':>9} {'margin':>8}",
    ]
    for r in rows:
        m5 = "" if r is ours else f"{r['test'] - ours['test']:+.4f}"
        m10 = "" if r is ours else f"{r['last10'] - ours['last10']:+.4f}"
        lines.append(
            f"{r['system']:<14} {r['chars_per_second']:>9,} {r['best_val']:>9.4f} "
            f"{r['test']:>9.4f} {m5:>8} {r['last10']:>9.4f} {m10:>8}"
        )
    lines.append(f"charrnn: {ours['chosen']}; val above its best +0.02 for "
                 f"{100 * ours['above_best']:.0f} % of the run")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", default="2,5,10,30", help="comma-separated budgets")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--only", default="charrnn,lstm,gpt")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSONL file to append to")
    args = ap.parse_args()
    if not args.corpus.exists():
        raise SystemExit(f"corpus not found: {args.corpus}")
    systems = args.only.split(",")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: the PyTorch peers are skipped "
              "(pip install torch==2.13.0 for the CPU build)", file=sys.stderr)  # fmt: skip
        systems = [s for s in systems if s == "charrnn"]
    host = host_kind()
    print(f"# {host}; {args.corpus.name}", flush=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        last10 = last10_file(args.corpus, tmp)
        for minutes in (float(m) for m in args.minutes.split(",")):
            rows = [run_charrnn(minutes, args.threads, args.corpus, last10, tmp / f"{minutes:g}")]
            recipe = json.dumps(rows[0]["recipe"])
            if "lstm" in systems:
                rows.append(run_peer("torch_lstm.py", minutes, args.threads, args.corpus,
                                     ["--recipe", recipe]))  # fmt: skip
            if "gpt" in systems:
                rows.append(run_peer("gpt.py", minutes, args.threads, args.corpus, []))
            print(table(rows, minutes, args.threads, host), flush=True)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with open(args.results, "a", encoding="utf-8") as f:
                stamp = time.strftime("%Y-%m-%d %H:%M")
                for r in rows:
                    r.update(minutes=minutes, threads=args.threads, host=host, date=stamp)
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
