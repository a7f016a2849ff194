"""The GRU's kernels (charrnn/cells/gru.py): a layer over T steps, forward and backward
(PyTorch's gate order r, z, n), forward-only `infer`; `infer_split`, the scoring pass split by
unit over two cores (kernels/parts.py); and `run`, the fused sampling kernel (kernels/step.py).

r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h
"""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import sigmoid, tanh
from charrnn.kernels.parts import enter, input_part, leave
from charrnn.kernels.step import FUSED, ZERO, begin, draw, end, input_side, mm_acc, sigmoid_of_half
from charrnn.kernels.step import tanh as tanh32
from charrnn.kernels.sync import meet
from charrnn.kernels.tiles import mm_packed


@njit(cache=True, nogil=True, error_model="numpy")
def forward(xg, whh_t, bhn, hs, hn, hg):
    """Run one layer over T steps.

    xg (T, B, 3H): x W_ih^T + b_ih + [b_hr, b_hz, 0]; replaced by the activations r, z, n.
    whh_t: weight_hh^T (H, 3H) packed by tiles.pack.  bhn (H,): b_hn.
    hs (T+1, B, H): [0] the initial h (in), [1:] the outputs.  hn (T, B, H): receives W_hn h + b_hn.
    hg (B, 3H): scratch for h W_hh^T.
    """
    T, B, G = xg.shape
    H = G // 3
    act = np.empty(G, xg.dtype)  # local rows: see lstm.forward
    hv = np.empty(H, xg.dtype)
    hb = np.empty(H, xg.dtype)
    for t in range(T):
        mm_packed(hs[t], whh_t, hg, 0)
        for b in range(B):
            ab = xg[t, b]
            _row(ab, hg[b], bhn, hs[t, b], act, hv, hb)
            for j in range(G):
                ab[j] = act[j]
            out_hn = hn[t, b]
            out_h = hs[t + 1, b]
            for j in range(H):
                out_hn[j] = hv[j]
                out_h[j] = hb[j]


@njit(cache=True, nogil=True, error_model="numpy")
def infer(xg, whh_t, bhn, hs, hg):
    """`forward` for scoring and sampling: the same h, keeping nothing for a backward pass.

    xg (T, B, 3H): x W_ih^T + b_ih + [b_hr, b_hz, 0] (read only).
    whh_t, bhn, hs, hg: as in `forward`.
    """
    T, B, G = xg.shape
    H = G // 3
    act = np.empty(G, xg.dtype)  # local rows: see lstm.forward
    hv = np.empty(H, xg.dtype)
    hb = np.empty(H, xg.dtype)
    for t in range(T):
        mm_packed(hs[t], whh_t, hg, 0)
        for b in range(B):
            _row(xg[t, b], hg[b], bhn, hs[t, b], act, hv, hb)
            out_h = hs[t + 1, b]
            for j in range(H):
                out_h[j] = hb[j]


@njit(cache=True, nogil=True, error_model="numpy")
def infer_split(wts, x, y, dec, dec_b, h, c, hs, xg, work, logits, out, lo, hi, flags, who):
    """`infer` over all layers and the loss, parts lo..hi-1 of every layer's units on this
    thread (kernels/parts.py). wts: table, w_ih, b_ih, whh, bhn (L, Hw): b_hn, zero past H."""
    table, w_ih, b_ih, whh, bhn = wts
    L, T1, B, R = hs.shape
    G = xg.shape[2]
    hp = G // 3
    hg = np.empty((B, G), xg.dtype)
    act = np.empty(G, xg.dtype)  # local rows: see lstm.forward
    hv = np.empty(hp, xg.dtype)
    hb = np.empty(hp, xg.dtype)
    n = enter(h, hs, hp, lo, hi, flags, who)
    for k in range(L):
        for q in range(lo, hi):
            input_part(k, q, x, table, w_ih, b_ih, hs, xg)
        for t in range(T1 - 1):
            for q in range(lo, hi):
                u0 = q * hp
                mm_packed(hs[k, t], whh[k, q], hg, 0)
                for b in range(B):
                    _row(xg[q, t * B + b], hg[b], bhn[k, u0 : u0 + hp], hs[k, t, b, u0 : u0 + hp],
                         act, hv, hb)  # fmt: skip
                    out_h = hs[k, t + 1, b, u0 : u0 + hp]
                    for j in range(hp):
                        out_h[j] = hb[j]
            n = meet(flags, who, n)
    leave(hs, h, hp, lo, hi, dec, dec_b, y, logits, out, who)


@njit(nogil=True, error_model="numpy", inline="always")
def _row(ab, gb, bhn, hp, act, hv, hb):
    """One row of one step, into local rows: act (3H,) = r, z, n; hv (H,) = W_hn h + b_hn;
    hb (H,) = h'. ab: the input side (3H,), gb: h W_hh^T (3H,), hp: h (H,)."""
    H = hv.size
    one = hb.dtype.type(1)
    for j in range(H):
        act[j] = sigmoid(ab[j] + gb[j])
        act[H + j] = sigmoid(ab[H + j] + gb[H + j])
        hv[j] = gb[2 * H + j] + bhn[j]
    for j in range(H):
        act[2 * H + j] = tanh(ab[2 * H + j] + act[j] * hv[j])
    for j in range(H):
        z = act[H + j]
        hb[j] = (one - z) * act[2 * H + j] + z * hp[j]


