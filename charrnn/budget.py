"""Choosing the model for a training budget: the size the budget can train, and its dropout.

The rule, in one sentence: take the largest model on a ladder of coarse sizes that, within the
budget, reads at least READS_PER_PARAM characters per parameter and has at most
PARAMS_PER_CHAR parameters per training character; then set its dropout from the epochs it will
train (a text seen more often needs more).

Measured on tinyshakespeare (benchmarks/results/): in 10 minutes on a Zen 4 host, a 2x320 LSTM
reading 10 characters per parameter scored better on the held-out text than 2x256 reading 23 or
2x384 reading 5; dropout 0.15 suited 10 epochs, 0.25 fourteen, 0.3 twenty.

A time budget (--max-time) becomes characters through the speed of this machine: `probe_speed`
times a few training steps of a reference model and turns them into matrix-product GFLOP/s; a
model's speed is that rate over its FLOPs per character. So a fast host trains a bigger model in
the same minutes, and a slow host a smaller one. --steps and --epochs fix the characters
directly (no timing, so the choice never varies). Without a budget the size stays the default
and dropout is set for NO_BUDGET_EPOCHS.

`choose` is a pure function of the corpus, the budget and the speed; `remembered_speed` keeps the
choice stable from run to run on one machine (a timing jitter never flips it): the first
measurement is remembered, and replaced only by one more than SPEED_FASTER faster (the first was
taken under load) or more than SPEED_SLOWER times slower (another machine).

Every new run that does not set --weight-drop gets `weight_drop_for` its dropout: from dropout
WEIGHT_DROP_FROM (about 17 epochs and more, where a model overfits), the recurrent weights
dropped a little less often than the layers' outputs; below it, none. Measured at the same steps
as a 10-minute run: on a Zen 5 host, 2x384 with dropout 0.3 (17.7 epochs), weight drop 0.25 took
held-out loss down 0.011-0.014; on a Zen 1 host, 2x192 with dropout 0.25 (11.4 epochs), weight
drop 0.2 took it up 0.013-0.026 (the model under-fitted).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from charrnn.config import ModelConfig, param_shapes

# (layers, hidden), smallest first: about 1.3-1.8x the parameters from one rung to the next
LADDER: tuple[tuple[int, int], ...] = (
    (1, 64),
    (2, 96),
    (2, 128),
    (2, 192),
    (2, 256),
    (2, 320),
    (2, 384),
    (2, 448),
    (2, 512),
    (2, 640),
    (2, 768),
    (2, 1024),
)
DEFAULT_SIZE = (2, 256)  # without a budget (early stopping), and for the speed probe
READS_PER_PARAM = 8.0  # a model is trained only if the budget reads this many chars per param
PARAMS_PER_CHAR = 6.0  # ... and it has at most this many params per training character
# dropout = DROPOUT_AT + DROPOUT_SLOPE * log2(epochs / DROPOUT_EPOCHS), clipped to
# [0, DROPOUT_MAX] and rounded to 0.05
DROPOUT_AT = 0.25
DROPOUT_EPOCHS = 14.0
DROPOUT_SLOPE = 0.1
DROPOUT_MAX = 0.5
WEIGHT_DROP_FROM = 0.3  # weight drop only beside a dropout this high (long runs)
WEIGHT_DROP_BELOW = 0.05  # the recurrent weights are then dropped at the dropout less this
NO_BUDGET_EPOCHS = 20.0  # early stopping: about where a default model's val loss turns
EFFICIENCY = 0.93  # share of a time budget spent in training steps (evaluations take the rest)
SPEED_FASTER = 1.3
SPEED_SLOWER = 3.0


@dataclass(frozen=True)
class Choice:
    """What `choose` picked, and why (stored in every checkpoint of the run)."""

    layers: int
    hidden: int
    dropout: float
    params: int
    reads: float | None  # characters the budget reads with this model (None: no budget)
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def flops_per_char(cfg: ModelConfig) -> float:
    """Matrix-product FLOPs of one training step per character: 2ab forward, 2ab for the weight
    gradient and 2ab for the input gradient of every (a, b) weight matrix, but no input gradient
    below layer 0's one-hot input (and the embedding is a gather)."""
    total = 0.0
    for name, shape in param_shapes(cfg).items():
        if len(shape) != 2 or name == "encoder.weight":
            continue
        total += (4 if name == "weight_ih_l0" and not cfg.embed else 6) * shape[0] * shape[1]
    return total


def count_params(cfg: ModelConfig) -> int:
    return sum(math.prod(s) for s in param_shapes(cfg).values())


def dropout_for(epochs: float) -> float:
    """Dropout for a model that will see its training text `epochs` times."""
    d = DROPOUT_AT + DROPOUT_SLOPE * math.log2(max(epochs, 1e-9) / DROPOUT_EPOCHS)
    return round(min(DROPOUT_MAX, max(0.0, d)) * 20) / 20


def weight_drop_for(dropout: float) -> float:
    """Weight drop (DropConnect on W_hh) for a model trained with `dropout`: WEIGHT_DROP_BELOW
    less from WEIGHT_DROP_FROM on, else none (see the module's docstring for the measurements;
    also, 0.5 beside dropout 0.2 at 17.7 epochs was 0.005-0.01 worse than none)."""
    if dropout < WEIGHT_DROP_FROM - 1e-9:
        return 0.0
    return round((dropout - WEIGHT_DROP_BELOW) * 20) / 20


