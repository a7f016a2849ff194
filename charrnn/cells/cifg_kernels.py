"""The coupled input-forget gate LSTM's kernels (charrnn/cells/cifg.py): a layer over T steps,
forward and backward (gate blocks f, g, o; the input gate is 1 - f), forward-only `infer` and
`infer_stacked`; `infer_split`, the scoring pass split by unit over two cores (kernels/parts.py);
and `run`, the fused sampling kernel (kernels/step.py).

    f, g, o = sigmoid, tanh, sigmoid of  x W_ih^T + b_ih + h W_hh^T + b_hh
    c' = f * c + (1 - f) * g;   h' = o * tanh(c')

The same structure as the LSTM's kernels (lstm_kernels.py) with three gate blocks instead of
four: a quarter fewer recurrent FLOPs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import sigmoid, tanh
from charrnn.kernels.layers import stack_rows
from charrnn.kernels.parts import enter, input_part, leave
from charrnn.kernels.step import FUSED, begin, draw, end, input_side, mm_acc, sigmoid_of_half
from charrnn.kernels.step import tanh as tanh32
from charrnn.kernels.sync import meet
from charrnn.kernels.tiles import mm_packed

_ONE32 = np.float32(1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def forward(xg, whh_t, hs, cs, tcs):
    """Run one layer over T steps.

    xg (T, B, 3H): input projection plus both biases; replaced by the activations f, g, o.
    whh_t: weight_hh^T (H, 3H) packed by tiles.pack.
    hs, cs (T+1, B, H): [0] holds the initial h, c (in); [1:] receive the outputs.
    tcs (T, B, H): receives tanh(c') for the backward pass.
    """
    T, B, G = xg.shape
    H = G // 3
    one = xg.dtype.type(1)
    act = np.empty(G, xg.dtype)  # local rows: see lstm_kernels.forward
    cb = np.empty(H, xg.dtype)
    for t in range(T):
        a = xg[t]
        mm_packed(hs[t], whh_t, a, 1)
        for b in range(B):
            ab = a[b]
            for j in range(H):
                act[j] = sigmoid(ab[j])
                act[H + j] = tanh(ab[H + j])
                act[2 * H + j] = sigmoid(ab[2 * H + j])
            for j in range(G):
                ab[j] = act[j]
            cp = cs[t, b]
            for j in range(H):
                cb[j] = act[j] * cp[j] + (one - act[j]) * act[H + j]
            cn = cs[t + 1, b]
            for j in range(H):
                cn[j] = cb[j]
            for j in range(H):
                cb[j] = tanh(cb[j])
            tn = tcs[t, b]
            hn = hs[t + 1, b]
            for j in range(H):
                tn[j] = cb[j]
                hn[j] = act[2 * H + j] * cb[j]


@njit(cache=True, nogil=True, error_model="numpy")
def infer(xg, whh_t, hs, c):
    """`forward` for scoring and sampling: the same h, keeping nothing for a backward pass.

    xg (T, B, 3H): input projection plus both biases (used as scratch).
    whh_t: weight_hh^T (H, 3H) packed by tiles.pack.
    hs (T+1, B, H): [0] holds the initial h (in); [1:] receive the outputs.
    c (B, H): the initial c (in), replaced by the final one.
    """
    T, B, G = xg.shape
    H = G // 3
    cb = np.empty(H, xg.dtype)  # local rows: see lstm_kernels.forward
    hb = np.empty(H, xg.dtype)
    for t in range(T):
        a = xg[t]
        mm_packed(hs[t], whh_t, a, 1)
        _update(a, c, hs[t + 1], 0, cb, hb)


@njit(cache=True, nogil=True, error_model="numpy")
def infer_split(wts, x, y, dec, dec_b, h, c, hs, xg, work, logits, out, lo, hi, flags, who):
    """`infer` over all layers and the loss, parts lo..hi-1 of every layer's units on this
    thread (kernels/parts.py)."""
    table, w_ih, b_ih, whh = wts
    L, T1, B, R = hs.shape
    hp = xg.shape[2] // 3
    cb = np.empty(hp, xg.dtype)
    hb = np.empty(hp, xg.dtype)
    n = enter(h, hs, hp, lo, hi, flags, who)
    for k in range(L):
        for q in range(lo, hi):
            input_part(k, q, x, table, w_ih, b_ih, hs, xg)
        for t in range(T1 - 1):
            for q in range(lo, hi):
                a = xg[q, t * B : (t + 1) * B]
                mm_packed(hs[k, t], whh[k, q], a, 1)
                _update(a, c[k], hs[k, t + 1], q * hp, cb, hb)
            n = meet(flags, who, n)
    leave(hs, h, hp, lo, hi, dec, dec_b, y, logits, out, who)


@njit(cache=True, nogil=True, error_model="numpy")
def infer_stacked(hin, wcat_t, bias, hs, c):
    """`infer` for a layer above the first, its input projection made step by step together
    with the recurrent one (see lstm_kernels.infer_stacked).

    hin (T, B, H): the outputs of the layer below.  wcat_t: [weight_ih | weight_hh]^T (2H, 3H)
    packed by tiles.pack.  bias (3H,): b_ih + b_hh.  hs, c: as in `infer`.
    """
    T, B, H = hin.shape
    G = 3 * H
    x = np.empty((B, 2 * H), hin.dtype)  # [h_below, h] of each row
    a = np.empty((B, G), hin.dtype)
    cb = np.empty(H, hin.dtype)
    hb = np.empty(H, hin.dtype)
    for t in range(T):
        stack_rows(hin[t], hs[t], bias, x, a)
        mm_packed(x, wcat_t, a, 1)
        _update(a, c, hs[t + 1], 0, cb, hb)


@njit(nogil=True, error_model="numpy", inline="always")
def _update(a, c, h, u0, cb, hb):
    """One step of H units for rows a (B, 3H) of their pre-activations: units u0..u0+H of c
    (B, >= u0+H) in place and of h out; cb, hb (H,) scratch."""
    B, G = a.shape
    H = G // 3
    one = a.dtype.type(1)
    for b in range(B):
        ab = a[b]
        cp = c[b, u0 : u0 + H]
        for j in range(H):
            f = sigmoid(ab[j])
            cb[j] = f * cp[j] + (one - f) * tanh(ab[H + j])
        for j in range(H):
            hb[j] = sigmoid(ab[2 * H + j]) * tanh(cb[j])
        for j in range(H):
            cp[j] = cb[j]
        hn = h[b, u0 : u0 + H]
        for j in range(H):
            hn[j] = hb[j]


@njit(cache=True, nogil=True, error_model="numpy")
def backward(act, whh, cs, tcs, dhs, dh0, dc0):
    """Back-propagate one layer through T steps.

    act (T, B, 3H): the activations from `forward`; replaced by dL/d(pre-activation) (dG).
    whh: weight_hh (3H, H) packed by tiles.pack.  cs (T+1, B, H), tcs (T, B, H): from `forward`.
    dhs (T, B, H): dL/dh_t from above for t = 1..T (in); used as scratch.
    dh0, dc0 (B, H): receive dL/dh_0 and dL/dc_0 (the gradient of the initial state).
    """
    T, B, G = act.shape
    H = G // 3
    one = act.dtype.type(1)
    dc0[:, :] = 0
    out = np.empty(G, act.dtype)
    dc = np.empty(H, act.dtype)
    for t in range(T - 1, -1, -1):
        a = act[t]
        for b in range(B):
            ab = a[b]
            dcb = dc0[b]
            dh = dhs[t, b]
            tc = tcs[t, b]
            cp = cs[t, b]
            for j in range(H):
                dc[j] = dcb[j]
            for j in range(H):
                fg = ab[j]
                gg = ab[H + j]
                og = ab[2 * H + j]
                d = dh[j]
                dcv = dc[j] + d * og * (one - tc[j] * tc[j])
                dc[j] = dcv * fg
                out[j] = dcv * (cp[j] - gg) * fg * (one - fg)
                out[H + j] = dcv * (one - fg) * (one - gg * gg)
                out[2 * H + j] = d * tc[j] * og * (one - og)
            for j in range(G):
                ab[j] = out[j]
            for j in range(H):
                dcb[j] = dc[j]
        if t > 0:
            mm_packed(a, whh, dhs[t - 1], 1)
        else:
            mm_packed(a, whh, dh0, 0)


# ----------------------------------------------------------------------------- fused sampling


@njit(**FUSED)
def _units(gi, dst, c, u0, nu):
    """New h (dst) and c of units u0..u0+nu from the pre-activations gi (B, 3Hp) of their
    part, gates stored as f/2, o/2, g."""
    hp = gi.shape[1] // 3
    for b in range(gi.shape[0]):
        g = gi[b]
        hd = dst[b, u0 : u0 + nu]
        cb = c[b, u0 : u0 + nu]
        for j in range(nu):
            f = sigmoid_of_half(g[j])
            o = sigmoid_of_half(g[hp + j])
            cj = f * cb[j] + (_ONE32 - f) * tanh32(g[2 * hp + j])
            cb[j] = cj
            hd[j] = o * tanh32(cj)


@njit(**FUSED)
def run(wts, dec_t, dec_b, h, c, hb, work, pending, u, temperature, top_k, top_p, out, feed,
        lo, hi, flags, who):  # fmt: skip
    """The fused kernel (kernels/step.py). wts: table, w_ih, w_hh, bias."""
    table, w_ih, w_hh, bias = wts
    n_layers, nb, nh = h.shape
    hp = table.shape[2] // 3
    gi = np.empty((nb, table.shape[2]), np.float32)
    logits = np.empty((nb, dec_b.shape[0]), np.float32)
    p = np.empty(dec_b.shape[0], np.float64)
    n = begin(h, hb, hp, lo, hi, flags, who)
    for t in range(out.shape[0]):
        src, dst = hb[t % 2], hb[1 - t % 2]
        ids = out[t] if feed else pending
        for k in range(n_layers):
            for q in range(lo, hi):
                input_side(k, q, ids, dst, table, w_ih, bias, gi)
                mm_acc(src[k], w_hh[k, q], gi)
                _units(gi, dst[k], c[k], q * hp, min(nh, (q + 1) * hp) - q * hp)
            n = meet(flags, who, n)
        n = draw(t, dst[n_layers - 1], dec_t, dec_b, logits, p, u, temperature, top_k, top_p,
                 pending, out, feed, lo, flags, who, n)  # fmt: skip
    end(hb, h, hp, lo, hi, out.shape[0])
