"""Scoring speed of `charrnn eval` against training speed of the same model, in the same run.

    python benchmarks/eval_throughput.py                      # 2x256 LSTM, V=65, 3 rounds
    python benchmarks/eval_throughput.py --rounds 5 --chars 300000 --hidden 512

peer    training: loss_and_grad + clip + Adam step at B=50, T=100 (chars/s = B*T / step time),
        with the threads training uses (all cores)
eval-1  exact scoring at batch 1, one thread: chunks through CharRNN.nll, state carried
eval-N  exact scoring at batch 1 with the layer pipeline on all cores (what `charrnn eval` does)
eval-S  the approximate mode `charrnn eval --streams S --burn-in W`: S segments as one batch,
        each after W unscored characters of context; its nats/char differ from the exact
        figure by what the state remembers from before the burn-in (printed)

The rounds interleave the three, and each figure is the median over rounds, so a burst of
load from elsewhere on the machine hits all of them alike. Target: eval-N >= 3x peer.
Text: the first --chars characters of ../shared/corpora/tinyshakespeare.txt (V=65) when present,
else random ids.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".numba_cache")
)

import numpy as np  # noqa: E402

from charrnn.config import ModelConfig, TrainConfig  # noqa: E402
from charrnn.cpus import cpu_count  # noqa: E402
from charrnn.evaluate import score_ids  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402
from charrnn.optim import clip_gradients, make_optimizer  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parent.parent.parent / "shared/corpora/tinyshakespeare.txt"


def text_ids(n: int, vocab: int) -> tuple[np.ndarray, str]:
    if SHAKESPEARE.exists() and vocab == 65:
        from charrnn.vocab import Vocab

        text = SHAKESPEARE.read_text(encoding="utf-8")
        v = Vocab.from_text(text)
        if len(v) == vocab:
            return v.encode(text[:n]).astype(np.uint8), "tinyshakespeare"
    rng = np.random.default_rng(1)
    return rng.integers(0, vocab, n).astype(np.uint16), "random ids"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--chars", type=int, default=200_000, help="characters scored per round")
    ap.add_argument("--steps", type=int, default=8, help="training steps timed per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--streams", type=int, default=16, help="S of the approximate mode")
    ap.add_argument("--burn-in", type=int, default=1000, help="W of the approximate mode")
    args = ap.parse_args()

    cfg = ModelConfig(cell=args.cell, vocab_size=args.vocab, hidden=args.hidden, layers=args.layers)
    model = CharRNN.create(cfg, np.random.default_rng(0))
    cores = cpu_count()
    ids, source = text_ids(args.chars + 1, args.vocab)

    B, T = 50, 100
    train_cfg = TrainConfig(batch=B, seq=T)
    opt = make_optimizer(train_cfg, model.flat.size, model.flat.dtype)
    rng = np.random.default_rng(2)
    batch = rng.integers(0, args.vocab, (B, T + 1)).astype(np.int32)
    x, y = batch[:, :-1], batch[:, 1:]

    def train_round() -> float:
        model.set_threads(0)
        state = model.zero_state(B)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            res = model.loss_and_grad(x, y, state)
            clip_gradients(res.grad_flat, train_cfg.clip, train_cfg.clip_mode)
            opt.step(model.flat, res.grad_flat, 1e-9)  # a tiny lr: the model stays the same
            times.append(time.perf_counter() - t0)
            state = res.state
        return B * T / statistics.median(times)

    def eval_round(threads: int, streams: int = 1) -> tuple[float, float]:
        model.set_threads(threads)
        s = score_ids(
            model, ids, chunk=args.chunk, threads=threads, streams=streams, burn_in=args.burn_in
        )
        return s.chars_per_second, s.nats_per_char

    # warm up: compile / load every kernel once
    train_round()
    eval_round(1)
    eval_round(cores)
    eval_round(cores, args.streams)

    peer, one, many, seg, nats = [], [], [], [], []
    for r in range(args.rounds):
        peer.append(train_round())
        cps1, n1 = eval_round(1)
        cpsn, nn = eval_round(cores)
        cpss, ns = eval_round(cores, args.streams)
        one.append(cps1)
        many.append(cpsn)
        seg.append(cpss)
        nats.append((n1, nn, ns))
        print(
            f"round {r + 1}: train {peer[-1]:9,.0f}  eval-1 {cps1:9,.0f}  eval-{cores} "
            f"{cpsn:9,.0f}  eval-S{args.streams} {cpss:9,.0f} chars/s"
        )
    p, e1, en, es = (statistics.median(v) for v in (peer, one, many, seg))
    n1, nn, ns = nats[-1]
    print(
        f"\n{cfg.cell} {cfg.layers}x{cfg.hidden} V={cfg.vocab_size}, {cores} cores, "
        f"{args.chars:,} chars of {source}, chunk {args.chunk}, median of {args.rounds} rounds"
    )
    rows = [
        ("training (B=50 T=100, loss_and_grad + clip + adam)", p),
        ("eval, 1 thread (CharRNN.nll)", e1),
        (f"eval, {cores} threads (layer pipeline)", en),
        (f"eval, --streams {args.streams} --burn-in {args.burn_in} (approximate)", es),
    ]
    for i, (label, cps) in enumerate(rows):
        ratio = f"  {cps / p:5.2f}x" if i else ""
        print(f"  {label:<54}{cps:10,.0f} chars/s{ratio}")
    print(f"  nats/char: 1 thread {n1:.7f}, {cores} threads {nn:.7f} (|diff| {abs(n1 - nn):.1e})")
    print(f"  nats/char with --streams: {ns:.7f} (|diff| from exact {abs(ns - n1):.1e})")
    print(f"  load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
