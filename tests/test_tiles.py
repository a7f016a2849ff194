"""The panel layout of kernels/tiles.py: packing W^T by square blocks transposed in registers
gives exactly what the element-by-element copy gives, and a weight read in place as panels (a
strided view, no copy) gives exactly the product of its packed copy, down to the training
step's gradients."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.cells import base
from charrnn.config import ModelConfig
from charrnn.kernels import tiles
from charrnn.model import CharRNN


def reference_panels(b: np.ndarray, pw: int) -> np.ndarray:
    """b (K, N) as panels (NP, K, PW), zero past N: the layout, element by element."""
    K, N = b.shape
    NP = -(-N // pw)
    out = np.zeros((NP, K, pw), b.dtype)
    for p in range(NP):
        cols = b[:, p * pw : (p + 1) * pw]
        out[p, :, : cols.shape[1]] = cols
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packing_a_transposed_weight_by_blocks_is_an_exact_copy(dtype):
    """Full panels with K a multiple of the vector width take the block path; partial panels,
    other K and rows with a stride (a slice of a wider array) take the element path or mix."""
    pw = tiles.panel_width(dtype)
    vw = pw // 2
    rng = np.random.default_rng(0)
    for n in (3, pw, pw + 5, 4 * pw, 5 * pw - 1):
        for k in (vw, 2 * vw, 8 * vw, vw + 3, 17):
            for wide in (0, 5):
                w = rng.standard_normal((n, k + wide)).astype(dtype)[:, :k]  # (N, K)
                got = base.packed(w, transposed=True)
                np.testing.assert_array_equal(got, reference_panels(np.ascontiguousarray(w.T), pw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_weight_read_in_place_as_panels_gives_the_packed_product(dtype):
    pw = tiles.panel_width(dtype)
    rng = np.random.default_rng(1)
    for m in (1, 2, 3, 4, 7, 25):
        for n in (pw, 3 * pw, 5 * pw):
            k = 4 * 17
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            view = base.panels(b)
            assert np.shares_memory(view, b) and view.shape == (n // pw, k, pw)
            np.testing.assert_array_equal(view, reference_panels(b, pw))
            c = rng.standard_normal((m, n)).astype(dtype)
            want = a.astype(np.float64) @ b + c
            c0, c1 = c.copy(), c.copy()
            tiles.mm_packed(a, view, c0, 1)
            tiles.mm_packed(a, base.packed(b), c1, 1)
            np.testing.assert_array_equal(c0, c1)  # the same sums in the same order
            np.testing.assert_allclose(c0, want, rtol=1e-4, atol=1e-3)
    # a weight whose width is not a whole number of panels, or not contiguous, is packed
    b = rng.standard_normal((8, pw + 1)).astype(dtype)
    assert not np.shares_memory(base.panels(b), b)
    b = rng.standard_normal((8, 2 * pw)).astype(dtype)[:, :pw]
    assert not np.shares_memory(base.panels(b), b)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "cifg"])
def test_few_streams_read_weight_hh_in_place_with_the_same_gradients(cell, monkeypatch):
    """At batch <= IN_PLACE_ROWS the backward pass reads W_hh in place; the step's loss and
    gradients are bit for bit those of the packed copy."""
    from charrnn import model as model_module

    hidden = tiles.panel_width(np.float32)  # a whole panel: the in-place path
    cfg = ModelConfig(cell=cell, vocab_size=11, hidden=hidden, layers=2, dropout=0.0)
    rng = np.random.default_rng(2)
    model = CharRNN.create(cfg, rng)
    x, y = rng.integers(0, 11, (1, 9)), rng.integers(0, 11, (1, 9))
    views = []
    real = base.panels
    monkeypatch.setattr(base, "panels", lambda b: views.append(1) or real(b))
    in_place = model.loss_and_grad(x, y)
    assert len(views) == 2  # one W_hh per layer
    monkeypatch.setattr(model_module, "IN_PLACE_ROWS", 0)
    copied = model.loss_and_grad(x, y)
    assert len(views) == 2
    assert in_place.loss == copied.loss
    np.testing.assert_array_equal(in_place.grad_flat, copied.grad_flat)
    for a, b in zip(in_place.dstate, copied.dstate, strict=True):
        np.testing.assert_array_equal(a, b)
