"""Memory and disk, checked before the work that needs them.

Memory. Before training, sampling or scoring allocates its arrays, `need_*` estimates the bytes
it will still allocate, from the configuration, following the allocations the code really makes
(model.py's `_Work` buffers per shard, the flat parameters, gradients and optimizer buffers, the
trainer's snapshot of the last good state, dropout masks, checkpoint copies; sample's per-row
state, logits and buffered text; the scorer's segments and stored states). tests/
test_resources.py holds each estimate to within a factor of what tracemalloc measures on small
models. `check` compares it with what this process may still allocate (`headroom`): the memory
available on the machine (MemAvailable), what the cgroup's limit leaves, and what the
address-space and data limits (ulimit -v, -d) leave; past it, one line gives the estimate, the
limit, and the largest value of each option that alone would make it fit.

Disk. `check_disk` compares what will be written with the free space of the target's file system.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from charrnn.config import ModelConfig, TrainConfig, gates, param_shapes, state_names
from charrnn.errors import ResourceError

F32 = 4  # bytes per parameter and activation (the engine computes in float32)
INFER_ROWS = 8192  # model.INFER_ROWS: characters a forward-only call processes at a time
MIN_SHARD_ROWS = 8  # model.MIN_SHARD_ROWS
# What loading the engine (numba, llvmlite, scipy's BLAS) adds to the process, measured on
# Linux x86-64 (`python -c "import charrnn.model"` after numpy: +90 MB resident, +310 MB of
# address space; a finished tiny training run: 181 MB resident, 620 MB of address space).
ENGINE_RSS = 160 << 20
ENGINE_VM = 512 << 20
THREAD_VM = 72 << 20  # address space a worker thread reserves (8 MiB stack, 64 MiB malloc arena)
SAMPLE_CHUNK = 2048  # sample.py: most steps drawn per engine call


@dataclass
class Need:
    """An estimate: bytes per part (for the message) and the options that would lower it."""

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


# ------------------------------------------------------------------------ training


def param_count(cfg: ModelConfig) -> int:
    return sum(math.prod(s) for s in param_shapes(cfg).values())


def optimizer_buffers(optimizer: str) -> int:
    """Arrays of P floats an optimizer keeps (optim._STATE_KEYS)."""
    return 2 if optimizer in ("adam", "adamw") else 1


def work_bytes(cfg: ModelConfig, bs: int, t: int) -> int:
    """Bytes of one shard's model._Work for bs streams of t steps."""
    g, h, v, n = gates(cfg.cell) * cfg.hidden, cfg.hidden, cfg.vocab_size, cfg.layers
    rows = t * bs
    floats = n * (rows * g + (t + 1) * bs * h + rows * h) + (n - 1) * rows * h
    if cfg.output_dropout and cfg.dropout:
        floats += rows * h
    if cfg.cell == "lstm":
        floats += n * ((t + 1) * bs * h + rows * h)
    if cfg.cell == "gru":
        floats += n * (rows * h + rows * g) + bs * g
    floats += 2 * rows * cfg.embed if cfg.embed else v * g
    floats += rows * v
    return floats * F32


