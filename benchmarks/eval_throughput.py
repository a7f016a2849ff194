"""Scoring speed of `charrnn eval` against training speed of the same model, in the same run.

    python benchmarks/eval_throughput.py                   # a random and a trained 2x256 LSTM
    python benchmarks/eval_throughput.py --rounds 5 --models trained
    python benchmarks/eval_throughput.py --checkpoint CKPT --chars 200000

Models (--models, default random,trained; or --checkpoint):
  random   a 2x256 LSTM with PyTorch's initialisation: it forgets within a few hundred
           characters, so segments guessed side by side agree with the carried state
  trained  a 2x256 LSTM (dropout 0.1, as the default recipe) trained on tinyshakespeare for
           --train-minutes (3) with `charrnn train --layers 2 --hidden 256 --dropout 0.1
           --max-time 3m`, its best checkpoint (the lowest validation loss of the run):
           trained once and cached in benchmarks/.cache/ (delete the folder to train again)
Text: tinyshakespeare's test split (its last 5 %, 55,769 characters, never seen in training),
or its first --chars characters (or random ids when the corpus is missing).

Measured, for each model:
  peer      training: loss_and_grad + clip + Adam step at B=50, T=100 (chars/s = B*T / step
            time), with the threads training uses (all cores)
  eval      what `charrnn eval` does by default: the split single pass, a guess riding along it
            to measure how fast the model forgets, then segments side by side if it forgets
            fast enough (charrnn/evaluate.py); how it went is printed (`measured`, segments,
            burn-in, characters recomputed)
  single    `charrnn eval --streams 1`: the single pass, each layer's units split over the cores
  one core  `charrnn eval --streams 1 --threads 1`: the same pass on one core
The rounds interleave them: each eval run sits between two training runs and its ratio is taken
to their mean, so a slow or fast phase of the host hits both sides alike; the ratio printed is
the median of the rounds' ratios. Targets: eval >= single pass on every model, and >= 2x
training on the trained one.

The benchmark runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (see host.py) and prints the
host kind and BLAS kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from host import CORPUS, ROOT, clean_env, host_kind, reexec_clean

reexec_clean()
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from charrnn.config import ModelConfig, TrainConfig  # noqa: E402
from charrnn.cpus import cpu_count  # noqa: E402
from charrnn.evaluate import load_model, score_ids  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402
from charrnn.optim import clip_gradients, make_optimizer  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
RECIPE = ["--layers", "2", "--hidden", "256", "--dropout", "0.1"]


def trained_checkpoint(minutes: float) -> Path:
    """The trained model's best checkpoint, trained now if the cache has none for this recipe."""
    import hashlib

    digest = hashlib.sha256(CORPUS.read_bytes()).hexdigest()[:12]
    folder = CACHE / f"trained-{digest}-{'_'.join(RECIPE).replace('--', '')}-{minutes:g}m"
    best = folder / "trained-best.npz"
    if best.exists():
        return best
    folder.mkdir(parents=True, exist_ok=True)
    print(f"training the model to score, {minutes:g} minutes (cached in {folder}) ...", flush=True)
    cmd = [sys.executable, "-m", "charrnn", "train", str(CORPUS), *RECIPE, "--max-time",
           f"{minutes * 60:g}s", "--out", str(folder), "--name", "trained", "--quiet",
           "--force"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0 or not best.exists():
        raise SystemExit(f"charrnn train failed: {proc.stderr.strip()[-400:]}")
    return best


def describe(path: Path) -> str:
    """A checkpoint's model, training steps and best validation loss, in a few words."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    cfg = meta["model_config"]
    best = meta.get("best_val_loss")
    return (
        f"{cfg['cell']} {cfg['layers']}x{cfg['hidden']} trained {meta.get('step')} steps "
        f"({meta.get('elapsed_seconds', 0):.0f} s), best val {best:.4f} nats/char at step "
        f"{meta.get('best_step')} ({path})"
    )


def text_ids(chars: int, vocab: int) -> tuple[np.ndarray, str]:
    """The test split (chars 0) or the first `chars` characters of tinyshakespeare."""
    if CORPUS.exists() and vocab == 65:
        from charrnn.data import split_ids
        from charrnn.vocab import Vocab

        text = CORPUS.read_text(encoding="utf-8")
        v = Vocab.from_text(text)
        if len(v) == vocab:
            ids = v.encode(text).astype(np.uint8)
            if chars:
                return ids[: chars + 1], f"the first {chars:,} characters of tinyshakespeare"
            test = split_ids(len(ids), 0.05, 0.05)[2]
            n = test.stop - test.start - 1
            return ids[test], f"tinyshakespeare's test split ({n:,} characters scored)"
    rng = np.random.default_rng(1)
    return rng.integers(0, vocab, (chars or 55_769) + 1).astype(np.uint16), "random ids"


def bench(model: CharRNN, label: str, args) -> None:
    cfg = model.config
    ids, source = text_ids(args.chars, cfg.vocab_size)
    B, T = 50, 100
    train_cfg = TrainConfig(batch=B, seq=T)
    opt = make_optimizer(train_cfg, model.flat.size, model.flat.dtype)
    rng = np.random.default_rng(2)
    batch = rng.integers(0, cfg.vocab_size, (B, T + 1)).astype(np.int32)
    x, y = batch[:, :-1], batch[:, 1:]
    weights = model.flat.copy()

    def train_round() -> float:
        model.set_threads(0)
        state = model.zero_state(B)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            res = model.loss_and_grad(x, y, state, rng=rng)
            clip_gradients(res.grad_flat, train_cfg.clip, train_cfg.clip_mode)
            opt.step(model.flat, res.grad_flat, 1e-9)  # a tiny lr ...
            times.append(time.perf_counter() - t0)
            state = res.state
        model.flat[:] = weights  # ... and the weights put back: the model scored stays the same
        return B * T / statistics.median(times)

    runs = {
        "eval": lambda: score_ids(model, ids, threads=0),
        "single": lambda: score_ids(model, ids, threads=0, streams=1),
        "one core": lambda: score_ids(model, ids, threads=1, streams=1),
    }
    train_round()  # warm up: compile / load every kernel once
    for run in runs.values():
        run()
    peer, rates = [], {k: [] for k in runs}
    ratios = {k: [] for k in runs}
    results = {}
    before = train_round()
    for r in range(args.rounds):
        line = []
        for name, run in runs.items():
            results[name] = run()
            after = train_round()
            peer += [before, after]
            rates[name].append(results[name].chars_per_second)
            ratios[name].append(rates[name][-1] / ((before + after) / 2))
            line.append(f"{name} {rates[name][-1]:7,.0f} ({ratios[name][-1]:.2f}x)")
            before = after
        print(f"  round {r + 1}: " + "  ".join(line), flush=True)
    e, one = results["eval"], results["single"]
    print(f"\n{label}: {cpu_count()} cores, {source}; medians of {args.rounds} rounds")
    print(f"  {'training (B=50 T=100, loss_and_grad + clip + adam)':<58}"
          f"{statistics.median(peer):10,.0f} chars/s")  # fmt: skip
    for name, what in (("eval", "eval (default)"), ("single", "eval --streams 1"),
                       ("one core", "eval --streams 1 --threads 1")):  # fmt: skip
        print(f"  {what:<58}{statistics.median(rates[name]):10,.0f} chars/s  "
              f"{statistics.median(ratios[name]):5.2f}x")  # fmt: skip
    how = (
        f"{e.streams} segments, burn-in {e.burn_in}, recomputed {e.recomputed:,} chars, "
        f"largest state gap kept {e.state_gap:.1e}"
        if e.streams > 1
        else "the single pass"
    )
    print(f"  default eval: measured {e.measured} characters for a guess to agree -> {how}")
    rel = abs(e.nats_per_char / one.nats_per_char - 1)
    print(f"  nats/char: single pass {one.nats_per_char:.10f}, default {e.nats_per_char:.10f} "
          f"(relative difference {rel:.1e})\n", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="random,trained", help="random, trained (comma-separated)")
    ap.add_argument("--checkpoint", type=Path, help="score this model instead")
    ap.add_argument("--train-minutes", type=float, default=3.0, help="the trained model's budget")
    ap.add_argument("--chars", type=int, default=0, help="the first N chars (0: the test split)")
    ap.add_argument("--steps", type=int, default=6, help="training steps per training run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    print(f"host: {host_kind()}")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    if args.checkpoint:
        bench(load_model(args.checkpoint)[1], describe(args.checkpoint), args)
    for name in [] if args.checkpoint else args.models.split(","):
        if name == "random":
            cfg = ModelConfig(cell="lstm", vocab_size=65, hidden=256, layers=2)
            model = CharRNN.create(cfg, np.random.default_rng(0))
            bench(model, "lstm 2x256 (random weights)", args)
        elif name == "trained":
            if not CORPUS.exists():
                print(f"no {CORPUS}: the trained model is left out")
                continue
            path = trained_checkpoint(args.train_minutes)
            bench(load_model(path)[1], describe(path), args)
        else:
            raise SystemExit(f"unknown model {name!r}: random or trained")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
