"""Sampling speed of `charrnn sample` next to a plain PyTorch sampling loop, measured in one run.

    python benchmarks/sample_throughput.py [--chars 300000] [--runs 7]

Model: a 2x256 LSTM over 65 symbols (tinyshakespeare's vocabulary when the corpus is present),
random weights, saved as a real checkpoint with charrnn.checkpoint.save. Prints:
  * chars/s at batch 1 and at batch 16 (total): the engines alone (NumPy step, Numba kernel on
    one thread and as the command runs it: split over two threads on two cores or more),
    the whole command (`charrnn sample -n N`, process start to last byte), and PyTorch stepping
    nn.LSTM one character at a time with torch.multinomial (when torch is installed);
  * time to first character: process start to the first byte on stdout (median of --runs,
    warm cache) of `charrnn sample` and of an equivalent torch script; `python -c "import
    numpy"` and `python -c pass` for reference.
Figures on a shared machine are noisy: compare the ratios printed in the same run. The benchmark
runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (see host.py) and prints the host kind and
BLAS kernel.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from host import CORPUS, ROOT, host_kind, reexec_clean

reexec_clean()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `charrnn sample` does
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
H, L = 256, 2


def make_checkpoint(directory: Path) -> Path:
    from charrnn.checkpoint import Checkpoint, save
    from charrnn.config import ModelConfig, param_shapes
    from charrnn.vocab import Vocab

    if CORPUS.exists():
        vocab = Vocab.from_text(CORPUS.read_text(encoding="utf-8"))
    else:
        vocab = Vocab([10, *range(32, 32 + 64)])  # sorted, as Vocab requires
    cfg = ModelConfig(cell="lstm", vocab_size=len(vocab), hidden=H, layers=L)
    rng = np.random.default_rng(0)
    params = {
        k: (0.08 * rng.standard_normal(s)).astype(np.float32) for k, s in param_shapes(cfg).items()
    }
    path = directory / "bench-best.npz"
    save(path, Checkpoint(cfg, params, vocab, {"name": "bench"}))
    return path


def engine_rate(path: Path, engine: str, batch: int, steps: int, threads: int = 0) -> float:
    """Steady-state chars/s (total over the batch) of one engine, in this process; threads:
    the Numba engine's (0: as the command, two on two cores or more)."""
    from charrnn import sample as S
    from charrnn.checkpoint import load
    from charrnn.step import prepare

    c = load(path)
    w = prepare(c.config, c.params)
    state, pending = w.zero_state(batch), np.zeros(batch, np.int32)
    if engine == "numba":
        eng = S.NumbaEngine(w, state, pending, threads=threads)
    else:
        eng = S.NumpyEngine(w, state, pending)
    u = np.random.default_rng(0).random((steps, batch))
    eng.run(u[:10], S.SampleOptions())  # warm
    t = time.perf_counter()
    eng.run(u, S.SampleOptions())
    return steps * batch / (time.perf_counter() - t)


def command_rate(path: Path, n: int, samples: int) -> float:
    """chars/s of the whole command, process start to the last byte (total over samples)."""
    cmd = [sys.executable, "-m", "charrnn", "sample", "-c", str(path), "-n", str(n)]
    cmd += ["--num-samples", str(samples), "--rng-seed", "1", "--no-echo-seed"]
    t = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout
    dt = time.perf_counter() - t
    assert len(out.decode("utf-8")) >= n * samples
    return n * samples / dt


def first_byte(cmd: list[str], runs: int) -> float:
    """Median seconds from Popen to the first byte on stdout."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        b = p.stdout.read(1)
        times.append(time.perf_counter() - t)
        p.stdout.close()
        p.kill()
        p.wait()
        assert b, cmd
    return statistics.median(times)


def exit_time(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


TORCH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import torch
    z = np.load(sys.argv[1])
    chars = [chr(c) for c in z["vocab"]]
    V, H, L = len(chars), {H}, {L}
    lstm = torch.nn.LSTM(V, H, L)
    lstm.load_state_dict({{k[6:]: torch.from_numpy(z[k]) for k in z.files
                           if k.startswith("param/weight_") or k.startswith("param/bias_")}})
    dec = torch.nn.Linear(H, V)
    dec.weight.data = torch.from_numpy(z["param/decoder.weight"])
    dec.bias.data = torch.from_numpy(z["param/decoder.bias"])
    n, batch, rate = int(sys.argv[2]), int(sys.argv[3]), len(sys.argv) > 4
    if rate and int(sys.argv[4]) > 0:
        torch.set_num_threads(int(sys.argv[4]))

    class Null:
        def write(self, s): pass
        def flush(self): pass

    out = Null() if rate else sys.stdout
    x = torch.zeros(1, batch, V)
    x[0, :, chars.index("\\n") if "\\n" in chars else 0] = 1
    state = None
    t = time.perf_counter()
    with torch.no_grad():
        for _ in range(n):
            y, state = lstm(x, state)
            p = torch.softmax(dec(y[0]), -1)
            idx = torch.multinomial(p, 1)[:, 0]
            x = torch.nn.functional.one_hot(idx, V).float()[None]
            out.write(chars[int(idx[0])])
            out.flush()
    if rate:
        print(n * batch / (time.perf_counter() - t))
    """
)


