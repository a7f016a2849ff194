"""The divergence guard: a NaN/inf or exploding step is undone, the learning rate halved, and
three in a row stop training; non-finite weights are never saved as best."""

import math
from dataclasses import replace

import numpy as np
import pytest

from charrnn.checkpoint import load
from charrnn.optim import get_lr
from charrnn.runs import Request, build_configs, prepare
from charrnn.train import StopRule, Trainer, TrainingDiverged

TEXT = "It is a tale told by an idiot, full of sound and fury, signifying nothing.\n" * 30


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))


def make_run(tmp_path, poison: set[int]):
    """A tiny run whose loss is NaN at the given step numbers (0-based)."""
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    model, cfg, explicit = build_configs(
        None, {"hidden": 8, "layers": 1, "batch": 2, "seq": 6, "threads": 1, "dropout": 0.0}
    )
    run, _ = prepare(Request([str(corpus)], model, cfg, explicit, out=tmp_path / "ck"))
    real = run.model.loss_and_grad

    def loss_and_grad(x, y, state, **kw):
        res = real(x, y, state, **kw)
        if run.step in poison:
            res.grad_flat[:] = np.nan
            return replace(res, loss=float("nan"))
        return res

    run.model.loss_and_grad = loss_and_grad
    return run


def test_bad_steps_are_undone_and_halve_the_learning_rate(tmp_path):
    run = make_run(tmp_path, poison={3, 7})
    events = []
    trainer = Trainer(run, StopRule(steps=12), events.append, eval_every=4)
    before_bad = {}

    def emit(e):
        if e.kind == "step" and e.step == 3:
            before_bad["flat"] = run.model.flat.copy()
        if e.kind == "warning" and e.step == 4:
            assert np.array_equal(run.model.flat, before_bad["flat"])  # step 3 left no trace
        events.append(e)

    trainer.emit = emit
    assert trainer.train() == "reached 12 steps"
    warnings = [e for e in events if e.kind == "warning"]
    assert len(warnings) == 2 and "halved the learning rate" in warnings[0].data["message"]
    assert run.lr_scale == 0.25
    assert np.isfinite(run.model.flat).all()
    last = [e for e in events if e.kind == "step"][-1]  # the update of step 11 used lr / 4
    spe = run.batches.steps_per_epoch
    full = get_lr(11, 11 / spe, run.train_config, trainer.total_steps)
    assert last.data["lr"] == pytest.approx(0.25 * full, rel=1e-12)
    best = load(run.best_path)
    assert math.isfinite(best.meta["best_val_loss"])
    assert all(np.isfinite(v).all() for v in best.params.values())


def test_three_bad_steps_in_a_row_stop_training(tmp_path):
    run = make_run(tmp_path, poison={5, 6, 7})
    events = []
    trainer = Trainer(run, StopRule(steps=20), events.append, eval_every=2)
    with pytest.raises(TrainingDiverged, match="3 times in a row"):
        trainer.train()
    assert len([e for e in events if e.kind == "warning"]) == 2
    latest = load(run.latest_path)  # the last good checkpoint is intact and finite
    assert latest.meta["step"] == 4
    assert all(np.isfinite(v).all() for v in latest.params.values())


def test_an_update_that_breaks_the_weights_restores_the_last_evaluated_ones(tmp_path):
    """Finite gradients whose update still makes weights NaN/inf: the weights and optimizer
    state go back to those of the last evaluation, and training goes on."""
    run = make_run(tmp_path, poison=set())
    real_step = run.optimizer.step
    evaluated = {}

    def step(flat, grad, lr):
        finite = real_step(flat, grad, lr)
        if run.step == 6:
            flat[0] = np.inf
        return finite and bool(np.isfinite(flat).all())  # what Optimizer.step reports

    run.optimizer.step = step
    events = []

    def emit(e):
        if e.kind == "eval" and e.step == 4:
            evaluated["flat"] = run.model.flat.copy()
            evaluated["optim"] = run.optimizer.state_dict()
        if e.kind == "warning":
            assert np.array_equal(run.model.flat, evaluated["flat"])
            for k, v in run.optimizer.state_dict().items():
                assert np.array_equal(v, evaluated["optim"][k]), k
        events.append(e)

    assert Trainer(run, StopRule(steps=10), emit, eval_every=4).train() == "reached 10 steps"
    warnings = [e.data["message"] for e in events if e.kind == "warning"]
    assert len(warnings) == 1 and "restored those of step 4" in warnings[0]
    assert run.lr_scale == 0.5 and np.isfinite(run.model.flat).all()
