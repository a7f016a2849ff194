"""Scoring speed of `charrnn eval` against training speed of the same model, in the same run.

    python benchmarks/eval_throughput.py                      # 2x256 LSTM, V=65, 3 rounds
    python benchmarks/eval_throughput.py --rounds 5 --chars 300000 --hidden 512

peer    training: loss_and_grad + clip + Adam step at B=50, T=100 (chars/s = B*T / step time),
        with the threads training uses (all cores)
single  the single pass (`charrnn eval --streams 1`): batch 1, one core, state carried
eval    what `charrnn eval` does: S segments side by side on all cores, each checked against
        the state carried into it (charrnn/evaluate.py); its nats/char next to the single
        pass's, and the characters it had to recompute, are printed

The rounds interleave the three: each eval run sits between two training runs and its ratio is
taken to their mean, so a slow or fast phase of the host hits both sides alike; the ratio
printed is the median of the rounds' ratios. Target: eval >= 3x peer.
Text: the first --chars characters of ../shared/corpora/tinyshakespeare.txt (V=65) when present,
else random ids. --checkpoint scores a trained model instead of a random one (a random model
forgets at once; a trained one is the honest test of the segments' check).
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
from charrnn.evaluate import DEFAULT_BURN_IN, score_ids  # noqa: E402
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
    ap.add_argument("--steps", type=int, default=6, help="training steps per training run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--streams", type=int, default=0, help="S (0: as charrnn eval)")
    ap.add_argument("--burn-in", type=int, default=DEFAULT_BURN_IN, help="burn-in of each segment")
    ap.add_argument("--checkpoint", type=Path, help="a trained model (its config is used)")
    args = ap.parse_args()

    if args.checkpoint:
        from charrnn.evaluate import load_model

        model = load_model(args.checkpoint)[1]
        cfg = model.config
    else:
        cfg = ModelConfig(
            cell=args.cell, vocab_size=args.vocab, hidden=args.hidden, layers=args.layers
        )
        model = CharRNN.create(cfg, np.random.default_rng(0))
    cores = cpu_count()
    ids, source = text_ids(args.chars + 1, cfg.vocab_size)

    B, T = 50, 100
    train_cfg = TrainConfig(batch=B, seq=T)
    opt = make_optimizer(train_cfg, model.flat.size, model.flat.dtype)
    rng = np.random.default_rng(2)
    batch = rng.integers(0, cfg.vocab_size, (B, T + 1)).astype(np.int32)
    x, y = batch[:, :-1], batch[:, 1:]

    def train_round() -> float:
        model.set_threads(0)
        state = model.zero_state(B)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            res = model.loss_and_grad(x, y, state, rng=rng)
            clip_gradients(res.grad_flat, train_cfg.clip, train_cfg.clip_mode)
            opt.step(model.flat, res.grad_flat, 1e-9)  # a tiny lr: the model stays the same
            times.append(time.perf_counter() - t0)
            state = res.state
        return B * T / statistics.median(times)

    def eval_round(streams: int):
        return score_ids(
            model, ids, chunk=args.chunk, threads=0, streams=streams, burn_in=args.burn_in
        )

    # warm up: compile / load every kernel once
    train_round()
    eval_round(1)
    eval_round(args.streams)

    # each eval run sits between two training runs and is compared with their mean, so a
    # slow or fast phase of the host hits both sides of a ratio alike
    peer, single, fast, r_single, r_fast = [], [], [], [], []
    before = train_round()
    for r in range(args.rounds):
        seg = eval_round(args.streams)
        middle = train_round()
        one = eval_round(1)
        after = train_round()
        peer += [before, middle, after]
        single.append(one.chars_per_second)
        fast.append(seg.chars_per_second)
        r_fast.append(fast[-1] / ((before + middle) / 2))
        r_single.append(single[-1] / ((middle + after) / 2))
        print(
            f"round {r + 1}: train {before:7,.0f} / {middle:7,.0f} / {after:7,.0f}  "
            f"eval {fast[-1]:7,.0f} ({r_fast[-1]:.2f}x)  "
            f"single pass {single[-1]:7,.0f} ({r_single[-1]:.2f}x) chars/s"
        )
        before = after
    p, e1, es = (statistics.median(v) for v in (peer, single, fast))
    print(
        f"\n{cfg.cell} {cfg.layers}x{cfg.hidden} V={cfg.vocab_size}"
        f"{' (' + str(args.checkpoint) + ')' if args.checkpoint else ' (random weights)'}, "
        f"{cores} cores, {args.chars:,} chars of {source}; medians of {args.rounds} rounds "
        f"(ratio: the median of each round's ratio to the training runs beside it)"
    )
    rows = [
        ("training (B=50 T=100, loss_and_grad + clip + adam)", p, None),
        ("eval --streams 1 (the single pass, one core)", e1, r_single),
        (f"eval ({seg.streams} segments, burn-in {seg.burn_in}, checked)", es, r_fast),
    ]
    for label, cps, ratios in rows:
        ratio = f"  {statistics.median(ratios):5.2f}x" if ratios else ""
        print(f"  {label:<54}{cps:10,.0f} chars/s{ratio}")
    rel = abs(seg.nats_per_char / one.nats_per_char - 1)
    print(
        f"  nats/char: single pass {one.nats_per_char:.10f}, segments {seg.nats_per_char:.10f} "
        f"(relative difference {rel:.1e}); recomputed {seg.recomputed:,} chars; largest state "
        f"gap accepted {seg.state_gap:.1e}"
    )
    print(f"  load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
