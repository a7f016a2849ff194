"""Training speed of the whole `charrnn train` command, against its step alone and a PyTorch
loop, in the same run.

The command is timed as a whole process: `charrnn train CORPUS --steps S` with the config's
flags, for a short and a long S (each twice, the faster kept), and chars/s taken from the
difference, so that start-up, compilation and the final evaluation cancel while everything the
loop does per step (batches, schedule, clipping, the update, events, periodic evaluations and
checkpoints) counts. The step alone (forward, backward, clip, Adam) and PyTorch's loop are
measured as in train_throughput.py: alternating blocks of steps, medians.

    python benchmarks/command_throughput.py                      # LSTM 1x128 B1 T25, 1 thread
    python benchmarks/command_throughput.py --config lstm2x256 --threads 2

Runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (see host.py); prints the host kind.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from host import CORPUS, ROOT, host_kind, reexec_clean

reexec_clean()
sys.path.insert(0, str(ROOT))

from train_throughput import CONFIGS, Ours, Torch, load_ids, measure  # noqa: E402


def command_seconds(b, threads: int, steps: int, out: str) -> float:
    """Wall seconds of one `charrnn train` process of `steps` steps of config b."""
    cmd = [
        sys.executable, "-m", "charrnn", "train", str(CORPUS), "--model", b.cell,
        "--layers", str(b.layers), "--hidden", str(b.hidden), "--batch", str(b.batch),
        "--seq", str(b.seq), "--dropout", "0", "--threads", str(threads),
        "--steps", str(steps), "--quiet", "--out", out, "--force",
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="lstm1x128", help="a name from train_throughput.py")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chars", type=float, default=1e6, help="characters between the two runs")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    args = ap.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    b = next((c for c in CONFIGS if c.name == args.config), None)
    if b is None:
        raise SystemExit(f"unknown config {args.config!r}: {', '.join(c.name for c in CONFIGS)}")
    print(f"host: {host_kind()}; load average before: {os.getloadavg()[0]:.2f}")
    chars_per_step = b.batch * b.seq
    short = 2000 if chars_per_step < 1000 else 40
    long = short + int(args.chars // chars_per_step)
    with tempfile.TemporaryDirectory() as out:
        command_seconds(b, args.threads, 10, out)  # compile and cache the kernels
        times = {s: min(command_seconds(b, args.threads, s, out) for _ in range(2))
                 for s in (short, long)}  # fmt: skip
    command = (long - short) * chars_per_step / (times[long] - times[short])
    ids, _ = load_ids(65)
    vocab = int(ids.max()) + 1
    runners = {"step": Ours(b, vocab, ids, args.threads, "auto")}
    if not args.no_torch:
        try:
            runners["torch"] = Torch(b, vocab, ids, args.threads)
        except ImportError:
            print("torch is not installed: PyTorch skipped (pip install torch==2.13.0)")
    small = chars_per_step < 5000
    per_step = measure(runners, 100 if small else 3, 5)
    speed = {k: chars_per_step / v for k, v in per_step.items()}
    took = f"{times[short]:.2f} s for {short:,} steps and {times[long]:.2f} s for {long:,}"
    print(f"{b.name} (B{b.batch} T{b.seq}), {args.threads} thread(s); the command took {took}")
    print(f"  charrnn train, whole process: {command:,.0f} chars/s")
    print(f"  its step alone:               {speed['step']:,.0f} chars/s "
          f"(the command keeps {command / speed['step']:.0%})")  # fmt: skip
    if "torch" in speed:
        print(f"  PyTorch loop:                 {speed['torch']:,.0f} chars/s "
              f"(the command is {command / speed['torch']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
