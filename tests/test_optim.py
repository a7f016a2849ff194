"""Optimizers against torch.optim (or min-char-rnn's formula for Adagrad), clipping, schedules,
and exact resume from state_dict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from charrnn.config import TrainConfig
from charrnn.optim import clip_gradients, get_lr, make_optimizer

P = 1000


def _grads(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(P).astype(np.float32) * (0.1 + i) for i in range(n)]


def _run(cfg, p0, grads, lrs):
    opt = make_optimizer(cfg, P, np.float32)
    p = p0.copy()
    for g, lr in zip(grads, lrs, strict=True):
        opt.step(p, g.copy(), lr)
    return p, opt


TORCH_CASES = [
    ("adam", {}, lambda t, ps, c: t.optim.Adam(ps, lr=c.lr, betas=c.betas, eps=c.eps)),
    (
        "adamw",
        {"weight_decay": 0.1},
        lambda t, ps, c: t.optim.AdamW(ps, lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=0.1),
    ),
    ("rmsprop", {}, lambda t, ps, c: t.optim.RMSprop(ps, lr=c.lr, alpha=c.alpha, eps=c.eps)),
    ("sgd", {"momentum": 0.9}, lambda t, ps, c: t.optim.SGD(ps, lr=c.lr, momentum=0.9)),
]


@pytest.mark.parametrize("kind,extra,build", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch(kind, extra, build):
    torch = pytest.importorskip("torch")
    cfg = TrainConfig(optimizer=kind, lr=0.01, **extra)
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(P).astype(np.float32)
    grads = _grads(6)
    lrs = [0.01, 0.01, 0.005, 0.02, 0.01, 0.001]  # the lr may change every step (schedules)
    ours, _ = _run(cfg, p0, grads, lrs)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = build(torch, [tp], cfg)
    for g, lr in zip(grads, lrs, strict=True):
        for group in opt.param_groups:
            group["lr"] = lr
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
    ref = tp.detach().numpy()
    # relative to the largest parameter change, so float32 rounding of ~1e-7 passes
    change = np.abs(ref - p0).max()
    assert np.abs(ours - ref).max() <= 1e-5 * change + 1e-7
    assert change > 1e-3


def test_adagrad_is_min_char_rnn():
    cfg = TrainConfig(optimizer="adagrad", lr=0.1)
    p0 = np.random.default_rng(2).standard_normal(P).astype(np.float32)
    grads = _grads(5)
    ours, _ = _run(cfg, p0, grads, [0.1] * 5)
    p, mem = p0.astype(np.float64), np.zeros(P)
    for g in grads:  # min-char-rnn.py's update, in float64
        mem += g.astype(np.float64) ** 2
        p += -0.1 * g / np.sqrt(mem + 1e-8)
    np.testing.assert_allclose(ours, p, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["adam", "adamw", "rmsprop", "adagrad", "sgd"])
def test_state_dict_resume_is_bit_identical(kind):
    cfg = TrainConfig(optimizer=kind, lr=0.01, weight_decay=0.01)
    p0 = np.random.default_rng(3).standard_normal(P).astype(np.float32)
    grads = _grads(8, seed=4)
    full, _ = _run(cfg, p0, grads, [0.01] * 8)
    half, opt = _run(cfg, p0, grads[:4], [0.01] * 4)
    sd = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["step"].dtype == np.int64 and int(sd["step"]) == 4
    # round trip through an npz, as a checkpoint does (no pickle)
    import io

    buf = io.BytesIO()
    np.savez(buf, **sd)
    buf.seek(0)
    loaded = dict(np.load(buf, allow_pickle=False))
    fresh = make_optimizer(cfg, P, np.float32)
    fresh.load_state_dict(loaded)
    for g in grads[4:]:
        fresh.step(half, g.copy(), 0.01)
    assert np.array_equal(half, full)
    with pytest.raises(ValueError, match="step"):
        fresh.load_state_dict({k: v for k, v in sd.items() if k != "step"})
    bad = dict(sd)
    bad[next(k for k in sd if k != "step")] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="shape"):
        fresh.load_state_dict(bad)


def test_clip_norm_matches_torch_and_numpy():
    g = np.random.default_rng(5).standard_normal(P).astype(np.float32)
    norm0 = float(np.linalg.norm(g.astype(np.float64)))
    a = g.copy()
    assert clip_gradients(a, 5.0, "norm") == pytest.approx(norm0, rel=1e-12)
    np.testing.assert_allclose(a, g * (5.0 / (norm0 + 1e-6)), rtol=1e-6)
    assert np.linalg.norm(a) == pytest.approx(5.0, rel=1e-5)
    small = g * 1e-3
    b = small.copy()
    clip_gradients(b, 5.0, "norm")
    assert np.array_equal(b, small)  # under the limit: untouched
    c = g.copy()
    assert clip_gradients(c, 0.0, "norm") == pytest.approx(norm0)
    assert np.array_equal(c, g)  # 0 disables
    d = g.copy()
    clip_gradients(d, 0.5, "value")
    assert np.array_equal(d, np.clip(g, -0.5, 0.5))
    try:
        import torch
    except ImportError:
        return
    t = torch.nn.Parameter(torch.zeros(P))
    t.grad = torch.from_numpy(g.copy())
    tn = torch.nn.utils.clip_grad_norm_([t], 5.0)
    assert float(tn) == pytest.approx(norm0, rel=1e-5)
    np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-5, atol=1e-8)


def test_get_lr():
    c = TrainConfig(lr=0.1)
    assert get_lr(0, 0.0, c, None) == 0.1 and get_lr(10**6, 99.0, c, 5) == 0.1
    s = TrainConfig(lr=0.1, schedule="step", decay_rate=0.5, decay_after=2)
    assert get_lr(0, 0.0, s, None) == 0.1
    assert get_lr(0, 1.99, s, None) == 0.1
    assert get_lr(0, 2.0, s, None) == pytest.approx(0.05)
    assert get_lr(0, 2.7, s, None) == pytest.approx(0.05)
    assert get_lr(0, 3.0, s, None) == pytest.approx(0.025)
    assert get_lr(0, 5.5, s, None) == pytest.approx(0.1 * 0.5**4)
    k = TrainConfig(lr=1.0, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert get_lr(0, 0, k, 110) == pytest.approx(0.1)
    assert get_lr(4, 0, k, 110) == pytest.approx(0.5)
    assert get_lr(9, 0, k, 110) == pytest.approx(1.0)
    assert get_lr(10, 0, k, 110) == pytest.approx(1.0)
    assert get_lr(60, 0, k, 110) == pytest.approx(0.1 + 0.9 * 0.5)
    assert get_lr(35, 0, k, 110) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert get_lr(110, 0, k, 110) == pytest.approx(0.1)
    assert get_lr(500, 0, k, 110) == pytest.approx(0.1)
    assert get_lr(500, 0, k, None) == 1.0
    assert get_lr(3, 0, k, None) == pytest.approx(0.4)
    lrs = [get_lr(i, 0, k, 110) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_optimizer_rejects_wrong_buffers():
    opt = make_optimizer(TrainConfig(), P, np.float32)
    with pytest.raises(ValueError):
        opt.step(np.zeros(P + 1, np.float32), np.zeros(P + 1, np.float32), 0.1)
    with pytest.raises(ValueError):
        opt.step(np.zeros(P), np.zeros(P), 0.1)


@pytest.mark.parametrize("kind", ["adam", "adamw", "rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_reports_whether_every_weight_is_finite(kind, dtype):
    """The divergence guard's check, made in the update's own pass: True while every weight is
    finite, False once any one is an infinity or a NaN (wherever it sits in the buffer)."""
    big = np.finfo(dtype).max
    for where in (0, 17, P - 1):
        opt = make_optimizer(TrainConfig(optimizer=kind, lr=0.1), P, dtype)
        p, g = np.ones(P, dtype), np.full(P, 0.5, dtype)
        assert opt.step(p, g, 0.1) is True
        p[where] = big if kind == "sgd" else np.nan  # sgd: big - 0.1 * (-big) overflows
        g[where] = -big if kind == "sgd" else 0.5
        assert opt.step(p, g, 0.1) is False
        p[where] = 1.0
        g[where] = 0.5
        assert opt.step(p, g, 0.1) is True
