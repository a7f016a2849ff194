"""Typed configuration stored in every checkpoint, so loading needs nothing else."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from charrnn import cells
from charrnn.errors import UsageError

CELLS = cells.NAMES
NONLINEARITIES = ("tanh", "relu")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "adagrad", "sgd")
SCHEDULES = ("constant", "step", "cosine")
CLIP_MODES = ("norm", "value")


# Our own defaults, chosen by measurement on tinyshakespeare (benchmarks/quality_sweep.py and
# quality_vs_peers.py; results in benchmarks/results/): AdamW 3e-3 with decoupled weight decay
# 0.1 (about 0.02 nats better than Adam in 10 minutes) and a cosine schedule over the budget,
# B50 T50 (twice the updates of T100 for the same characters: 0.01-0.02 nats better at equal
# time), clip-norm 5. Layers, hidden size and dropout are chosen for the budget by
# charrnn/budget.py (2x256 here is its size without a budget). `charrnn train`
# (runs.build_configs) lays these over the dataclasses below, whose own defaults stay neutral
# for library use and tests: no dropout (so a step needs no rng), a constant learning rate of
# 2e-3 (so no budget is needed), no weight decay.
DEFAULTS: dict[str, Any] = {
    "cell": "lstm",
    "layers": 2,
    "hidden": 256,
    "dropout": 0.3,
    "batch": 50,
    "seq": 50,
    "lr": 3e-3,
    "optimizer": "adamw",
    "weight_decay": 0.1,
    "clip": 5.0,
    "clip_mode": "norm",
    "schedule": "cosine",
}

PRESETS: dict[str, dict[str, Any]] = {
    # karpathy's min-char-rnn.py: vanilla RNN, 100 hidden, 25 steps, Adagrad 0.1, clip [-5, 5]
    "min-char-rnn": {
        "cell": "rnn",
        "nonlinearity": "tanh",
        "layers": 1,
        "hidden": 100,
        "embed": 0,
        "dropout": 0.0,
        "batch": 1,
        "seq": 25,
        "optimizer": "adagrad",
        "lr": 0.1,
        "clip": 5.0,
        "clip_mode": "value",
        "schedule": "constant",
    },
    # karpathy/char-rnn train.lua defaults: 2x128 LSTM, B50 T50, RMSprop 2e-3 (alpha 0.95),
    # lr x0.97 per epoch after epoch 10, clip 5 (element-wise)
    "char-rnn": {
        "cell": "lstm",
        "layers": 2,
        "hidden": 128,
        "embed": 0,
        "dropout": 0.0,
        "batch": 50,
        "seq": 50,
        "optimizer": "rmsprop",
        "lr": 2e-3,
        "alpha": 0.95,
        "clip": 5.0,
        "clip_mode": "value",
        "schedule": "step",
        "decay_rate": 0.97,
        "decay_after": 10,
    },
}


@dataclass
class ModelConfig:
    """Architecture. Parameter names and shapes follow PyTorch's nn.RNN/LSTM/GRU state_dict
    (charrnn.cells: one module per cell)."""

    cell: str = "lstm"  # a name in charrnn.cells.TABLE: rnn | lstm | gru | cifg
    vocab_size: int = 0  # V
    hidden: int = 256  # H
    layers: int = 2  # L
    embed: int = 0  # E; 0 means one-hot input (input size of layer 0 is V)
    dropout: float = 0.0  # inverted dropout on the outputs of every layer but the last ...
    output_dropout: bool = True  # ... and on the top layer's output, before the decoder
    # DropConnect on every layer's W_hh while training (AWD-LSTM's weight drop): each step
    # multiplies W_hh by a fresh mask of keep probability 1 - weight_drop, scaled by its inverse
    weight_drop: float = 0.0
    nonlinearity: str = "tanh"  # rnn only: tanh | relu
    forget_bias: float | None = None  # init: a forget gate's bias_ih block to this, bias_hh's 0
    bias: bool = True  # False: no bias_ih / bias_hh tensors (PyTorch's bias=False)
    peephole: bool = False  # lstm: gates see the cell state (Gers & Schmidhuber 2000)
    proj: int = 0  # lstm: P, h = W_hr (o * tanh c) of width P < H (PyTorch's proj_size); 0 = none

    def validate(self) -> ModelConfig:
        if self.cell not in CELLS:
            raise UsageError(f"unknown model {self.cell!r}: choose one of {', '.join(CELLS)}")
        if self.nonlinearity not in NONLINEARITIES:
            raise UsageError(f"unknown nonlinearity {self.nonlinearity!r}: use tanh or relu")
        for name in ("vocab_size", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.embed < 0:
            raise UsageError(f"embed must be 0 (one-hot) or positive, got {self.embed}")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.weight_drop < 1.0:
            raise UsageError(f"weight_drop must be in [0, 1), got {self.weight_drop}")
        if self.forget_bias is not None and not math.isfinite(self.forget_bias):
            raise UsageError(f"forget_bias must be a finite number, got {self.forget_bias}")
        if not 0 <= self.proj < self.hidden:
            raise UsageError(
                f"proj must be 0 (none) or less than hidden ({self.hidden}), got {self.proj}"
            )
        if self.forget_bias is not None and not self.bias:
            raise UsageError("--forget-bias sets a bias: it cannot go with --no-bias")
        cells.get(self).check()
        return self

    @property
    def input_size(self) -> int:
        """Input size of layer 0: E with an embedding, V with one-hot input."""
        return self.embed if self.embed else self.vocab_size

    @property
    def output_size(self) -> int:
        """R: width of each layer's output h (the next layer's input and the decoder's): the
        projection's P when there is one, else hidden."""
        return self.proj or self.hidden

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        # checkpoints written before output dropout existed dropped between layers only
        d.setdefault("output_dropout", False)
        return _from_dict(cls, d)

    @property
    def dropout_masks(self) -> int:
        """How many dropout masks a training step draws: one per layer output it drops."""
        if self.dropout == 0.0:
            return 0
        return self.layers if self.output_dropout else self.layers - 1


