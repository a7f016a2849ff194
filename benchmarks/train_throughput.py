"""Training throughput of charrnn against PyTorch on this machine, in the same run.

chars/s = B*T / time of one full step: forward, backward, clip (global norm 5), Adam update;
hidden state carried (and detached in PyTorch). PyTorch's model is nn.LSTM/GRU/RNN(input_size=V,
batch_first=True) on one-hot input + nn.Linear, with torch.set_num_threads(n). The two are
measured in alternating blocks of steps so both see the same machine load; figures are medians
over the steps after each block's first. Also printed: numpy's sgemm GFLOP/s on large squares
per thread count (the "peak"), the fraction of it each side reaches (matmul FLOPs per char as
in PERFORMANCE.md: 3x the forward FLOPs, less layer 0's input gradient), and the cold and warm
first-call (compile) times of charrnn.

PyTorch has no coupled-gate LSTM: cifg2x256's peer is the nn.LSTM of the same size (what it stands
in for).

    python benchmarks/train_throughput.py                 # everything (several minutes)
    python benchmarks/train_throughput.py --quick         # fewer steps
    python benchmarks/train_throughput.py --config lstm2x128 --threads 2 --parallel shards

The benchmark runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (see host.py) and prints the
host kind and BLAS kernel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from host import CORPUS, ROOT, host_kind, reexec_clean

reexec_clean()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


@dataclass
class Bench:
    name: str
    cell: str
    layers: int
    hidden: int
    batch: int
    seq: int
    anchor: int  # PyTorch chars/s on the Zen 1 anchor host, 2 threads (PERFORMANCE.md)
    target: float  # wanted charrnn / PyTorch ratio


CONFIGS = [
    Bench("lstm2x128", "lstm", 2, 128, 50, 50, 24_600, 1.5),
    Bench("lstm2x256", "lstm", 2, 256, 50, 100, 7_900, 1.2),
    Bench("cifg2x256", "cifg", 2, 256, 50, 100, 7_900, 1.2),
    Bench("lstm2x512", "lstm", 2, 512, 50, 100, 2_700, 1.0),
    Bench("gru2x256", "gru", 2, 256, 50, 100, 6_500, 1.5),
    Bench("rnn1x100", "rnn", 1, 100, 1, 25, 3_700, 5.0),
    Bench("lstm1x128", "lstm", 1, 128, 1, 25, 4_700, 4.0),
]


def flops_per_char(b: Bench, vocab: int) -> float:
    g = {"rnn": 1, "lstm": 4, "gru": 3, "cifg": 3}[b.cell]
    h, total = b.hidden, 0.0
    for k in range(b.layers):
        inp = vocab if k == 0 else h
        total += 3 * 2 * g * h * (inp + h)
        if k == 0:
            total -= 2 * g * h * inp  # no input gradient below layer 0
    return total + 3 * 2 * h * vocab


def load_ids(vocab: int) -> tuple[np.ndarray, str]:
    if CORPUS.exists():
        text = CORPUS.read_text(encoding="utf-8")
        chars = sorted(set(text))
        lookup = {c: i for i, c in enumerate(chars)}
        return np.array([lookup[c] for c in text], np.int32), f"tinyshakespeare (V={len(chars)})"
    rng = np.random.default_rng(0)
    return rng.integers(0, vocab, 1_000_000).astype(np.int32), f"random ids (V={vocab})"


def sgemm_peak(threads: int) -> float:
    from threadpoolctl import threadpool_limits

    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Streams:
    """B contiguous streams over the ids, T steps per batch, wrapping around."""

    def __init__(self, ids: np.ndarray, batch: int, seq: int):
        n = (ids.size - 1) // batch
        self.x = ids[: n * batch].reshape(batch, n)
        self.y = ids[1 : n * batch + 1].reshape(batch, n)
        self.seq, self.pos = seq, 0

    def next(self):
        if self.pos + self.seq > self.x.shape[1]:
            self.pos = 0
        s = slice(self.pos, self.pos + self.seq)
        self.pos += self.seq
        return self.x[:, s], self.y[:, s]


class Ours:
    def __init__(self, b: Bench, vocab: int, ids, threads: int, parallel: str):
        from charrnn.config import ModelConfig, TrainConfig
        from charrnn.model import CharRNN
        from charrnn.optim import clip_gradients, make_optimizer

        cfg = ModelConfig(cell=b.cell, vocab_size=vocab, hidden=b.hidden, layers=b.layers)
        self.model = CharRNN.create(cfg, np.random.default_rng(0))
        self.model.set_threads(threads)
        self.model.parallel = parallel
        self.opt = make_optimizer(TrainConfig(), self.model.flat.size)
        self.clip = clip_gradients
        self.data = Streams(ids, b.batch, b.seq)
        self.state = self.model.zero_state(b.batch)

    def step(self) -> None:
        x, y = self.data.next()
        res = self.model.loss_and_grad(x, y, self.state)
        self.state = res.state
        self.clip(res.grad_flat, 5.0, "norm")
        self.opt.step(self.model.flat, res.grad_flat, 2e-3)


class Torch:
    def __init__(self, b: Bench, vocab: int, ids, threads: int):
        import torch

        self.torch = torch
        self.threads = threads
        torch.manual_seed(0)
        cls = {"lstm": torch.nn.LSTM, "cifg": torch.nn.LSTM, "gru": torch.nn.GRU,
               "rnn": torch.nn.RNN}[b.cell]  # fmt: skip
        self.rnn = cls(vocab, b.hidden, b.layers, batch_first=True)
        self.dec = torch.nn.Linear(b.hidden, vocab)
        self.params = list(self.rnn.parameters()) + list(self.dec.parameters())
        self.opt = torch.optim.Adam(self.params, lr=2e-3)
        self.vocab = vocab
        self.data = Streams(ids.astype(np.int64), b.batch, b.seq)
        self.state = None

    def step(self) -> None:
        t = self.torch
        t.set_num_threads(self.threads)
        x, y = self.data.next()
        x, y = t.from_numpy(np.ascontiguousarray(x)), t.from_numpy(np.ascontiguousarray(y))
        out, state = self.rnn(t.nn.functional.one_hot(x, self.vocab).float(), self.state)
        self.state = (
            tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        )
        loss = t.nn.functional.cross_entropy(self.dec(out).reshape(-1, self.vocab), y.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        t.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.opt.step()


def measure(runners: dict, steps_per_block: int, rounds: int) -> dict[str, float]:
    """Median seconds per step of each runner, alternating blocks of steps."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in runners.values():  # warm-up (compile, allocate)
        r.step()
        r.step()
    for _ in range(rounds):
        for name, r in runners.items():
            r.step()  # the block's first step is not counted (spinning threads of the other)
            for _ in range(steps_per_block):
                times[name].append(_timed(r.step))
    return {k: statistics.median(v) for k, v in times.items()}