@njit(cache=True, nogil=True, error_model="numpy")
def backward(act, dgh, whh, hs, hn, dhs, dh0):
    """Back-propagate one layer through T steps.

    act (T, B, 3H): r, z, n from `forward`; replaced by dL/d(input pre-activations) (dG_i).
    dgh (T, B, 3H): receives dL/d(h W_hh^T + b_hh) (dG_h; differs from dG_i in the n block).
    whh: weight_hh (3H, H) packed by tiles.pack.  hs (T+1, B, H), hn (T, B, H): from `forward`.
    dhs (T, B, H): dL/dh_t from above for t = 1..T (in); used as scratch.
    dh0 (B, H): receives dL/dh_0.
    """
    T, B, G = act.shape
    H = G // 3
    one = act.dtype.type(1)
    oi = np.empty(G, act.dtype)
    oh = np.empty(G, act.dtype)
    direct = np.empty(H, act.dtype)
    for t in range(T - 1, -1, -1):
        target = dhs[t - 1] if t > 0 else dh0
        for b in range(B):
            ab = act[t, b]
            dh = dhs[t, b]
            hp = hs[t, b]
            hv = hn[t, b]
            for j in range(H):
                r = ab[j]
                z = ab[H + j]
                n = ab[2 * H + j]
                d = dh[j]
                dnp = d * (one - z) * (one - n * n)
                drp = dnp * hv[j] * r * (one - r)
                dzp = d * (hp[j] - n) * z * (one - z)
                oi[j] = drp
                oi[H + j] = dzp
                oi[2 * H + j] = dnp
                oh[j] = drp
                oh[H + j] = dzp
                oh[2 * H + j] = dnp * r
                direct[j] = d * z
            gb = dgh[t, b]
            for j in range(G):
                ab[j] = oi[j]
                gb[j] = oh[j]
            tb = target[b]
            if t > 0:
                for j in range(H):
                    tb[j] += direct[j]
            else:
                for j in range(H):
                    tb[j] = direct[j]
        mm_packed(dgh[t], whh, target, 1)


# ----------------------------------------------------------------------------- fused sampling


@njit(**FUSED)
def _units(gi, gh, src, dst, bn, u0, nu):
    """New h (dst) of units u0..u0+nu from the input side gi (B, 3Hp) and gh = W_hh h
    (B, 3Hp) of their part, gates stored as r/2, z/2, n; src: the old h; bn (Hp,): b_hn."""
    hp = gi.shape[1] // 3
    for b in range(gi.shape[0]):
        g, e = gi[b], gh[b]
        hs, hd = src[b, u0 : u0 + nu], dst[b, u0 : u0 + nu]
        for j in range(nu):
            r = sigmoid_of_half(g[j] + e[j])
            z = sigmoid_of_half(g[hp + j] + e[hp + j])
            n = tanh32(g[2 * hp + j] + r * (e[2 * hp + j] + bn[j]))
            hd[j] = n + z * (hs[j] - n)


@njit(**FUSED)
def run(wts, dec_t, dec_b, h, c, hb, work, pending, u, temperature, top_k, top_p, out, feed,
        lo, hi, flags, who):  # fmt: skip
    """The fused kernel (kernels/step.py). wts: table, w_ih, w_hh, bias, b_hn (L, P, Hp)."""
    table, w_ih, w_hh, bias, b_hn = wts
    n_layers, nb, nh = h.shape
    hp = b_hn.shape[2]
    gi = np.empty((nb, table.shape[2]), np.float32)
    gh = np.empty((nb, table.shape[2]), np.float32)
    logits = np.empty((nb, dec_b.shape[0]), np.float32)
    p = np.empty(dec_b.shape[0], np.float64)
    n = begin(h, hb, hp, lo, hi, flags, who)
    for t in range(out.shape[0]):
        src, dst = hb[t % 2], hb[1 - t % 2]
        ids = out[t] if feed else pending
        for k in range(n_layers):
            for q in range(lo, hi):
                input_side(k, q, ids, dst, table, w_ih, bias, gi)
                gh[:] = ZERO
                mm_acc(src[k], w_hh[k, q], gh)
                u0 = q * hp
                _units(gi, gh, src[k], dst[k], b_hn[k, q], u0, min(nh, u0 + hp) - u0)
            n = meet(flags, who, n)
        n = draw(t, dst[n_layers - 1], dec_t, dec_b, logits, p, u, temperature, top_k, top_p,
                 pending, out, feed, lo, flags, who, n)  # fmt: skip
    end(hb, h, hp, lo, hi, out.shape[0])
