"""The Elman RNN's kernels (charrnn/cells/rnn.py): a layer over T steps, forward and backward,
h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu (PyTorch's nn.RNN nonlinearity);
`infer_split`, the scoring pass split by unit over two cores (kernels/parts.py); and `run`, the
fused sampling kernel (kernels/step.py)."""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import tanh
from charrnn.kernels.layers import stack_rows
from charrnn.kernels.parts import enter, input_part, leave
from charrnn.kernels.step import FUSED, ZERO, begin, draw, end, input_side, mm_acc
from charrnn.kernels.step import tanh as tanh32
from charrnn.kernels.sync import meet
from charrnn.kernels.tiles import mm_packed


@njit(cache=True, nogil=True, error_model="numpy")
def forward(xg, whh_t, hs, relu):
    """Run one layer over T steps.

    xg (T, B, H): input projection plus both biases; receives the pre-activations.
    whh_t: weight_hh^T (H, H) packed by tiles.pack.
    hs (T+1, B, H): [0] the initial h (in), [1:] the outputs.
    relu: use max(0, x) instead of tanh.
    """
    T, B, H = xg.shape
    hb = np.empty(H, xg.dtype)  # local row: see lstm.forward
    for t in range(T):
        a = xg[t]
        mm_packed(hs[t], whh_t, a, 1)
        _update(a, hs[t + 1], 0, relu, hb)


@njit(cache=True, nogil=True, error_model="numpy")
def infer_split(wts, x, y, dec, dec_b, h, c, hs, xg, work, logits, out, lo, hi, flags, who):
    """`forward` over all layers and the loss, parts lo..hi-1 of every layer's units on this
    thread (kernels/parts.py). wts: table, w_ih, b_ih, whh, relu."""
    table, w_ih, b_ih, whh, relu = wts
    L, T1, B, R = hs.shape
    hp = xg.shape[2]
    hb = np.empty(hp, xg.dtype)
    n = enter(h, hs, hp, lo, hi, flags, who)
    for k in range(L):
        for q in range(lo, hi):
            input_part(k, q, x, table, w_ih, b_ih, hs, xg)
        for t in range(T1 - 1):
            for q in range(lo, hi):
                a = xg[q, t * B : (t + 1) * B]
                mm_packed(hs[k, t], whh[k, q], a, 1)
                _update(a, hs[k, t + 1], q * hp, relu, hb)
            n = meet(flags, who, n)
    leave(hs, h, hp, lo, hi, dec, dec_b, y, logits, out, who)


@njit(cache=True, nogil=True, error_model="numpy")
def infer_stacked(hin, wcat_t, bias, hs, relu):
    """`forward` for scoring a layer above the first: the input projection made step by step
    with the recurrent one, h' = act([h_below, h] [weight_ih | weight_hh]^T + bias), one
    product with K = 2H (see lstm.infer_stacked).

    hin (T, B, H): the outputs of the layer below.  wcat_t: [weight_ih | weight_hh]^T (2H, H)
    packed by tiles.pack.  bias (H,): b_ih + b_hh.  hs, relu: as in `forward`.
    """
    T, B, H = hin.shape
    x = np.empty((B, 2 * H), hin.dtype)
    a = np.empty((B, H), hin.dtype)
    hb = np.empty(H, hin.dtype)
    for t in range(T):
        stack_rows(hin[t], hs[t], bias, x, a)
        mm_packed(x, wcat_t, a, 1)
        _update(a, hs[t + 1], 0, relu, hb)


@njit(nogil=True, error_model="numpy", inline="always")
def _update(a, h, u0, relu, hb):
    """Units u0..u0+H of h (B, >= u0+H) = act(a (B, H)), through the local row hb (H,)."""
    B, H = a.shape
    zero = a.dtype.type(0)
    for b in range(B):
        ab = a[b]
        if relu:
            for j in range(H):
                hb[j] = max(ab[j], zero)
        else:
            for j in range(H):
                hb[j] = tanh(ab[j])
        out = h[b, u0 : u0 + H]
        for j in range(H):
            out[j] = hb[j]


@njit(cache=True, nogil=True, error_model="numpy")
def backward(dpre, whh, hs, dhs, dh0, relu):
    """Back-propagate one layer through T steps.

    dpre (T, B, H): receives dL/d(pre-activation) (dG).  whh: weight_hh (H, H) packed by tiles.pack.
    hs (T+1, B, H): from `forward`.  dhs (T, B, H): dL/dh_t from above (in); used as scratch.
    dh0 (B, H): receives dL/dh_0.  relu: as in `forward`.
    """
    T, B, H = dpre.shape
    one = dpre.dtype.type(1)
    zero = dpre.dtype.type(0)
    db = np.empty(H, dpre.dtype)
    for t in range(T - 1, -1, -1):
        d = dpre[t]
        for b in range(B):
            dhb = dhs[t, b]
            hb = hs[t + 1, b]
            if relu:
                for j in range(H):
                    db[j] = dhb[j] if hb[j] > zero else zero
            else:
                for j in range(H):
                    db[j] = dhb[j] * (one - hb[j] * hb[j])
            out = d[b]
            for j in range(H):
                out[j] = db[j]
        if t > 0:
            mm_packed(d, whh, dhs[t - 1], 1)
        else:
            mm_packed(d, whh, dh0, 0)


# ----------------------------------------------------------------------------- fused sampling


@njit(**FUSED)
def _units(gi, dst, u0, nu, relu):
    """New h (dst) of units u0..u0+nu from the pre-activations gi (B, Hp) of their part."""
    for b in range(gi.shape[0]):
        g = gi[b]
        hd = dst[b, u0 : u0 + nu]
        if relu:
            for j in range(nu):
                hd[j] = max(g[j], ZERO)
        else:
            for j in range(nu):
                hd[j] = tanh32(g[j])


@njit(**FUSED)
def run(wts, dec_t, dec_b, h, c, hb, work, pending, u, temperature, top_k, top_p, out, feed,
        lo, hi, flags, who):  # fmt: skip
    """The fused kernel (kernels/step.py). wts: table, w_ih, w_hh, bias, relu."""
    table, w_ih, w_hh, bias, relu = wts
    n_layers, nb, nh = h.shape
    hp = table.shape[2]
    gi = np.empty((nb, hp), np.float32)
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
                _units(gi, dst[k], q * hp, min(nh, (q + 1) * hp) - q * hp, relu)
            n = meet(flags, who, n)
        n = draw(t, dst[n_layers - 1], dec_t, dec_b, logits, p, u, temperature, top_k, top_p,
                 pending, out, feed, lo, flags, who, n)  # fmt: skip
    end(hb, h, hp, lo, hi, out.shape[0])