def torch_rate(script: Path, path: Path, batch: int, steps: int, threads: int = 0) -> float:
    """chars/s of the PyTorch loop alone (torch imported and the model built before timing);
    threads 0 = torch's default."""
    cmd = [sys.executable, str(script), str(path), str(steps), str(batch), str(threads)]
    return float(subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=300_000, help="characters for batch-1 runs")
    ap.add_argument("--runs", type=int, default=7, help="runs for each median")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False

    tmp = Path(tempfile.mkdtemp(prefix="charrnn-bench-"))
    ckpt = make_checkpoint(tmp)
    script = tmp / "torch_sample.py"
    script.write_text(TORCH_SCRIPT.format(H=H, L=L))
    print(f"model: LSTM {L}x{H}, V=65, checkpoint {ckpt}")
    print(f"host: {host_kind()}")
    print(f"cpu: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start\n")

    # warm the Numba cache and the page cache
    subprocess.run(
        [sys.executable, "-m", "charrnn", "sample", "-c", str(ckpt), "-n", "3000", "--engine",
         "numba"], stdout=subprocess.DEVNULL, check=True,
    )  # fmt: skip

    n1, n16 = args.chars, max(args.chars // 16, 4000)
    rows = []
    rows.append(("engine numpy, batch 1", engine_rate(ckpt, "numpy", 1, 2000)))
    rows.append(("engine numba, batch 1, one thread", engine_rate(ckpt, "numba", 1, 20000, 1)))
    rows.append(("engine numba, batch 1", engine_rate(ckpt, "numba", 1, 40000)))
    rows.append(("engine numpy, batch 16", engine_rate(ckpt, "numpy", 16, 300)))
    rows.append(("engine numba, batch 16, one thread", engine_rate(ckpt, "numba", 16, 3000, 1)))
    rows.append(("engine numba, batch 16", engine_rate(ckpt, "numba", 16, 6000)))
    rows.append((f"command -n {n1}, batch 1 (start to end)", command_rate(ckpt, n1, 1)))
    rows.append((f"command -n {n16} --num-samples 16", command_rate(ckpt, n16, 16)))
    if have_torch:
        for b, steps in ((1, 1500), (16, 600)):
            best = max(torch_rate(script, ckpt, b, steps, t) for t in (0, 1))
            rows.append((f"pytorch nn.LSTM loop, batch {b} (best of 1 thread, default)", best))
    print("throughput (chars/s, total over the batch)")
    ref = dict(rows)
    for name, rate in rows:
        print(f"  {name:58s} {rate:10,.0f}")
    if have_torch:
        for b in ("1", "16"):
            peer = ref[f"pytorch nn.LSTM loop, batch {b} (best of 1 thread, default)"]
            r = ref[f"engine numba, batch {b}"] / peer
            print(f"  numba kernel / pytorch loop at batch {b}: {r:.1f}x")

    runs = args.runs
    base = [sys.executable, "-m", "charrnn", "sample", "-c", str(ckpt)]
    print(f"\ntime to first character / start-up (median of {runs}, seconds)")
    ttfc = [
        ("charrnn sample -n 500", first_byte([*base, "-n", "500"], runs)),
        ("charrnn sample -n 1000000", first_byte([*base, "-n", "1000000"], runs)),
        ("charrnn sample --num-samples 16", first_byte([*base, "--num-samples", "16"], runs)),
    ]
    if have_torch:
        ttfc.append(
            ("torch script", first_byte([sys.executable, str(script), str(ckpt), "500", "1"], runs))
        )
    ttfc += [
        ('python -c "import numpy"', exit_time([sys.executable, "-c", "import numpy"], runs)),
        ('python -c "pass"', exit_time([sys.executable, "-c", "pass"], runs)),
    ]
    for name, t in ttfc:
        print(f"  {name:44s} {t:8.3f}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