def derived_bytes(cfg: ModelConfig, backward: bool) -> int:
    """Bytes of model._Prepared: packed recurrent weights (twice for a backward pass), the
    one-hot table, and for inference the stacked weights of the layers above the first."""
    g, h, n = gates(cfg.cell) * cfg.hidden, cfg.hidden, cfg.layers
    packed = h * (-(-g // 16) * 16)  # panels of 16 float32 columns
    floats = n * packed * (2 if backward else 1) + n * g
    if not cfg.embed:
        floats += cfg.vocab_size * g
    if not backward and cfg.cell in ("lstm", "rnn"):
        floats += (n - 1) * 2 * packed
    return floats * F32


def _shards(batch: int, threads: int) -> int:
    threads = threads or _cpus()
    return max(1, min(threads, batch // MIN_SHARD_ROWS)) if threads > 1 else 1


def _cpus() -> int:
    from charrnn.cpus import cpu_count

    return cpu_count()


def _shard_sizes(batch: int, threads: int) -> list[int]:
    """Streams per shard, as model.CharRNN._shards cuts them."""
    n = _shards(batch, threads)
    return [(i + 1) * batch // n - i * batch // n for i in range(n)]


def _validation_steps(batch: int, seq: int, val_chars: int | None) -> tuple[int, set[int]]:
    """The streams and the step counts of train.validation_loss's model calls (each call of T
    steps cut by model._infer into pieces of INFER_ROWS // streams); None: not known yet, so
    as many streams as training, in calls as long as training's and a shorter last one."""
    from charrnn.train import MAX_EVAL_CHARS

    if val_chars is None:
        return batch, {max(1, min(seq, INFER_ROWS // batch)), -1}
    n = min(val_chars - 1, MAX_EVAL_CHARS)
    if n < 1:
        return batch, set()
    b = max(1, min(batch, n))
    length, steps = n // b, set()
    for t in {min(seq, length), length % seq} - {0}:
        piece = max(1, min(t, INFER_ROWS // b))
        steps |= {piece, t % piece} - {0}
    return b, steps


def _work_sets(cfg: ModelConfig, train: TrainConfig, val_chars: int | None) -> int:
    """Bytes of every model._Work the run keeps: one per (shard, streams, steps) shape, for the
    training steps and the validation calls (a shape they share is one set)."""
    shapes = {(i, bs, train.seq) for i, bs in enumerate(_shard_sizes(train.batch, train.threads))}
    b, steps = _validation_steps(train.batch, train.seq, val_chars)
    for t in steps:
        t = train.seq if t == -1 else t  # unknown last call: as long as training's (at most)
        shapes |= {(i, bs, t) for i, bs in enumerate(_shard_sizes(b, train.threads))}
    if -1 in steps:  # not known: count the last call apart even if its shape matches
        shapes |= {(-1 - i, bs, train.seq) for i, bs in enumerate(_shard_sizes(b, train.threads))}
    return sum(work_bytes(cfg, bs, t) for _, bs, t in shapes)


def need_training(cfg: ModelConfig, train: TrainConfig, val_chars: int | None = None) -> Need:
    """What `charrnn train` allocates for a model of `cfg` trained with `train` (and a
    validation split of `val_chars` characters; None: not known yet): the parts that live all
    along, plus the larger of a training step's and an evaluation's own."""
    P, nb = param_count(cfg), optimizer_buffers(train.optimizer)
    B, T, H, L = train.batch, train.seq, cfg.hidden, cfg.layers
    S = _shards(B, train.threads)
    weights = P * F32 * (1 + nb)  # parameters, optimizer state
    weights += P * F32 * (1 + nb)  # the trainer's copy of the last good state
    work = _work_sets(cfg, train, val_chars) + (S * P * F32 if S > 1 else 0)
    states = len(state_names(cfg)) * L * B * H * F32
    masks = cfg.dropout_masks * B * T * H * F32
    step = (
        2 * P * F32  # this step's gradient and the last one's
        + derived_bytes(cfg, backward=True)
        + (2 * masks + 2 * B * T * H * F32 if masks else 0)  # masks, shard copies, drawing
        + 3 * states
        + B * T * 32  # batch ids and their int/intp copies
    )
    step = max(step, P * F32 + 2 * nb * P * F32)  # the end of a step: new snapshot copies
    evaluation = (
        P * F32 * (1 + nb)  # the checkpoint's copies of parameters and optimizer state
        + derived_bytes(cfg, backward=False)
        + 2 * states
        + P * F32  # the dashboard sampler's weights
    )
    return Need(
        {
            "parameters and optimizer state": weights,
            "activations": work,
            "per step": max(step, evaluation),
        }
    )


def check_training(
    cfg: ModelConfig,
    train: TrainConfig,
    checkpoints: tuple[Path, ...] = (),
    val_chars: int | None = None,
) -> None:
    """ResourceError unless training `cfg` with `train` fits in memory, and its checkpoints
    (the run's latest and best paths) on disk: each one missing, and a temporary copy."""
    what = f"training this model ({param_count(cfg):,} parameters, batch {train.batch}x{train.seq})"

    def need(c: ModelConfig = cfg, t: TrainConfig = train) -> Need:
        return need_training(c, t, val_chars)

    knobs = _model_knobs(cfg, need)
    knobs["batch"] = (train.batch, lambda v: need(t=replace(train, batch=v)))
    knobs["seq"] = (train.seq, lambda v: need(t=replace(train, seq=v)))
    check(need(), what, knobs, engine=True)
    if checkpoints:
        size = checkpoint_bytes(cfg, train.optimizer)
        files = 1 + sum(not Path(p).exists() for p in checkpoints)
        what = f"checkpoints of this model ({fmt_bytes(size)} each, and a copy while one is saved)"
        check_disk(Path(checkpoints[0]).parent, files * size, what, "write elsewhere with --out")


def check_model_size(cfg: ModelConfig, train: TrainConfig) -> None:
    """`check_training` for what does not depend on the corpus: the model with one stream of
    one step (the batch shrinks on a short text, and the vocabulary is not known yet, so that
    is all that can be refused before the corpus is read)."""
    one = replace(train, batch=1, seq=1)
    what = f"training a model of {param_count(cfg):,} parameters"
    knobs = _model_knobs(cfg, lambda c: need_training(c, one))
    check(need_training(cfg, one), what, knobs, engine=True)


def _model_knobs(cfg: ModelConfig, need: Callable[[ModelConfig], Need]) -> dict:
    knobs = {
        "hidden": (cfg.hidden, lambda v: need(replace(cfg, hidden=v))),
        "layers": (cfg.layers, lambda v: need(replace(cfg, layers=v))),
    }
    if cfg.embed:
        knobs["embed"] = (cfg.embed, lambda v: need(replace(cfg, embed=v)))
    return knobs


def checkpoint_bytes(cfg: ModelConfig, optimizer: str) -> int:
    """A checkpoint's size: parameters and optimizer state, and a little for the rest."""
    return param_count(cfg) * F32 * (1 + optimizer_buffers(optimizer)) + (64 << 10)


# ------------------------------------------------------------------------ sampling


def need_sampling(
    cfg: ModelConfig,
    samples: int,
    length: int,
    prime: int,
    keep_text: bool,
    char_bytes: int = 4,
    fused: bool | None = None,
) -> Need:
    """What generating `samples` samples of `length` characters after a `prime`-character seed
    still allocates, the weights being loaded: when sample.py loads the fused kernel (long
    samples), its copy of the weights; per sample its state, gate values, logits and draws
    (up to 256 steps a call, 2048 with the fused kernel), its seed ids and, with `keep_text`,
    its text (`char_bytes` a character: 1 below U+0100, 2 below U+10000, else 4). fused: the
    fused kernel is used (None: as sample.generate's "auto" engine decides)."""
    K, H, L, V = samples, cfg.hidden, cfg.layers, cfg.vocab_size
    if fused is None:
        fused = _fused(cfg, length, K)
    chunk = SAMPLE_CHUNK if fused else 256
    per_row = (
        len(state_names(cfg)) * L * H * F32 * 4  # state, the next one, the kernel's copies
        + 3 * gates(cfg.cell) * H * F32  # a step's gate values
        + V * (F32 + 3 * 8 + 2)  # logits, and the float64 and mask arrays of a draw
        + chunk * (8 + 8 + 4)  # uniforms, the alive rows' copy, the drawn ids
        + prime * 8  # seed ids, tiled and converted
        + ((length + 64) * char_bytes if keep_text else 0)  # its text, kept until printed
    )
    kernel = 3 * param_count(cfg) * F32 // 2 if fused else 0  # its layout, and copies made
    return Need({"the fused kernel's weights": kernel, "per sample": K * per_row})


def check_sampling(
    cfg: ModelConfig, samples: int, length: int, prime: int, keep_text: bool, char_bytes: int = 4
) -> None:
    def at(k: int) -> Need:
        return need_sampling(cfg, k, length, prime, keep_text, char_bytes)

    knobs = {"num-samples": (samples, at)}
    check(at(samples), f"generating {samples:,} samples", knobs, _fused(cfg, length, samples))


def _fused(cfg: ModelConfig, length: int, samples: int) -> bool:
    """Whether sample.generate ("auto") loads the fused kernel for this much output."""
    from types import SimpleNamespace

    from charrnn.sample import _numba_pays

    shape = SimpleNamespace(
        layers=cfg.layers, w_hh_t=np.empty((0, 0, gates(cfg.cell) * cfg.hidden))
    )
    return _numba_pays(shape, length, samples)


# ------------------------------------------------------------------------ scoring


def need_scoring(
    cfg: ModelConfig, n: int, rows: int, threads: int, keep: bool, chunk: int = 2048
) -> Need:
    """What scoring n characters as `rows` segments side by side (1: the single pass, `chunk`
    characters a call) on `threads` cores still allocates: the frozen copy's weights and
    derived weights, each core's buffers, the states stored for the check
    (evaluate.MAX_CHECKS + 1 per segment), and with `keep` every character's surprisal."""
    from charrnn.evaluate import DEFAULT_CHECK, MAX_CHECKS

    P = param_count(cfg)
    ns = len(state_names(cfg))
    groups = max(1, min(threads or _cpus(), rows // 4)) if rows > 1 else 1
    if rows > 1:
        per = -(-rows // groups)
        work = groups * work_bytes(cfg, per, DEFAULT_CHECK) + rows * DEFAULT_CHECK * 8 * 4
        stored = (MAX_CHECKS + 3) * ns * cfg.layers * rows * cfg.hidden * F32
    else:
        steps = min(max(1, min(chunk, n - 1)), INFER_ROWS)  # a call's steps ...
        rest = (n - 1) % steps  # ... and a shorter last call, with buffers of its own
        work = work_bytes(cfg, 1, steps) + (work_bytes(cfg, 1, rest) if rest else 0)
        work, stored = work + steps * 8 * 4, 0
    return Need(
        {
            "weights": P * F32 + 2 * derived_bytes(cfg, backward=False),
            "buffers": work,
            "stored states": stored,
            "surprisal": (n - 1) * 8 if keep else 0,
        }
    )


def check_scoring(
    cfg: ModelConfig, n: int, rows: int, threads: int, keep: bool, chunk: int = 2048
) -> None:
    def at(r: int) -> Need:
        return need_scoring(cfg, n, r, threads, keep, chunk)

    knobs = {"streams": (rows, at)} if rows > 1 else {}
    check(at(rows), f"scoring {n:,} characters", knobs, engine=False)  # the model is loaded


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
