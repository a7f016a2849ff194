"""The sweep behind the defaults: for each time budget, the size charrnn's rule picks on this
machine and its neighbours on the ladder, each trained for the same minutes, one after the other
(nothing else may run on the machine), scored on the held-out text.

For each budget and thread count: run `charrnn train CORPUS --max-time M --threads N` (the
rule's pick, read back from its first line), then the ladder rung below and above it, pinned
with --layers/--hidden and the dropout the rule gives that size (`budget.choose`). Each is
scored with `charrnn eval` on the test split (last 5 %) and on the last 10 %. A rule that sizes
well has its pick scoring lowest of the three.

    python benchmarks/quality_sweep.py --minutes 2,5,10 --threads 2
    python benchmarks/quality_sweep.py --minutes 10 --threads 1 --only pick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from quality_vs_peers import CORPUS, ROOT, host_kind, run_charrnn

sys.path.insert(0, str(ROOT))

from charrnn import budget  # noqa: E402
from charrnn.config import ModelConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quality_sweep.jsonl"


def neighbours(pick: dict, vocab: int) -> list[tuple[str, list[str]]]:
    """The rungs below and above the pick, pinned with the dropout the rule gives them for the
    same budget and measured speed (`budget.choose` with the rung's size)."""
    rung = (pick["layers"], pick["hidden"])
    i = budget.LADDER.index(rung)
    out = []
    for label, j in (("smaller", i - 1), ("larger", i + 1)):
        if 0 <= j < len(budget.LADDER):
            layers, hidden = budget.LADDER[j]
            c = budget.choose(
                ModelConfig(cell="lstm", vocab_size=vocab),
                train_chars=pick["train_chars"],
                seconds=pick["seconds"],
                gflops=pick["gflops"],
                layers=layers,
                hidden=hidden,
            )
            flags = [
                "--layers",
                str(layers),
                "--hidden",
                str(hidden),
                "--dropout",
                f"{c.dropout:g}",
            ]
            out.append((f"{label} {layers}×{hidden} d{c.dropout:g}", flags))
    return out


def reused(results: Path | None, minutes: float, threads: int, host: str) -> dict | None:
    """The latest charrnn row of a quality_vs_peers.py results file for this budget and host."""
    if results is None or not results.exists():
        return None
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    rows = [
        r
        for r in rows
        if r.get("system") == "charrnn"
        and r.get("minutes") == minutes
        and r.get("threads") == threads
        and r.get("host") == host
    ]
    return rows[-1] if rows else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", default="2,5,10")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--only", default="pick,smaller,larger")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="take the pick from this quality_vs_peers.py results file (its charrnn row for the "
        "same minutes, threads and host, the latest) instead of training it again",
    )
    args = ap.parse_args()
    host = host_kind()
    print(f"# {host}; {args.corpus.name}", flush=True)
    text = args.corpus.read_text(encoding="utf-8")
    vocab = len(set(text))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        last10 = tmp / "last10.txt"
        last10.write_text(text[int(len(text) * 0.9) :], encoding="utf-8")
        for minutes in (float(m) for m in args.minutes.split(",")):
            work = tmp / f"{minutes:g}"
            pick = reused(args.reuse, minutes, args.threads, host)
            if pick is None:
                pick = run_charrnn(minutes, args.threads, args.corpus, last10, work / "pick")
                rows = [("pick", pick)]
            else:
                rows = [("pick (from quality_vs_peers)", pick)]
            sizing = pick["sizing"]
            for label, flags in neighbours(sizing, vocab):
                if label.split()[0] in args.only:
                    r = run_charrnn(
                        minutes, args.threads, args.corpus, last10, work / label[:7], flags
                    )
                    rows.append((label, r))
            print(f"\n{minutes:g} min, {args.threads} thread(s): {pick['chosen']}")
            for label, r in rows:
                rec = r["recipe"]
                print(
                    f"  {label:<22} {rec['layers']}×{rec['hidden']} d{rec['dropout']:g}  "
                    f"{r['chars_per_second']:>8,} chars/s  {r['epochs']:>6.2f} epochs  best val "
                    f"{r['best_val']:.4f}  last 5 % {r['test']:.4f}  last 10 % "
                    f"{r['last10']:.4f}  above best {100 * r['above_best']:.0f} %",
                    flush=True,
                )
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with open(args.results, "a", encoding="utf-8") as f:
                stamp = time.strftime("%Y-%m-%d %H:%M")
                for label, r in rows:
                    r.update(role=label, minutes=minutes, threads=args.threads, host=host)
                    r["date"] = stamp
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
