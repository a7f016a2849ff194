"""What the work needs: the bytes training, sampling and scoring will allocate, estimated from
their configuration before they allocate anything, and the checks that hold them against what the
process may use (charrnn/resources.py).

The estimates follow the allocations the code really makes: model.py's `_Work` buffers, one set
per (shard, streams, steps) shape a run calls the model with (training steps and the validation
split's calls), the derived weights of `_Prepared`, the flat parameters, gradients and optimizer
buffers, the trainer's snapshot of the last good state, dropout masks and the checkpoint's
copies; sample.py's per-sample state, logits, draws and kept text, and the fused kernel's copy of
the weights; evaluate.py's segments, stored states and surprisal. tests/test_resources.py holds
each to within a factor of what tracemalloc measures on small models: a change to what the code
allocates must come here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from charrnn import cells
from charrnn.config import ModelConfig, TrainConfig, param_shapes, state_names
from charrnn.resources import Need, check, check_disk, fmt_bytes

F32 = 4  # bytes per parameter and activation (the engine computes in float32)
INFER_ROWS = 8192  # model.INFER_ROWS: characters a forward-only call processes at a time
MIN_SHARD_ROWS = 8  # model.MIN_SHARD_ROWS
SAMPLE_CHUNK = 2048  # sample.py: most steps drawn per engine call


# ------------------------------------------------------------------------ training


def param_count(cfg: ModelConfig) -> int:
    return sum(math.prod(s) for s in param_shapes(cfg).values())


def optimizer_buffers(optimizer: str) -> int:
    """Arrays of P floats an optimizer keeps (optim._STATE_KEYS)."""
    return 2 if optimizer in ("adam", "adamw") else 1


def work_bytes(cfg: ModelConfig, bs: int, t: int) -> int:
    """Bytes of one shard's model._Work for bs streams of t steps (the cell's own scratch
    counted from its `work_shapes`)."""
    cell = cells.get(cfg)
    g, r, v, n = cell.gates * cell.hidden, cell.width, cfg.vocab_size, cfg.layers
    rows = t * bs
    floats = n * (rows * g + (t + 1) * bs * r + rows * r) + (n - 1) * rows * r
    if cfg.output_dropout and cfg.dropout:
        floats += rows * r
    floats += n * sum(math.prod(shape) for shape in cell.work_shapes(t, bs).values())
    floats += 2 * rows * cfg.embed if cfg.embed else v * g
    floats += rows * v
    return floats * F32


def derived_bytes(cfg: ModelConfig, backward: bool) -> int:
    """Bytes of model._Prepared: packed recurrent weights (twice for a backward pass), the
    one-hot table, and for inference the stacked weights of the layers above the first."""
    cell = cells.get(cfg)
    g, r, n = cell.gates * cell.hidden, cell.width, cfg.layers
    packed = r * (-(-g // 16) * 16)  # panels of 16 float32 columns
    floats = n * packed * (2 if backward else 1) + n * g
    if not cfg.embed:
        floats += cfg.vocab_size * g
    if not backward and cell.stacked:
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
    """The streams and the step counts of the model calls of train.validation_loss: one call
    over the whole split (at most MAX_EVAL_CHARS), cut by model._infer into pieces of
    INFER_ROWS // streams steps and a shorter last one; None: not known yet, so as many streams
    as training, in pieces as long as they can be and a last one of unknown length (-1)."""
    if val_chars is None:
        return batch, {max(1, INFER_ROWS // batch), -1}
    n = _validation_chars(val_chars)
    if n < 1:
        return batch, set()
    b = max(1, min(batch, n))
    length = n // b
    piece = max(1, min(length, INFER_ROWS // b))
    return b, {piece, length % piece} - {0}


def _validation_chars(val_chars: int | None) -> int:
    """Characters one evaluation scores (as many as it may when not known yet)."""
    from charrnn.train import MAX_EVAL_CHARS

    return MAX_EVAL_CHARS if val_chars is None else min(val_chars - 1, MAX_EVAL_CHARS)


def _work_sets(cfg: ModelConfig, train: TrainConfig, val_chars: int | None) -> int:
    """Bytes of every model._Work the run keeps: one per (shard, streams, steps) shape, for the
    training steps and the validation calls (a shape they share is one set)."""
    shapes = {(i, bs, train.seq) for i, bs in enumerate(_shard_sizes(train.batch, train.threads))}
    b, steps = _validation_steps(train.batch, train.seq, val_chars)
    piece = max(1, INFER_ROWS // b)
    for t in steps:
        t = piece if t == -1 else t  # unknown last piece: as long as a piece (at most)
        shapes |= {(i, bs, t) for i, bs in enumerate(_shard_sizes(b, train.threads))}
    if -1 in steps:  # not known: count the last piece apart even if its shape matches
        shapes |= {(-1 - i, bs, piece) for i, bs in enumerate(_shard_sizes(b, train.threads))}
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
    evaluation = (
        P * F32 * (1 + nb)  # the checkpoint's copies of parameters and optimizer state
        + nb * P * F32  # the optimizer state copied as the last good state
        + derived_bytes(cfg, backward=False)
        + 2 * states
        + P * F32  # the dashboard sampler's weights
        + _validation_chars(val_chars) * (4 + 4 + 8)  # the split's x, y and nats, in one call
        + INFER_ROWS * 8  # a piece's nats
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
        + 3 * cells.get(cfg).gates * H * F32  # a step's gate values
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
        layers=cfg.layers, w_hh_t=np.empty((0, 0, cells.get(cfg).gates * cfg.hidden))
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
        work, stored = _split_pass_bytes(cfg, n, chunk), 0
    return Need(
        {
            "weights": P * F32 + 2 * derived_bytes(cfg, backward=False),
            "buffers": work,
            "stored states": stored,
            "surprisal": (n - 1) * 8 if keep else 0,
        }
    )


def _split_pass_bytes(cfg: ModelConfig, n: int, chunk: int) -> int:
    """Bytes the split single pass (splitpass.py) allocates scoring n characters in calls of
    `chunk`: each call's nats and ids, and the scratch of each length of piece it is cut into
    (CHUNK_ROWS characters; a shorter last piece of a call, and of the last call)."""
    from charrnn.splitpass import CHUNK_ROWS, PARTS

    cell = cells.get(cfg)
    steps = max(1, min(chunk, n - 1))
    rw = PARTS * cell.part_outputs(PARTS)  # h's padded width
    gp = cell.gates * -(-cfg.hidden // PARTS)  # a part's gate columns
    piece = min(steps, CHUNK_ROWS)
    lengths = {piece, steps % piece, (n - 1) % steps % piece, min((n - 1) % steps, piece)}
    scratch = sum(
        cfg.layers * (t + 1) * rw + PARTS * t * gp + t * cfg.vocab_size for t in lengths - {0}
    )
    return scratch * F32 + steps * (8 + 2 * 8 + 2 * 8)  # nats; the call's ids, and a piece's


def check_scoring(
    cfg: ModelConfig, n: int, rows: int, threads: int, keep: bool, chunk: int = 2048
) -> None:
    def at(r: int) -> Need:
        return need_scoring(cfg, n, r, threads, keep, chunk)

    knobs = {"streams": (rows, at)} if rows > 1 else {}
    check(at(rows), f"scoring {n:,} characters", knobs, engine=False)  # the model is loaded
