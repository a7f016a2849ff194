"""Peak memory and time of load_corpus on a large corpus, each measured in a fresh child process.

    python benchmarks/data_memory.py                  # ~1 GB corpus in a temp dir, deleted after
    python benchmarks/data_memory.py --size-mb 200 --keep --dir /tmp/charrnn-bench

Children (peak RSS from os.wait4's ru_maxrss, and wall time):
  baseline  import numpy and charrnn.data only
  naive     the peer: read the whole text as one str and Vocab.from_text + encode, on a --naive-mb
            slice (the whole corpus would need ~13 bytes per character)
  cold      load_corpus with an empty cache: two streaming passes + writing the cache entry
  warm      load_corpus again: the (path, size, mtime) index hit, memory-maps the entry
  batches   warm load, split, then --batches (B, T) batches through Batches
Target: every load_corpus child stays under 1.5 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "the of and to in that it is was he for on are as with his they at be this from have or "
    "by one had not but what all were when we there can an your which their said if do will"
).split()
EXTRA = ["café", "naïve", "€5", "漢字", "😀", "Ωmega", "—", "“quoted”", "über", "Straße"]


def make_corpus(path: Path, size: int) -> None:
    """Mixed text: ASCII words with roughly 1 in 40 words multi-byte, ~`size` bytes."""
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = WORDS * 40 + EXTRA
    blocks = []
    for _ in range(8):  # eight distinct ~1 MiB blocks, written round-robin
        words = rng.choice(vocab, size=220_000)
        lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
        blocks.append(("\n".join(lines) + "\n").encode("utf-8"))
    written = 0
    with open(path, "wb") as f:
        i = 0
        while written < size:
            b = blocks[i % len(blocks)]
            f.write(b)
            written += len(b)
            i += 1


def child(mode: str, corpus: str, cache: str, batches: int, batch: int, seq: int) -> None:
    """Runs in the child process; prints one JSON line."""
    t0 = time.perf_counter()
    from charrnn.data import Batches, fit_batch, load_corpus, split_ids

    out: dict = {"import_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    if mode == "naive":
        from charrnn.vocab import Vocab

        text = Path(corpus).read_text(encoding="utf-8")
        vocab = Vocab.from_text(text)
        ids = vocab.encode(text).astype(vocab.dtype)
        out.update(chars=len(ids), vocab=len(vocab))
    elif mode in ("cold", "warm", "batches"):
        c = load_corpus([corpus], cache_dir=Path(cache))
        out.update(chars=len(c), vocab=len(c.vocab), dtype=c.ids.dtype.name)
        if mode == "batches":
            out["load_s"] = time.perf_counter() - t0
            train, _, _ = split_ids(len(c))
            b, t, _ = fit_batch(train.stop - train.start, batch, seq)
            it = Batches(c.ids[train], b, t)
            t0 = time.perf_counter()
            total = 0
            for _ in range(batches):
                x, y, _ = it.next()
                total += int(x[0, 0])
            out.update(batches=batches, batch=b, seq=t, steps_per_epoch=it.steps_per_epoch)
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out))


def run_child(args: argparse.Namespace, mode: str, corpus: Path, cache: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--corpus",
        str(corpus),
        "--cache",
        str(cache),
        "--batches",
        str(args.batches),
        "--batch",
        str(args.batch),
        "--seq",
        str(args.seq),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"child {mode} failed with status {status}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(mode=mode, peak_rss_mb=usage.ru_maxrss / 1024, wall_s=wall)  # KiB on Linux
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mb", type=float, default=1024)
    p.add_argument("--naive-mb", type=float, default=64)
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="reuse/keep the generated corpus")
    p.add_argument("--batches", type=int, default=5000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seq", type=int, default=100)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    p.add_argument("--bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "make":
        make_corpus(Path(args.corpus), args.bytes)
        return
    if args.child:
        child(args.child, args.corpus, args.cache, args.batches, args.batch, args.seq)
        return

    work = args.dir or Path(tempfile.mkdtemp(prefix="charrnn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus, small = work / "big.txt", work / "naive.txt"
    cache = work / "cache"
    try:
        size = int(args.size_mb * 2**20)
        if not (args.keep and corpus.exists() and corpus.stat().st_size >= size):
            # in a child: a child's ru_maxrss starts at its parent's size, so keep the parent small
            t0 = time.perf_counter()
            cmd = [sys.executable, __file__, "--child", "make", "--corpus", str(corpus)]
            subprocess.run([*cmd, "--bytes", str(size)], check=True)
            print(
                f"generated {corpus.stat().st_size / 2**20:.0f} MiB in "
                f"{time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
        with open(corpus, "rb") as src, open(small, "wb") as dst:
            dst.write(src.read(int(args.naive_mb * 2**20)))
        shutil.rmtree(cache, ignore_errors=True)
        mb = corpus.stat().st_size / 2**20
        rows = [run_child(args, "baseline", corpus, cache)]
        rows.append(run_child(args, "naive", small, cache))
        rows += [run_child(args, m, corpus, cache) for m in ("cold", "warm", "batches")]
        print(
            f"corpus: {mb:.0f} MiB, {rows[2]['chars']:,} chars, vocab {rows[2]['vocab']}, "
            f"ids {rows[2]['dtype']}"
        )
        print(f"{'child':<9} {'peak RSS MB':>12} {'seconds':>9}  note")
        for r in rows:
            note = ""
            if r["mode"] == "naive":
                per_mb = (r["peak_rss_mb"] - rows[0]["peak_rss_mb"]) / args.naive_mb
                note = (
                    f"{args.naive_mb:.0f} MiB slice: {per_mb:.1f} MB RSS per MiB of text, "
                    f"{args.naive_mb / r['seconds']:.0f} MiB/s"
                )
            elif r["mode"] == "cold":
                note = f"{mb / r['seconds']:.0f} MiB/s"
            elif r["mode"] == "batches":
                note = (
                    f"{r['batches']} batches of {r['batch']}x{r['seq']}: "
                    f"{r['batches'] / r['seconds']:,.0f} batches/s"
                )
            print(f"{r['mode']:<9} {r['peak_rss_mb']:>12.0f} {r['seconds']:>9.2f}  {note}")
        naive, cold, base = rows[1], rows[2], rows[0]["peak_rss_mb"]
        time_ratio = (cold["seconds"] / mb) / (naive["seconds"] / args.naive_mb)
        naive_full = base + (naive["peak_rss_mb"] - base) * mb / args.naive_mb
        print(
            f"cold load vs naive peer: {time_ratio:.2f}x the time per MiB, peak RSS "
            f"{cold['peak_rss_mb']:.0f} MB vs ~{naive_full:.0f} MB (extrapolated)"
        )
        worst = max(r["peak_rss_mb"] for r in rows[2:])
        print(f"target peak RSS < 1536 MB: {'met' if worst < 1536 else 'MISSED'} ({worst:.0f} MB)")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        small.unlink(missing_ok=True)
        if not args.keep:
            corpus.unlink(missing_ok=True)
            if args.dir is None:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