@dataclass
class TrainConfig:
    """How a model is trained. Everything `--resume` needs to go on exactly."""

    batch: int = 50  # B streams
    seq: int = 100  # T steps of truncated BPTT
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0  # adamw only
    momentum: float = 0.9  # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # adam / adamw
    alpha: float = 0.95  # rmsprop decay (char-rnn's default)
    eps: float = 1e-8
    clip: float = 5.0  # 0 disables clipping
    clip_mode: str = "norm"  # norm (global L2 norm) | value (element-wise)
    schedule: str = "constant"  # constant | step | cosine
    decay_rate: float = 0.97  # step schedule: multiply lr per epoch ...
    decay_after: int = 10  # ... after this many epochs
    warmup_steps: int = 0  # cosine: linear warmup over this many steps
    min_lr_ratio: float = 0.1  # cosine: floor as a fraction of lr
    epochs: float | None = None
    steps: int | None = None
    max_time: float | None = None  # seconds
    eval_every: int = 0  # steps between evaluations; 0 chooses from the corpus size
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    rng_seed: int = 0
    threads: int = 0  # 0 = all cores
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        if self.batch < 1 or self.seq < 1:
            raise UsageError(f"batch and seq must be at least 1, got {self.batch} and {self.seq}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"lr must be positive, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise UsageError(
                f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}"
            )
        if self.clip_mode not in CLIP_MODES:
            raise UsageError(f"unknown clip mode {self.clip_mode!r}: use norm or value")
        if not (self.clip >= 0 and math.isfinite(self.clip)):
            raise UsageError(f"clip must be 0 (off) or positive, got {self.clip}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise UsageError(f"weight_decay must be 0 or positive, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise UsageError(f"warmup_steps must be 0 or more, got {self.warmup_steps}")
        if self.rng_seed < 0:
            raise UsageError(f"rng_seed must be 0 or more, got {self.rng_seed}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1) or (
            self.val_fraction + self.test_fraction >= 1
        ):
            raise UsageError(
                "--val-fraction and --test-fraction must each be in [0, 1) and sum to less than "
                f"1, got {self.val_fraction} and {self.test_fraction}"
            )
        if self.threads < 0:
            raise UsageError(f"threads must be 0 (all cores) or positive, got {self.threads}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        if "betas" in d and d["betas"] is not None:
            d["betas"] = tuple(d["betas"])
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    """Build a dataclass from a dict, refusing unknown keys (a newer format) with a clear error."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has unknown fields {unknown}")
    return cls(**d)


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in canonical order, exactly as PyTorch names them:
    encoder.weight (V, E) with an embedding, each layer's tensors (the cell's, see
    charrnn/cells/base.py), decoder.weight (V, R), decoder.bias (V,)."""
    return cells.get(cfg).param_shapes()


def state_names(cfg: ModelConfig) -> tuple[str, ...]:
    """Names of the recurrent state arrays, each (L, B, width): ("h",) or ("h", "c")."""
    return cells.get(cfg).state
