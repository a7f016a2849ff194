"""Fused sampling kernels: T steps of a whole model, sampling included, in one jitted call.

One kernel per cell (`run_rnn`, `run_lstm`, `run_gru`); charrnn/sample.py picks it in Python.
Weights come laid out by charrnn.step.prepare (float32, transposed, gates side by side). The
random numbers are not drawn here: the caller passes uniforms u (T, B) drawn from a
np.random.Generator, so this path and the NumPy path (charrnn/sample.py) consume the same stream
and apply the same sampling rule (see `pick` there); their texts differ only where float32
rounding of the two (BLAS vs these loops, libm vs rational tanh) moves a draw across a boundary.

Arguments shared by every kernel:
  table (V, G*H), w_ih_t (L-1, H, G*H), w_hh_t (L, H, G*H), bias (L-1, G*H), b_hn (L, H),
  dec_t (H, V), dec_b (V,)  -- StepWeights arrays, float32, sigmoid gates pre-halved
  h (L, B, H) [, c (L, B, H)]  recurrent state, updated in place
  pending (B,) int32       the next input of each row; updated in place (sample mode)
  u (T, B) float64         uniforms in [0, 1), one per step and row (sample mode)
  temperature float (0 = greedy), top_k int (>= V: off), top_p float (>= 1: off)
  out (T, B) int32         sample mode: the sampled ids; feed mode: the ids to feed
  feed bool                True: feed out[t] for t < T and sample nothing (priming)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import _tanh32 as _tanh  # the same rational tanh as training

_KW = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)

# float32 constants, so the arithmetic stays float32
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)


@njit(inline="always", **_KW)
def _sigmoid_of_half(x):
    """sigmoid(2x): the sigmoid of a gate whose weights were pre-halved by prepare."""
    return _HALF * _tanh(x) + _HALF


@njit(**_KW)
def _mm_acc(x, w, acc):
    """acc (B, N) += x (B, K) @ w (K, N). Rows of w are read once per pair of rows of x."""
    nb, nk = x.shape
    nn = w.shape[1]
    k4 = nk - nk % 4
    for k in range(0, k4, 4):
        w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
        for b in range(0, nb - 1, 2):
            a, c = acc[b], acc[b + 1]
            x0, x1, x2, x3 = x[b, k], x[b, k + 1], x[b, k + 2], x[b, k + 3]
            y0, y1, y2, y3 = x[b + 1, k], x[b + 1, k + 1], x[b + 1, k + 2], x[b + 1, k + 3]
            for j in range(nn):
                v0, v1, v2, v3 = w0[j], w1[j], w2[j], w3[j]
                a[j] += x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3
                c[j] += y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3
        if nb % 2:
            b = nb - 1
            a = acc[b]
            x0, x1, x2, x3 = x[b, k], x[b, k + 1], x[b, k + 2], x[b, k + 3]
            for j in range(nn):
                a[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
    for k in range(k4, nk):
        wk = w[k]
        for b in range(nb):
            a = acc[b]
            xk = x[b, k]
            for j in range(nn):
                a[j] += xk * wk[j]


@njit(**_KW)
def _pick(lg, u, temperature, top_k, top_p, p):
    """One id from logits lg (V,) float32 with uniform u; p (V,) float64 scratch.

    The same rule as charrnn.sample.pick: temperature, then top-k, then top-p over the
    renormalised top-k set, then the inverse CDF in id order."""
    nv = lg.shape[0]
    best = 0
    for v in range(1, nv):
        if lg[v] > lg[best]:
            best = v
    if temperature == 0.0:
        return best
    m = np.float64(lg[best])
    for v in range(nv):
        p[v] = np.exp((np.float64(lg[v]) - m) / temperature)
    kept = min(top_k, nv)
    if kept < nv or top_p < 1.0:
        order = np.argsort(-p, kind="mergesort")
        if top_p < 1.0:
            total = 0.0
            for i in range(kept):
                total += p[order[i]]
            acc = 0.0
            for i in range(kept):
                acc += p[order[i]]
                if acc >= top_p * total:
                    kept = i + 1
                    break
        for i in range(kept, nv):
            p[order[i]] = 0.0
    total = 0.0
    for v in range(nv):
        total += p[v]
    x = u * total
    acc = 0.0
    last = best
    for v in range(nv):
        if p[v] > 0.0:
            acc += p[v]
            last = v
            if acc > x:
                return v
    return last


@njit(**_KW)
def _decode_and_pick(x, dec_t, dec_b, logits, u_t, temperature, top_k, top_p, p, pending, out_t):
    """logits = x @ dec_t + dec_b; then one sampled id per row into out_t and pending."""
    nb = x.shape[0]
    for b in range(nb):
        logits[b] = dec_b
    _mm_acc(x, dec_t, logits)
    for b in range(nb):
        y = _pick(logits[b], u_t[b], temperature, top_k, top_p, p)
        out_t[b] = y
        pending[b] = y


@njit(**_KW)
def _input_gates(k, ids, x, table, w_ih_t, bias, acc):
    """acc (B, G*H) = input pre-activation of layer k: a table row for layer 0, else
    bias + x @ W_ih^T."""
    nb = acc.shape[0]
    if k == 0:
        for b in range(nb):
            acc[b] = table[ids[b]]
    else:
        for b in range(nb):
            acc[b] = bias[k - 1]
        _mm_acc(x, w_ih_t[k - 1], acc)


@njit(**_KW)
def run_lstm(
    table, w_ih_t, w_hh_t, bias, b_hn, dec_t, dec_b, h, c, pending, u,
    temperature, top_k, top_p, out, feed,
):  # fmt: skip
    n_layers, nb, nh = h.shape
    nt = out.shape[0]
    acc = np.empty((nb, 4 * nh), np.float32)
    logits = np.empty((nb, dec_b.shape[0]), np.float32)
    p = np.empty(dec_b.shape[0], np.float64)
    for t in range(nt):
        ids = out[t] if feed else pending
        for k in range(n_layers):
            _input_gates(k, ids, h[k - 1], table, w_ih_t, bias, acc)
            _mm_acc(h[k], w_hh_t[k], acc)
            for b in range(nb):
                g = acc[b]
                hk, ck = h[k, b], c[k, b]
                for j in range(nh):  # gates stored as i/2, f/2, o/2, g
                    i = _sigmoid_of_half(g[j])
                    f = _sigmoid_of_half(g[nh + j])
                    o = _sigmoid_of_half(g[2 * nh + j])
                    gg = _tanh(g[3 * nh + j])
                    cj = f * ck[j] + i * gg
                    ck[j] = cj
                    hk[j] = o * _tanh(cj)
        if not feed:
            _decode_and_pick(
                h[n_layers - 1], dec_t, dec_b, logits, u[t], temperature, top_k, top_p, p,
                pending, out[t],
            )  # fmt: skip


@njit(**_KW)
def run_gru(
    table, w_ih_t, w_hh_t, bias, b_hn, dec_t, dec_b, h, pending, u,
    temperature, top_k, top_p, out, feed,
):  # fmt: skip
    n_layers, nb, nh = h.shape
    nt = out.shape[0]
    gi = np.empty((nb, 3 * nh), np.float32)
    gh = np.empty((nb, 3 * nh), np.float32)
    logits = np.empty((nb, dec_b.shape[0]), np.float32)
    p = np.empty(dec_b.shape[0], np.float64)
    for t in range(nt):
        ids = out[t] if feed else pending
        for k in range(n_layers):
            _input_gates(k, ids, h[k - 1], table, w_ih_t, bias, gi)
            gh[:] = _ZERO
            _mm_acc(h[k], w_hh_t[k], gh)
            bn = b_hn[k]
            for b in range(nb):
                a, e = gi[b], gh[b]
                hk = h[k, b]
                for j in range(nh):  # gates stored as r/2, z/2, n
                    r = _sigmoid_of_half(a[j] + e[j])
                    z = _sigmoid_of_half(a[nh + j] + e[nh + j])
                    n = _tanh(a[2 * nh + j] + r * (e[2 * nh + j] + bn[j]))
                    hk[j] = n + z * (hk[j] - n)
        if not feed:
            _decode_and_pick(
                h[n_layers - 1], dec_t, dec_b, logits, u[t], temperature, top_k, top_p, p,
                pending, out[t],
            )  # fmt: skip


@njit(**_KW)
def run_rnn(
    table, w_ih_t, w_hh_t, bias, b_hn, dec_t, dec_b, h, pending, u,
    temperature, top_k, top_p, out, feed, relu,
):  # fmt: skip
    n_layers, nb, nh = h.shape
    nt = out.shape[0]
    acc = np.empty((nb, nh), np.float32)
    logits = np.empty((nb, dec_b.shape[0]), np.float32)
    p = np.empty(dec_b.shape[0], np.float64)
    for t in range(nt):
        ids = out[t] if feed else pending
        for k in range(n_layers):
            _input_gates(k, ids, h[k - 1], table, w_ih_t, bias, acc)
            _mm_acc(h[k], w_hh_t[k], acc)
            for b in range(nb):
                a = acc[b]
                hk = h[k, b]
                if relu:
                    for j in range(nh):
                        hk[j] = max(a[j], _ZERO)
                else:
                    for j in range(nh):
                        hk[j] = _tanh(a[j])
        if not feed:
            _decode_and_pick(
                h[n_layers - 1], dec_t, dec_b, logits, u[t], temperature, top_k, top_p, p,
                pending, out[t],
            )  # fmt: skip
