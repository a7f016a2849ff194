"""Optimizers, gradient clipping and learning-rate schedules.

Every optimizer updates the ONE flat parameter buffer (P,) from the ONE flat gradient buffer
(P,) in a single compiled pass. The learning rate is an argument of `step`, so the optimizer's
state never depends on the schedule: changing the schedule on resume keeps it. `state_dict()`
holds arrays only (the step count as an int64 0-d array), so checkpoints need no pickle;
`load_state_dict(state_dict())` continues bit for bit.

Semantics:
  adam / adamw  torch.optim.Adam / AdamW (bias correction; AdamW decays p by lr*wd first)
  rmsprop       torch.optim.RMSprop(alpha, eps) = char-rnn's rmsprop (alpha 0.95 default)
  adagrad       min-char-rnn's: acc += g^2; p -= lr g / sqrt(acc + eps)   (eps inside the root,
                unlike torch.optim.Adagrad)
  sgd           torch.optim.SGD(momentum), dampening 0
"""

from __future__ import annotations

import math

import numpy as np

from charrnn.config import TrainConfig
from charrnn.kernels import optim as ok

_STATE_KEYS = {
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
    "rmsprop": ("square_avg",),
    "adagrad": ("sum",),
    "sgd": ("momentum_buffer",),
}


class Optimizer:
    """One of the five update rules over a flat buffer of `size` parameters."""

    def __init__(self, cfg: TrainConfig, size: int, dtype=np.float32):
        if cfg.optimizer not in _STATE_KEYS:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
        self.kind = cfg.optimizer
        self.cfg = cfg
        self.size = int(size)
        self.dtype = np.dtype(dtype)
        self.steps = 0  # updates done so far
        self.buffers = {k: np.zeros(self.size, self.dtype) for k in _STATE_KEYS[self.kind]}

    def step(self, flat_params: np.ndarray, flat_grad: np.ndarray, lr: float) -> bool:
        """One update of flat_params (P,) in place from flat_grad (P,) at learning rate lr.
        Returns whether every parameter is finite after it."""
        if flat_params.shape != (self.size,) or flat_grad.shape != (self.size,):
            raise ValueError(f"optimizer built for {self.size} parameters")
        if flat_params.dtype != self.dtype or flat_grad.dtype != self.dtype:
            raise ValueError(f"optimizer built for {self.dtype} buffers")
        c = self.cfg
        self.steps += 1
        b = self.buffers
        if self.kind in ("adam", "adamw"):
            beta1, beta2 = c.betas
            t = self.steps
            step_size = lr / (1.0 - beta1**t)
            bc2_sqrt = math.sqrt(1.0 - beta2**t)
            decay = 1.0 - lr * c.weight_decay if self.kind == "adamw" else 1.0
            return ok.adam(flat_params, flat_grad, b["exp_avg"], b["exp_avg_sq"], step_size,
                           beta1, beta2, bc2_sqrt, c.eps, decay)  # fmt: skip
        if self.kind == "rmsprop":
            return ok.rmsprop(flat_params, flat_grad, b["square_avg"], lr, c.alpha, c.eps)
        if self.kind == "adagrad":
            return ok.adagrad(flat_params, flat_grad, b["sum"], lr, c.eps)
        return ok.sgd(flat_params, flat_grad, b["momentum_buffer"], lr, c.momentum)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state: the buffers and `step` (int64 0-d array)."""
        d = {k: v.copy() for k, v in self.buffers.items()}
        d["step"] = np.array(self.steps, np.int64)
        return d

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Restore a `state_dict()`; ValueError names a missing, extra or mis-shaped entry."""
        want = set(_STATE_KEYS[self.kind]) | {"step"}
        missing = sorted(want - set(d))
        extra = sorted(set(d) - want)
        if missing:
            raise ValueError(f"optimizer state {missing[0]!r} is missing ({self.kind})")
        if extra:
            raise ValueError(f"optimizer state {extra[0]!r} does not belong to {self.kind}")
        step = np.asarray(d["step"])
        if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
            raise ValueError("optimizer state 'step' must be a non-negative integer scalar")
        buffers = {}
        for k in _STATE_KEYS[self.kind]:
            v = np.asarray(d[k])
            if v.shape != (self.size,):
                raise ValueError(f"optimizer state {k!r} has shape {v.shape}, want ({self.size},)")
            if v.dtype.kind != "f" or not np.all(np.isfinite(v)):
                raise ValueError(f"optimizer state {k!r} must hold finite floats")
            buffers[k] = v.astype(self.dtype, copy=True)
        self.buffers = buffers
        self.steps = int(step)


def make_optimizer(cfg: TrainConfig, size: int, dtype=np.float32) -> Optimizer:
    return Optimizer(cfg, size, dtype)


def clip_gradients(flat_grad: np.ndarray, clip: float, mode: str = "norm") -> float:
    """Clip flat_grad (P,) in place; returns its global L2 norm before clipping.

    norm: scale by clip / (norm + 1e-6) when that is below 1 (torch.nn.utils.clip_grad_norm_);
    value: clamp every element to [-clip, clip] (char-rnn's grad_clip). clip 0 disables.
    """
    norm = math.sqrt(ok.sum_squares(flat_grad))
    if clip > 0:
        if mode == "norm":
            coef = clip / (norm + 1e-6)
            if coef < 1.0:
                ok.scale(flat_grad, coef)
        elif mode == "value":
            ok.clamp(flat_grad, clip)
        else:
            raise ValueError(f"unknown clip mode {mode!r}")
    return norm


def get_lr(step: int, epoch: float, cfg: TrainConfig, total_steps: int | None = None) -> float:
    """Learning rate for the update numbered `step` (0 = the first) at `epoch` (fractional).

    constant: cfg.lr.
    step: char-rnn's decay: cfg.lr * decay_rate ** (floor(epoch) - decay_after + 1) once
        epoch >= decay_after, else cfg.lr (one multiplication at each whole epoch from
        decay_after on).
    cosine: linear warmup lr * (step + 1) / warmup_steps for step < warmup_steps, then
        lr * (r + (1 - r) * (1 + cos(pi * s)) / 2) with r = min_lr_ratio and
        s = (step - warmup_steps) / (total_steps - warmup_steps) clipped to [0, 1]: equal to
        lr right after warmup and r * lr at total_steps. With total_steps None: lr after warmup.
    """
    lr = cfg.lr
    if cfg.schedule == "constant":
        return lr
    if cfg.schedule == "step":
        if epoch >= cfg.decay_after:
            return lr * cfg.decay_rate ** (math.floor(epoch) - cfg.decay_after + 1)
        return lr
    if cfg.schedule == "cosine":
        w = cfg.warmup_steps
        if w > 0 and step < w:
            return lr * (step + 1) / w
        if total_steps is None:
            return lr
        span = max(1, total_steps - w)
        s = min(1.0, max(0.0, (step - w) / span))
        r = cfg.min_lr_ratio
        return lr * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * s)))
    raise ValueError(f"unknown schedule {cfg.schedule!r}")
