"""What every benchmark says about the machine it ran on, and the environment it runs in.

Some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE), which older OpenBLAS builds needed
on some processors; with them numpy's sgemm runs the named kernels (Haswell: about half the
speed of the SkylakeX kernels OpenBLAS picks on its own on an AVX-512 host). A user's machine
does not set them, so a benchmark runs without them: `reexec_clean()` restarts the benchmark's
own process without them (call it before numpy is imported), `clean_env()` is the environment
for the processes it starts. Tests and CI keep the environment they are given.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# the standard corpus: beside the checkout (../shared), or beside the worktrees (../../shared)
CORPUS = next(
    (p for p in (ROOT.parent / "shared/corpora/tinyshakespeare.txt",
                 ROOT.parent.parent / "shared/corpora/tinyshakespeare.txt") if p.exists()),
    ROOT.parent / "shared/corpora/tinyshakespeare.txt",
)  # fmt: skip


def clean_env() -> dict[str, str]:
    """This environment without BLAS_VARS, with this checkout first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return env


def reexec_clean() -> None:
    """Restart this process without BLAS_VARS when either is set (before numpy is imported);
    either way the processes it starts import this checkout (clean_env's PYTHONPATH)."""
    if any(v in os.environ for v in BLAS_VARS):
        os.execve(sys.executable, [sys.executable, *sys.argv], clean_env())
    os.environ["PYTHONPATH"] = clean_env()["PYTHONPATH"]


def host_kind() -> str:
    """lscpu's family and model, AVX-512 or not, and the BLAS kernel numpy uses here
    (threadpoolctl's `architecture`: of this process, or of a clean child when this one still
    has BLAS_VARS)."""
    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("cpu family", "model", "model name", "flags") and key not in info:
            info[key] = value.strip()
    family = info.get("cpu family", "?")
    zen = {"23": "Zen 1/2", "25": "Zen 3/4", "26": "Zen 5"}.get(family, "?")
    avx = "AVX-512" if "avx512f" in info.get("flags", "") else "no AVX-512"
    if any(v in os.environ for v in BLAS_VARS):  # a driver: its children run clean
        probe = (
            "import numpy, threadpoolctl; print(', '.join(sorted({i.get('architecture', '?') "
            "for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'})))"
        )
        blas = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env()
        ).stdout.strip()
    else:  # this process, as it runs
        import numpy  # noqa: F401  (loads the BLAS library threadpoolctl reports)
        import threadpoolctl

        found = threadpoolctl.threadpool_info()
        blas = ", ".join(sorted({i.get("architecture", "?") for i in found
                                 if i["user_api"] == "blas"}))  # fmt: skip
    return (
        f"{info.get('model name', '?')}, family {family} model {info.get('model', '?')} ({zen}), "
        f"{avx}, {os.cpu_count()} cpus, BLAS kernel {blas or '?'}"
    )
