"""The training loop: batches, steps, evaluation, schedule, divergence guard, checkpoints.

It emits `Event`s and never prints: the display (charrnn/display.py), the plain log and the JSONL
log are consumers of them. A `Run` holds everything a checkpoint holds, so `--resume` continues
bit for bit: parameters, optimizer state, batch position, hidden state, RNG state, step, schedule
position, learning-rate scale and history.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charrnn import __version__
from charrnn.config import ModelConfig, TrainConfig, state_names
from charrnn.errors import CharrnnError

# Without --steps/--epochs/--max-time: stop when val loss has not improved for this many
# evaluations in a row, or after MAX_EPOCHS epochs, whichever comes first.
PATIENCE = 5
MAX_EPOCHS = 50
# A periodic evaluation scores at most this many validation characters (`charrnn eval` scores all).
MAX_EVAL_CHARS = 1_000_000
# By default, evaluations are at least this many times the characters they score apart (in
# characters trained): scoring costs about a third of training per character, so evaluating
# then costs under a tenth of the time.
EVAL_SPACING = 4
# Divergence: this many bad steps in a row ends training.
MAX_BAD_STEPS = 3


class TrainingDiverged(CharrnnError):
    """Loss or gradients became NaN/inf or exploded several times in a row."""


@dataclass
class Event:
    """What the loop reports. kind: start | step | eval | warning | checkpoint | stop."""

    kind: str
    step: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class History:
    """One entry per evaluation."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)

    def add(self, **values: float) -> None:
        for name, value in values.items():
            getattr(self, name).append(value)

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> History:
        h = cls()
        for k, v in d.items():
            if hasattr(h, k):
                setattr(h, k, [None if x is None else x for x in v])
        return h


def nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass
class StopRule:
    """When to stop: any of steps/epochs/seconds ends training; with none, early stopping (or,
    with no validation split to stop on, MAX_EPOCHS)."""

    steps: int | None = None
    epochs: float | None = None
    seconds: float | None = None
    validated: bool = True  # False: the run has no validation split

    @property
    def automatic(self) -> bool:
        return self.steps is None and self.epochs is None and self.seconds is None

    def describe(self) -> str:
        if self.automatic and not self.validated:
            return f"for {MAX_EPOCHS} epochs (no validation split to stop early on)"
        if self.automatic:
            return (
                f"until val loss stops improving ({PATIENCE} evaluations without a new best) "
                f"or {MAX_EPOCHS} epochs"
            )
        parts = []
        if self.steps is not None:
            parts.append(f"{self.steps} steps")
        if self.epochs is not None:
            parts.append(f"{self.epochs:g} epochs")
        if self.seconds is not None:
            parts.append(format_duration(self.seconds))
        return "for " + " or ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def default_eval_every(steps_per_epoch: int, chars_per_step: int, val_chars: int) -> int:
    """Steps between evaluations when none is given: about half an epoch, at most 1000 steps
    and at least 10; and with small batches, enough steps to train EVAL_SPACING times the
    characters an evaluation scores (1000 steps of B1 T25 are 25,000 characters: fewer than a
    typical validation split)."""
    scored = max(0, min(val_chars - 1, MAX_EVAL_CHARS))
    spaced = -(-EVAL_SPACING * scored // max(1, chars_per_step))
    return max(10, min(1000, steps_per_epoch // 2), spaced)


def validation_loss(model, ids: np.ndarray, batch: int, seq: int) -> float:
    """Mean nats/char over `ids` laid out as `batch` contiguous streams, the state carried
    from each stream's start to its end (at most MAX_EVAL_CHARS characters; `seq` does not
    change the figure). NaN if there is nothing to score. One or a few streams on several
    cores go through the split single pass (splitpass.py), which gives the same bits."""
    from charrnn.model import STACKED_MIN_ROWS

    n = min(len(ids) - 1, MAX_EVAL_CHARS)
    if n < 1:
        return float("nan")
    b = max(1, min(batch, n))
    length = n // b
    x = np.asarray(ids[: b * length], dtype=np.int32).reshape(b, length)
    y = np.asarray(ids[1 : b * length + 1], dtype=np.int32).reshape(b, length)
    scorer = model
    if b < STACKED_MIN_ROWS and model.threads > 1:  # below it, the same products as nll
        from charrnn.splitpass import SplitPass

        scorer = SplitPass(model, model.threads)
    nll, _ = scorer.nll(x, y, model.zero_state(b))
    return float(nll.sum()) / (b * length)


@dataclass
class Run:
    """Everything one training run needs, and everything its checkpoints hold."""

    model: Any  # CharRNN
    optimizer: Any  # charrnn.optim.Optimizer
    batches: Any  # charrnn.data.Batches
    val_ids: np.ndarray
    vocab: Any  # Vocab
    train_config: TrainConfig
    corpus: dict[str, Any]  # fingerprint: name, sha256, chars, bytes
    out_dir: Path
    name: str
    rng: np.random.Generator
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    step: int = 0
    state: tuple | None = None
    lr_scale: float = 1.0
    best_val_loss: float = float("inf")
    best_step: int = -1
    evals_since_best: int = 0
    elapsed: float = 0.0  # seconds of training over all invocations
    chars_seen: int = 0
    history: History = field(default_factory=History)
    sizing: dict[str, Any] | None = None  # how the model was chosen for the budget (budget.py)

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def latest_path(self) -> Path:
        return self.out_dir / f"{self.name}-latest.npz"

    @property
    def best_path(self) -> Path:
        return self.out_dir / f"{self.name}-best.npz"

    @property
    def epoch(self) -> float:
        return self.step / self.batches.steps_per_epoch

    def lr(self, total_steps: int | None) -> float:
        from charrnn.optim import get_lr

        return self.lr_scale * get_lr(self.step, self.epoch, self.train_config, total_steps)

    # --- checkpoints -------------------------------------------------------------------------

    def to_checkpoint(self, kind: str, chars_per_second: float):
        from charrnn.checkpoint import Checkpoint

        names = state_names(self.model_config)
        state = {} if self.state is None else dict(zip(names, self.state, strict=True))
        meta = {
            "kind": kind,
            "name": self.name,
            "run_id": self.run_id,
            "train_config": self.train_config.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "data_position": self.batches.state_dict(),
            "rng_state": self.rng.bit_generator.state,
            "optimizer": self.train_config.optimizer,
            "lr_scale": self.lr_scale,
            "lr": self.history.lr[-1] if self.history.lr else self.train_config.lr,
            "best_val_loss": nan_to_none(self.best_val_loss),
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "history": self.history.to_dict(),
            "corpus": self.corpus,
            "elapsed_seconds": self.elapsed,
            "chars_seen": self.chars_seen,
            "chars_per_second": chars_per_second,
            "sizing": self.sizing,
            "charrnn_version": __version__,
        }
        return Checkpoint(
            config=self.model_config,
            params={k: v.copy() for k, v in self.model.params.items()},
            vocab=self.vocab,
            meta=meta,
            optim=self.optimizer.state_dict(),
            state=state,
        )

    def restore(self, ckpt) -> None:
        """Take the training position of a checkpoint of this run (for --resume)."""
        meta = ckpt.meta
        self.model.flat[:] = type(self.model).from_params(ckpt.config, ckpt.params).flat
        self.optimizer.load_state_dict(ckpt.optim)
        self.batches.load_state_dict(meta["data_position"])
        self.rng.bit_generator.state = meta["rng_state"]
        names = state_names(self.model_config)
        if all(n in ckpt.state for n in names):
            self.state = tuple(np.ascontiguousarray(ckpt.state[n]) for n in names)
        self.run_id = meta.get("run_id", self.run_id)
        self.step = int(meta["step"])
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        best = meta.get("best_val_loss")
        self.best_val_loss = float("inf") if best is None else float(best)
        self.best_step = int(meta.get("best_step", -1))
        self.evals_since_best = int(meta.get("evals_since_best", 0))
        self.elapsed = float(meta.get("elapsed_seconds", 0.0))
        self.chars_seen = int(meta.get("chars_seen", 0))
        self.history = History.from_dict(meta.get("history", {}))
        sizing = meta.get("sizing")
        self.sizing = sizing if isinstance(sizing, dict) else None


class Trainer:
    """Runs the loop of one `Run` until a StopRule, a stop request or divergence."""

    def __init__(
        self,
        run: Run,
        stop: StopRule,
        emit: Callable[[Event], None],
        eval_every: int,
        sample: Callable[[Any], str] | None = None,
    ) -> None:
        self.run = run
        self.stop = stop
        self.emit = emit
        self.eval_every = max(1, eval_every)
        self.sample = sample
        self._stop_requested = False
        self.stop_reason = ""
        self.chars_per_second = 0.0  # this invocation's training speed, once it has run
        self._time_steps: int | None = None  # steps the time budget allows, estimated as we go

    def request_stop(self) -> None:
        """Finish the current step, save, and return (for Ctrl-C / SIGTERM)."""
        self._stop_requested = True

    @property
    def total_steps(self) -> int | None:
        """Steps the schedule spans, when the stop rule fixes them."""
        spe = self.run.batches.steps_per_epoch
        candidates = []
        if self.stop.steps is not None:
            candidates.append(self.stop.steps)
        if self.stop.epochs is not None:
            candidates.append(int(math.ceil(self.stop.epochs * spe)))
        if self.stop.automatic:
            candidates.append(MAX_EPOCHS * spe)
        if self._time_steps is not None:
            candidates.append(self._time_steps)
        return min(candidates) if candidates else None

    def _estimate_time_steps(self, started: float, first_step: int) -> None:
        """With a time budget, the step it will end at, from the pace so far (evals included),
        so a cosine schedule can end its decay with the budget."""
        done = self.run.step - first_step
        wall = time.perf_counter() - started
        if self.stop.seconds is None or done < 1 or wall <= 0:
            return
        left = max(0.0, self.stop.seconds - wall)
        self._time_steps = self.run.step + int(left * done / wall)

    def _should_stop(self, started: float, first_step: int) -> str:
        run = self.run
        if self._stop_requested:
            return "interrupted"
        if self.stop.steps is not None and run.step >= self.stop.steps:
            return f"reached {self.stop.steps} steps"
        if self.stop.epochs is not None and run.epoch >= self.stop.epochs - 1e-9:
            return f"reached {self.stop.epochs:g} epochs"
        if self.stop.seconds is not None and time.perf_counter() - started >= self.stop.seconds:
            return f"reached the time limit of {format_duration(self.stop.seconds)}"
        if self.stop.automatic:
            if run.evals_since_best >= PATIENCE:
                return (
                    f"val loss has not improved for {PATIENCE} evaluations "
                    f"(best {run.best_val_loss:.4f} at step {run.best_step})"
                )
            if run.epoch >= MAX_EPOCHS:
                return f"reached {MAX_EPOCHS} epochs"
        return ""

    def evaluate(self, train_loss: float, chars_per_second: float) -> None:
        """Score the validation split, record history, write latest (and best) checkpoints."""
        from charrnn.checkpoint import save

        run = self.run
        cfg = run.train_config
        t0 = time.perf_counter()
        val = validation_loss(run.model, run.val_ids, cfg.batch, cfg.seq)
        lr = run.lr(self.total_steps)
        run.history.add(
            step=run.step,
            epoch=run.epoch,
            train_loss=nan_to_none(train_loss),
            val_loss=nan_to_none(val),
            lr=lr,
            elapsed=run.elapsed,
        )
        params_ok = bool(np.isfinite(run.model.flat).all())
        improved = params_ok and math.isfinite(val) and val < run.best_val_loss
        if improved:
            run.best_val_loss, run.best_step, run.evals_since_best = val, run.step, 0
        elif math.isfinite(val):
            run.evals_since_best += 1
        text = self.sample(run.model) if self.sample is not None else None
        eval_seconds = time.perf_counter() - t0
        self.emit(
            Event(
                "eval",
                run.step,
                {
                    "epoch": run.epoch,
                    "train_loss": train_loss,
                    "val_loss": val,
                    "best_val_loss": run.best_val_loss,
                    "improved": improved,
                    "lr": lr,
                    "elapsed": run.elapsed,
                    "chars_per_second": chars_per_second,
                    "eval_seconds": eval_seconds,
                    "sample": text,
                },
            )
        )
        ckpt = run.to_checkpoint("latest", chars_per_second)
        save(run.latest_path, ckpt)
        written = [str(run.latest_path)]
        if improved:
            ckpt.meta["kind"] = "best"
            save(run.best_path, ckpt)
            written.append(str(run.best_path))
        self.emit(Event("checkpoint", run.step, {"paths": written}))

    def train(self) -> str:
        """Train until a stop condition; return why it stopped. Raises TrainingDiverged."""
        from charrnn.optim import clip_gradients

        run = self.run
        model, opt, cfg = run.model, run.optimizer, run.train_config
        batch = run.batches.batch
        if run.state is None:
            run.state = model.zero_state(batch)
        chars_per_step = batch * run.batches.seq
        started = time.perf_counter()
        first_step = run.step
        train_time = 0.0  # seconds spent in steps (not evaluation) this invocation ...
        timed_steps = 0  # ... and its steps, leaving out the first (it may compile kernels)
        losses: list[float] = []
        ema: float | None = None
        bad_in_row = 0
        # A bad loss or gradient is caught before the update, which then never happens; only an
        # update that itself makes weights NaN/inf needs an older copy: the last evaluation's
        # (a copy per evaluation, not per step: copying every step cost ~3 % of a 2x384 step).
        good = (run.step, model.flat.copy(), opt.state_dict())
        explode_floor = 1.5 * math.log(max(2, len(run.vocab))) + 1.0
        self.emit(Event("start", run.step, {"total_steps": self.total_steps}))
        last_eval_step = run.step if run.history.step else -1
        reason = ""
        while True:
            reason = self._should_stop(started, first_step)
            if reason:
                break
            t0 = time.perf_counter()
            lr = run.lr(self.total_steps)
            x, y, new_epoch = run.batches.next()
            if new_epoch:
                run.state = model.zero_state(batch)
            res = model.loss_and_grad(x, y, run.state, rng=run.rng)
            norm = clip_gradients(res.grad_flat, cfg.clip, cfg.clip_mode)
            limit = max(explode_floor, 3.0 * ema) if ema is not None else explode_floor
            problem = ""
            if not (math.isfinite(res.loss) and math.isfinite(norm)):
                problem = f"NaN/inf loss ({res.loss:.4g}) or gradient norm ({norm:.4g})"
            elif res.loss > limit:
                problem = f"exploding loss ({res.loss:.4g})"
            else:
                if not opt.step(model.flat, res.grad_flat, lr):  # some weight not finite
                    problem = f"the update made weights NaN/inf (restored those of step {good[0]})"
                    model.flat[:] = good[1]
                    opt.load_state_dict(good[2])
            if problem:
                bad_in_row += 1
                run.state = model.zero_state(batch)
                run.lr_scale *= 0.5
                run.step += 1
                if bad_in_row >= MAX_BAD_STEPS:
                    raise TrainingDiverged(
                        f"training diverged {MAX_BAD_STEPS} times in a row (step {run.step}: "
                        f"{problem}); the last good checkpoint is {run.latest_path}: "
                        "try a lower --lr or a smaller --clip"
                    )
                message = (
                    f"step {run.step}: {problem}; skipped the step and halved "
                    f"the learning rate to {run.lr(self.total_steps):.3g}"
                )
                self.emit(Event("warning", run.step, {"message": message}))
                continue
            bad_in_row = 0
            run.state = res.state
            run.step += 1
            run.chars_seen += chars_per_step
            losses.append(res.loss)
            ema = res.loss if ema is None else 0.95 * ema + 0.05 * res.loss
            dt = time.perf_counter() - t0
            if run.step - first_step > 1:
                train_time += dt
                timed_steps += 1
            run.elapsed += dt
            cps = chars_per_step * timed_steps / train_time if timed_steps else 0.0
            self.emit(
                Event(
                    "step",
                    run.step,
                    {
                        "loss": res.loss,
                        "grad_norm": norm,
                        "lr": lr,
                        "epoch": run.epoch,
                        "chars_per_second": cps,
                        "elapsed": time.perf_counter() - started,
                    },
                )
            )
            if run.step - first_step == 20:
                self._estimate_time_steps(started, first_step)
            if run.step % self.eval_every == 0:
                self.evaluate(float(np.mean(losses[-self.eval_every :])), cps)
                last_eval_step = run.step
                np.copyto(good[1], model.flat)
                good = (run.step, good[1], opt.state_dict())
                self._estimate_time_steps(started, first_step)
        cps = chars_per_step * timed_steps / train_time if timed_steps else 0.0
        if run.step != last_eval_step:
            recent = losses[-self.eval_every :]
            self.evaluate(float(np.mean(recent)) if recent else float("nan"), cps)
        self.stop_reason = reason
        self.chars_per_second = cps
        self.emit(
            Event(
                "stop",
                run.step,
                {
                    "reason": reason,
                    "chars_per_second": cps,
                    "seconds": time.perf_counter() - started,
                    "steps": run.step - first_step,
                },
            )
        )
        return reason
