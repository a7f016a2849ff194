"""The float32 activations and exp against float64 NumPy, over the whole range the kernels use."""

import numpy as np
import pytest
from numba import njit

from charrnn.kernels.activations import exp, sigmoid, tanh


@njit(cache=False)
def _apply(kind, x, out):
    for i in range(x.size):
        if kind == 0:
            out[i] = tanh(x[i])
        elif kind == 1:
            out[i] = sigmoid(x[i])
        else:
            out[i] = exp(x[i])


def _run(kind, x):
    out = np.empty_like(x)
    _apply(kind, x, out)
    return out


@pytest.fixture(scope="module")
def xs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-20, 20, 200_000), rng.uniform(-1, 1, 100_000)])
    return np.concatenate([x, [0.0, -0.0, 7.9, -7.9, 8.0, 30.0, -30.0]]).astype(np.float32)


def test_tanh_and_sigmoid_are_within_float32_rounding(xs):
    ref = xs.astype(np.float64)
    assert np.max(np.abs(_run(0, xs) - np.tanh(ref))) < 3e-7
    assert np.max(np.abs(_run(1, xs) - 1 / (1 + np.exp(-ref)))) < 2e-7
    assert _run(0, xs).dtype == np.float32 and abs(_run(0, np.float32([30.0]))[0]) <= 1.0


def test_exp_is_within_two_ulps_where_the_loss_uses_it():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-87, 0, 300_000), rng.uniform(0, 88, 1000), [0.0, -1e-8]])
    x = x.astype(np.float32)
    got, ref = _run(2, x), np.exp(x.astype(np.float64))
    assert np.max(np.abs(got - ref) / ref) < 2e-7
    assert _run(2, np.float32([0.0]))[0] == 1.0
    # far below: a tiny non-negative number (never NaN or a negative), as the softmax needs
    low = _run(2, np.float32([-100.0, -1e30, -np.inf]))
    assert np.all((low >= 0) & (low < 2e-38))


def test_float64_is_libm_for_gradient_checks():
    x = np.random.default_rng(2).uniform(-30, 30, 1000)
    np.testing.assert_allclose(_run(0, x), np.tanh(x), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(_run(2, x), np.exp(x), rtol=1e-15)
