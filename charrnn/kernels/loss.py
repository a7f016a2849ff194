"""Softmax cross-entropy over the vocabulary, row by row (N = T*B rows of V logits)."""

from __future__ import annotations

import numpy as np
from numba import njit


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
        s = row.dtype.type(0)
        for v in range(V):
            e = np.exp(row[v] - m)
            row[v] = e
            s += e
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
    for n in range(N):
        row = logits[n]
        m = row[0]
        for v in range(1, V):
            m = max(m, row[v])
        s = 0.0
        for v in range(V):
            s += np.exp(np.float64(row[v] - m))
        out[n] = np.log(s) + m - row[y[n]]