def _size(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def choose(
    base: ModelConfig,
    *,
    train_chars: int,
    seconds: float | None = None,
    gflops: float | None = None,
    chars: float | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    dropout: float | None = None,
) -> Choice:
    """The size of `base` (its cell, vocabulary and options) for a budget of `chars` training
    characters and/or `seconds` at `gflops` (matrix-product GFLOP/s of training on this machine;
    with both, the smaller); neither: no budget. `layers`, `hidden` and `dropout` given by the
    user are kept; the rule chooses the rest."""

    def sized(lk: int, hk: int) -> ModelConfig:
        return dataclasses.replace(base, layers=lk, hidden=hk)

    def reads(lk: int, hk: int) -> float | None:
        options = [] if chars is None else [float(chars)]
        if seconds is not None and gflops:
            options.append(seconds * EFFICIENCY * gflops * 1e9 / flops_per_char(sized(lk, hk)))
        return min(options) if options else None

    def params(lk: int, hk: int) -> int:
        return count_params(sized(lk, hk))

    budget = chars is not None or (seconds is not None and bool(gflops))
    if hidden is not None or not budget:
        rungs = [(layers or DEFAULT_SIZE[0], hidden or DEFAULT_SIZE[1])]
    else:  # the ladder's sizes, at the user's depth if given (wider than a projection)
        rungs = [(layers, hk) for _, hk in LADDER] if layers is not None else list(LADDER)
        rungs = [r for r in rungs if r[1] > base.proj] or [(rungs[-1][0], 2 * base.proj)]
    if not budget:
        pick = rungs[0]
        why = "no budget: the default size, trained until val loss stops improving"
    else:
        fits = [
            r
            for r in rungs
            if reads(*r) >= READS_PER_PARAM * params(*r)
            and params(*r) <= PARAMS_PER_CHAR * max(1, train_chars)
        ]
        pick = fits[-1] if fits else rungs[0]
        n = reads(*pick)
        why = (
            f"the budget reads {_size(n)} characters, {n / params(*pick):.1f} per parameter, "
            f"{n / max(1, train_chars):.3g} epochs"
        )
        if len(rungs) > 1 and pick != rungs[-1]:
            bigger = rungs[rungs.index(pick) + 1]
            nb, pb = reads(*bigger), params(*bigger)
            if pb > PARAMS_PER_CHAR * max(1, train_chars):
                why += (
                    f"; {bigger[0]}×{bigger[1]} would have {pb / max(1, train_chars):.1f} "
                    "parameters per training character"
                )
            else:
                why += f"; {bigger[0]}×{bigger[1]} would read {nb / pb:.1f} per parameter"
        elif len(rungs) > 1 and not fits:
            why += " (the smallest size)"
    p, n = params(*pick), reads(*pick)
    epochs = NO_BUDGET_EPOCHS if n is None else n / max(1, train_chars)
    d = dropout_for(epochs) if dropout is None else dropout
    return Choice(pick[0], pick[1], d, p, n, why)


# ----------------------------------------------------------------------------- measuring


def probe_speed(base: ModelConfig, threads: int, batch: int = 50, seq: int = 50) -> float:
    """Matrix-product GFLOP/s of training steps of `base` at DEFAULT_SIZE on this machine (the
    best of three timed steps after one untimed, which may compile the kernels)."""
    import numpy as np

    from charrnn.model import CharRNN
    from charrnn.optim import clip_gradients

    layers, hidden = DEFAULT_SIZE
    cfg = dataclasses.replace(base, layers=layers, hidden=hidden, dropout=0.1).validate()
    vocab = cfg.vocab_size
    rng = np.random.default_rng(0)
    model = CharRNN.create(cfg, rng)
    model.set_threads(threads)
    x = rng.integers(0, vocab, (batch, seq))
    y = rng.integers(0, vocab, (batch, seq))
    best = math.inf
    for i in range(4):
        t0 = time.perf_counter()
        res = model.loss_and_grad(x, y, rng=rng)
        clip_gradients(res.grad_flat, 5.0)
        model.flat -= 1e-6 * res.grad_flat  # an update's memory traffic, as training has
        if i:
            best = min(best, time.perf_counter() - t0)
    return batch * seq * flops_per_char(cfg) / best / 1e9


def _machine_key(cell: str, threads: int) -> str:
    """This machine's processor, the cores used and the cell: what the speed depends on."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "cpu family", "model", "model name") and key not in info:
                    info[key] = value.strip()
                if not line.strip() and info:
                    break
    except OSError:
        pass
    cpu = " ".join(info.get(k, "?") for k in ("vendor_id", "cpu family", "model", "model name"))
    from charrnn import __version__

    return f"{cpu} | threads {threads} | {cell} | charrnn {__version__}"


def remembered_speed(measured: float, key: str, path: Path) -> float:
    """The speed to plan with: the remembered one for `key` unless `measured` differs from it by
    more than the thresholds above, in which case `measured` is remembered (best effort: a cache
    that cannot be written only loses the memory)."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    old = table.get(key)
    if isinstance(old, (int, float)) and old > 0:
        if measured <= old * SPEED_FASTER and measured >= old / SPEED_SLOWER:
            return float(old)
    table[key] = measured
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".speed-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass
    return measured


def speed_path() -> Path:
    from charrnn.corpus import default_cache_dir

    return default_cache_dir().parent / "speed.json"


def machine_speed(base: ModelConfig, threads: int) -> tuple[float, float]:
    """(GFLOP/s of training `base`'s cell to plan with, seconds the measurement took)."""
    from charrnn.cpus import cpu_count

    threads = threads or cpu_count()
    t0 = time.perf_counter()
    measured = probe_speed(base, threads)
    planned = remembered_speed(measured, _machine_key(base.cell, threads), speed_path())
    return planned, time.perf_counter() - t0
