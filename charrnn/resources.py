"""What this process may still use, memory and disk, and the check that refuses work past it.

`headroom()` is the smallest of: the memory available on the machine (MemAvailable), what the
cgroup's memory limit leaves (v1 or v2, this cgroup and those above it), and what the
address-space and data limits (ulimit -v, -d) leave. `check(need, ...)` compares an estimate
(charrnn/footprint.py: what training, sampling or scoring will allocate) with it; past it, one
line gives the estimate, the limit, and the largest value of each option that alone would make
it fit. `check_disk` does the same for free space; `read_bounded` reads a stream that may never
end (`--seed -`) without letting it take the memory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import ResourceError

# What loading the engine (numba, llvmlite, scipy's BLAS) adds to the process, measured on
# Linux x86-64 (`python -c "import charrnn.model"` after numpy: +90 MB resident, +310 MB of
# address space; a finished tiny training run: 181 MB resident, 620 MB of address space).
ENGINE_RSS = 160 << 20
ENGINE_VM = 512 << 20


@dataclass
class Need:
    """An estimate: bytes per part, each named in the message when it matters."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        shown = [(k, v) for k, v in self.parts.items() if v >= self.total / 20]
        return ", ".join(f"{k} {fmt_bytes(v)}" for k, v in shown)


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


# ------------------------------------------------------------------------ what may be used


def headroom(engine: bool = False) -> tuple[int, str]:
    """(bytes this process may still allocate, what sets that limit) — the smallest of the
    machine's available memory, the cgroup's limit and the address-space and data limits.
    engine: the work will load the engine, whose address space goes beyond what it touches
    (ENGINE_VM against ENGINE_RSS), so an address-space limit leaves that much less."""
    found: list[tuple[int, str]] = []
    info = _proc_sizes("/proc/meminfo")
    if "MemAvailable" in info:
        found.append((info["MemAvailable"], "available on this machine"))
    cg = _cgroup_headroom()
    if cg is not None:
        found.append((cg, "left by the cgroup memory limit"))
    found += _rlimit_headroom(engine and _engine_pending())
    if not found:  # pragma: no cover - not Linux: nothing to go by
        return 1 << 62, "no known limit"
    return min(found)


def _proc_sizes(path: str) -> dict[str, int]:
    """The "Key:  123 kB" lines of a /proc file (meminfo, self/status) as bytes."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * (1024 if parts[-1] == "kB" else 1)
    except OSError:
        pass
    return out


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key and v.strip().isdigit():
                return int(v)
    except OSError:
        pass
    return 0


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number


def _cgroup_headroom() -> int | None:
    """Limit minus usage (page cache that can be dropped counts as free) of this process's
    memory cgroup and every cgroup above it; the smallest. None when there is no limit."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            base, files = CGROUP_ROOT, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            base = CGROUP_ROOT / "memory"
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for d in _cgroup_dirs(base, path):
            limit = _read_int(d / files[0])
            usage = _read_int(d / files[1])
            if limit is None or usage is None or limit >= UNLIMITED:
                continue
            free = limit - usage + _stat_value(d / "memory.stat", files[2])
            best = free if best is None else min(best, free)
    return None if best is None else max(0, best)


def _cgroup_dirs(base: Path, path: str) -> list[Path]:
    """The cgroup's folder and its parents up to the mount (inside a container the mount is
    the container's own cgroup, and the path as /proc names it may not exist)."""
    parts = [p for p in path.strip("/").split("/") if p]
    dirs = [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]
    return [d for d in dirs if d.is_dir()]


def _rlimit_headroom(engine: bool) -> list[tuple[int, str]]:
    try:
        import resource
    except ImportError:  # pragma: no cover
        return []
    status = _proc_sizes("/proc/self/status")
    out = []
    for name, used, label in (
        ("RLIMIT_AS", "VmSize", "left by the address-space limit (ulimit -v)"),
        ("RLIMIT_DATA", "VmData", "left by the data-size limit (ulimit -d)"),
    ):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY and used in status:
            extra = ENGINE_VM - ENGINE_RSS if engine and name == "RLIMIT_AS" else 0
            out.append((max(0, soft - status[used] - extra), label))
    return out


def _engine_pending() -> bool:
    return "numba" not in sys.modules


# ------------------------------------------------------------------------ the check


def check(
    need: Need, what: str, knobs: dict[str, tuple[int, Callable[[int], Need]]], engine: bool
) -> None:
    """ResourceError when `need` is more than `headroom()`. knobs: option -> (its value, the
    Need at another value), used to say which option alone would make it fit, and up to what.
    engine: the work loads the engine (numba, scipy) if it is not loaded yet (ENGINE_RSS)."""
    extra = ENGINE_RSS if engine and _engine_pending() else 0
    if extra:
        need = Need({**need.parts, "the engine": extra})
    room, source = headroom(engine)
    if need.total <= room:
        return
    fits = []
    for option, (value, at) in knobs.items():
        best = _largest_fitting(value, lambda v, at=at: at(v).total + extra, room)
        if best is not None:
            fits.append(f"--{option} to {best:,}")
    if fits:
        tail = "lower " + " or ".join([", ".join(fits[:-1]), fits[-1]] if fits[:-1] else fits)
        tail += " (or less)"
    else:
        tail = "free some memory, or use a machine with more"
    raise ResourceError(
        f"{what} needs about {fmt_bytes(need.total)} of memory ({need.describe()}), more than "
        f"the {fmt_bytes(room)} {source}: {tail}"
    )


def _largest_fitting(value: int, total: Callable[[int], int], room: int) -> int | None:
    """The largest v in [1, value) with total(v) <= room (total grows with v), or None."""
    if value <= 1 or total(1) > room:
        return None
    lo, hi = 1, value - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if total(mid) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


def read_bounded(stream, what: str, share: int = 16):
    """All of a one-pass stream (bytes or str), read in chunks and refused once it is more than
    1/share of the memory this process may use (`yes | charrnn sample --seed -` never ends)."""
    room, source = headroom()
    limit = max(1 << 20, room // share)
    parts, size = [], 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise ResourceError(
                f"{what} goes on past {fmt_bytes(limit)}, more than can be kept in memory "
                f"({fmt_bytes(room)} {source}): give a shorter one"
            )
        parts.append(chunk)
    return (b"" if not parts or isinstance(parts[0], bytes) else "").join(parts)


# ------------------------------------------------------------------------ disk


def free_disk(path: Path) -> int | None:
    """Bytes an unprivileged user may still write on the file system of `path` (or of its
    nearest existing parent); None when unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def check_disk(path: Path, need: int, what: str, elsewhere: str) -> None:
    """ResourceError when `need` bytes will not fit on the file system of `path`. The message:
    "{what} need(s) ..., free some space, or {elsewhere}"."""
    free = free_disk(path)
    if free is None or need <= free:
        return
    raise ResourceError(
        f"{what}: about {fmt_bytes(need)} needed in {path}, which has {fmt_bytes(free)} free: "
        f"free some space, or {elsewhere}"
    )
