"""Softmax cross-entropy over the vocabulary, row by row (N = T*B rows of V logits).

The exponentials go through activations.exp (vectorised for float32; exact for float64)."""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import exp


@njit(cache=True, nogil=True, error_model="numpy")
def xent_backward(logits, y, scale):
    """Sum over rows of -log softmax(logits)[y]; logits (N, V) are replaced by the gradient
    scale * (softmax - onehot(y)). y (N,) int. Returns the sum (float64, nats)."""
    N, V = logits.shape
    total = 0.0
    sc = logits.dtype.type(scale)
    for n in range(N):
        row = logits[n]
        m = row[0]
        for v in range(1, V):
            m = max(m, row[v])
        target = y[n]
        shifted = np.float64(row[target] - m)
        for v in range(V):  # vectorised: no running sum in this loop
            row[v] = exp(row[v] - m)
        s = row.dtype.type(0)
        for v in range(V):
            s += row[v]
        total += np.log(np.float64(s)) - shifted
        inv = sc / s
        for v in range(V):
            row[v] *= inv
        row[target] -= sc
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def xent_rows(logits, y, out):
    """out (N,) float64 = -log softmax(logits (N, V))[y] per row; logits are left unchanged."""
    N, V = logits.shape
    e = np.empty(V, logits.dtype)
    for n in range(N):
        row = logits[n]
        m = row[0]
        for v in range(1, V):
            m = max(m, row[v])
        for v in range(V):  # vectorised: no running sum in this loop
            e[v] = exp(row[v] - m)
        s = 0.0  # float64: the sum of V terms in [0, 1], one of them 1
        for v in range(V):
            s += e[v]
        out[n] = np.log(s) + m - row[y[n]]