def compile_times() -> list[tuple[str, float, float]]:
    """(label, import seconds, first-step seconds) in fresh processes: empty cache, then warm."""
    code = (
        "import time; t=time.perf_counter();"
        "import numpy as np;"
        "from charrnn.config import ModelConfig, TrainConfig;"
        "from charrnn.model import CharRNN;"
        "from charrnn.optim import make_optimizer, clip_gradients;"
        "t1=time.perf_counter();"
        "rng=np.random.default_rng(0);"
        "[None for cell in ('lstm','gru','rnn') for m in [CharRNN.create("
        "ModelConfig(cell=cell, vocab_size=65, hidden=32, layers=2), rng)] for o in "
        "[make_optimizer(TrainConfig(), m.flat.size)] for r in [m.loss_and_grad("
        "rng.integers(0,65,(4,8)), rng.integers(0,65,(4,8)), None)] for _ in "
        "[clip_gradients(r.grad_flat, 5.0), o.step(m.flat, r.grad_flat, 1e-3)]];"
        "print(t1-t, time.perf_counter()-t1)"
    )
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold (empty cache)", "warm (cached)"):
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                               text=True, check=True)  # fmt: skip
            imp, first = (float(v) for v in r.stdout.split())
            out.append((label, imp, first))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="", help="comma-separated names (default: all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--quick", action="store_true", help="fewer steps per measurement")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time runs")
    ap.add_argument("--parallel", default="auto", choices=["auto", "shards", "blas"],
                    help="how charrnn uses threads > 1")  # fmt: skip
    args = ap.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    names = [n for n in args.config.split(",") if n]
    configs = [c for c in CONFIGS if not names or c.name in names]
    threads = [int(t) for t in args.threads.split(",")]
    have_torch = not args.no_torch
    if have_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            have_torch = False
    ids, corpus = load_ids(65)
    vocab = int(ids.max()) + 1
    load = os.getloadavg()[0]
    print(f"host: {host_kind()}")
    print(f"corpus: {corpus}; load average before: {load:.2f}; cpus: {os.cpu_count()}")
    peaks = {n: sgemm_peak(n) for n in threads}
    for n, p in peaks.items():
        print(f"numpy sgemm 2048^3, {n} thread(s): {p:.1f} GFLOP/s")
    if not args.no_compile:
        for label, imp, first in compile_times():
            print(
                f"first call {label}: import {imp:.2f} s, first step of lstm+gru+rnn {first:.2f} s"
            )
    header = (f"{'config':10} {'thr':>3} {'charrnn c/s':>12} {'torch c/s':>10} {'ratio':>6} "
              f"{'target':>6} {'ours %peak':>10} {'torch %peak':>11}")  # fmt: skip
    print(header)
    for b in configs:
        fpc = flops_per_char(b, vocab)
        for n in threads:
            small = b.batch * b.seq < 5000
            per_block = (40 if small else 2) if args.quick else (100 if small else 3)
            rounds = 3 if args.quick else 5
            runners = {"ours": Ours(b, vocab, ids, n, args.parallel)}
            if have_torch:
                runners["torch"] = Torch(b, vocab, ids, n)
            med = measure(runners, per_block, rounds)
            chars = b.batch * b.seq
            ours = chars / med["ours"]
            line = f"{b.name:10} {n:>3} {ours:>12,.0f} "
            if have_torch:
                theirs = chars / med["torch"]
                line += f"{theirs:>10,.0f} {ours / theirs:>6.2f} "
            else:
                line += f"{'-':>10} {'-':>6} "
            line += f"{b.target:>6.1f} {100 * ours * fpc / 1e9 / peaks[n]:>9.0f}% "
            if have_torch:
                line += f"{100 * theirs * fpc / 1e9 / peaks[n]:>10.0f}%"
            print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
