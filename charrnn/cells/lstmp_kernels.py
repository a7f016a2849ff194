"""The kernels of the LSTM with peepholes and/or a projection (charrnn/cells/lstmp.py): a layer
over T steps, forward and backward, forward-only `infer`, the peepholes' gradients;
`infer_split`, the scoring pass split by unit over two cores (kernels/parts.py); and `run`, the
fused sampling kernel (kernels/step.py). PyTorch's gate order i, f, g, o:

    i = sigmoid(a_i + w_ci * c),  f = sigmoid(a_f + w_cf * c),  g = tanh(a_g)
    c' = f * c + i * g;   o = sigmoid(a_o + w_co * c');   m = o * tanh(c')
    h' = W_hr m (with a projection, width P) or m

where a = x W_ih^T + b_ih + h W_hh^T + b_hh. Without peepholes the w_c* are zeros; without a
projection (proj False) m is h itself: the caller passes ms = hs[1:], and W_hr is not read.
Shapes: H hidden, R width of h (P or H).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import sigmoid, tanh
from charrnn.kernels.layers import weight_grad  # noqa: F401  (dL/dW_hr, called by lstmp.py)
from charrnn.kernels.parts import enter, input_part, leave
from charrnn.kernels.step import FUSED, ZERO, begin, draw, end, input_side, mm_acc, sigmoid_of_half
from charrnn.kernels.step import tanh as tanh32
from charrnn.kernels.sync import meet
from charrnn.kernels.tiles import mm_packed


@njit(cache=True, nogil=True, error_model="numpy")
def forward(xg, whh_t, peep, whr_t, hs, cs, tcs, ms, proj):
    """Run one layer over T steps.

    xg (T, B, 4H): input projection plus both biases; replaced by the activations i, f, g, o.
    whh_t: weight_hh^T (R, 4H) packed by tiles.pack.  peep (3, H): w_ci, w_cf, w_co.
    whr_t: weight_hr^T (H, P) packed (proj only).
    hs (T+1, B, R), cs (T+1, B, H): [0] holds the initial h, c (in); [1:] receive the outputs.
    tcs (T, B, H): receives tanh(c'); ms (T, B, H): receives m (the caller's hs[1:] without
    a projection).
    """
    T, B, G = xg.shape
    H = G // 4
    wi, wf, wo = peep[0], peep[1], peep[2]
    act = np.empty(G, xg.dtype)  # local rows: see lstm_kernels.forward
    cb = np.empty(H, xg.dtype)
    for t in range(T):
        a = xg[t]
        mm_packed(hs[t], whh_t, a, 1)
        for b in range(B):
            ab = a[b]
            cp = cs[t, b]
            for j in range(H):
                act[j] = sigmoid(ab[j] + wi[j] * cp[j])
                act[H + j] = sigmoid(ab[H + j] + wf[j] * cp[j])
                act[2 * H + j] = tanh(ab[2 * H + j])
            for j in range(H):
                cb[j] = act[H + j] * cp[j] + act[j] * act[2 * H + j]
            for j in range(H):
                act[3 * H + j] = sigmoid(ab[3 * H + j] + wo[j] * cb[j])
            for j in range(G):
                ab[j] = act[j]
            cn = cs[t + 1, b]
            for j in range(H):
                cn[j] = cb[j]
            for j in range(H):
                cb[j] = tanh(cb[j])
            tn = tcs[t, b]
            mn = ms[t, b]
            for j in range(H):
                tn[j] = cb[j]
                mn[j] = act[3 * H + j] * cb[j]
        if proj:
            mm_packed(ms[t], whr_t, hs[t + 1], 0)


@njit(cache=True, nogil=True, error_model="numpy")
def infer(xg, whh_t, peep, whr_t, hs, c, m, proj):
    """`forward` for scoring and sampling: the same h, keeping nothing for a backward pass.

    xg (T, B, 4H): input projection plus both biases (used as scratch).
    whh_t, peep, whr_t, proj: as in `forward`.  hs (T+1, B, R): [0] holds the initial h (in);
    [1:] receive the outputs.  c (B, H): the initial c (in), replaced by the final one.
    m (B, H): scratch for m (proj only).
    """
    T, B, G = xg.shape
    H = G // 4
    cb = np.empty(H, xg.dtype)  # local rows: see lstm_kernels.forward
    mb = np.empty(H, xg.dtype)
    for t in range(T):
        a = xg[t]
        mm_packed(hs[t], whh_t, a, 1)
        _cells(a, c, m if proj else hs[t + 1], peep, 0, cb, mb)
        if proj:
            mm_packed(m, whr_t, hs[t + 1], 0)


@njit(nogil=True, error_model="numpy", inline="always")
def _cells(a, c, out, peep, u0, cb, mb):
    """One step of H units for rows a (B, 4H) of their pre-activations: units u0..u0+H of c
    (B, >= u0+H) in place and of m into out; peep (3, >= u0+H); cb, mb (H,) scratch."""
    B, G = a.shape
    H = G // 4
    pi, pf, po = peep[0, u0 : u0 + H], peep[1, u0 : u0 + H], peep[2, u0 : u0 + H]
    for b in range(B):
        ab = a[b]
        cp = c[b, u0 : u0 + H]
        for j in range(H):
            cb[j] = sigmoid(ab[H + j] + pf[j] * cp[j]) * cp[j] + sigmoid(
                ab[j] + pi[j] * cp[j]
            ) * tanh(ab[2 * H + j])
        for j in range(H):
            mb[j] = sigmoid(ab[3 * H + j] + po[j] * cb[j]) * tanh(cb[j])
        for j in range(H):
            cp[j] = cb[j]
        ob = out[b, u0 : u0 + H]
        for j in range(H):
            ob[j] = mb[j]


@njit(cache=True, nogil=True, error_model="numpy")
def infer_split(wts, x, y, dec, dec_b, h, c, hs, xg, work, logits, out, lo, hi, flags, who):
    """`infer` over all layers and the loss, parts lo..hi-1 of every layer's units on this
    thread (kernels/parts.py). wts: table, w_ih, b_ih, whh, peep (L, 3, Hw) (zero past H),
    whr (L, P, NP, Hw, PW): W_hr^T's columns of each part's Hq outputs, packed (an empty
    stand-in without a projection), proj. With a projection each step takes two phases: every
    part makes its units of m into work (B, Hw), the threads meet, then every part makes its
    Hq outputs of h from all of m, and they meet again."""
    table, w_ih, b_ih, whh, peep, whr, proj = wts
    L, T1, B, R = hs.shape
    hp = xg.shape[2] // 4
    hq = R // whh.shape[1]
    cb = np.empty(hp, xg.dtype)
    mb = np.empty(hp, xg.dtype)
    n = enter(h, hs, hq, lo, hi, flags, who)
    for k in range(L):
        for q in range(lo, hi):
            input_part(k, q, x, table, w_ih, b_ih, hs, xg)
        for t in range(T1 - 1):
            for q in range(lo, hi):
                a = xg[q, t * B : (t + 1) * B]
                mm_packed(hs[k, t], whh[k, q], a, 1)
                _cells(a, c[k], work if proj else hs[k, t + 1], peep[k], q * hp, cb, mb)
            n = meet(flags, who, n)
            if proj:
                for q in range(lo, hi):
                    mm_packed(work, whr[k, q], hs[k, t + 1, :, q * hq : (q + 1) * hq], 0)
                n = meet(flags, who, n)
    leave(hs, h, hq, lo, hi, dec, dec_b, y, logits, out, who)


@njit(cache=True, nogil=True, error_model="numpy")
def backward(act, whh, peep, whr, cs, tcs, dhs, dm, dh0, dc0, proj):
    """Back-propagate one layer through T steps.

    act (T, B, 4H): the activations from `forward`; replaced by dL/d(pre-activation) (dG).
    whh: weight_hh (4H, R) packed by tiles.pack.  peep (3, H): as in `forward`.
    whr: weight_hr (P, H) packed (proj only).  cs (T+1, B, H), tcs (T, B, H): from `forward`.
    dhs (T, B, R): dL/dh_t from above for t = 1..T (in); on return the whole dL/dh_t (above
    and through the recurrence), from which the caller makes dL/dW_hr.
    dm (B, H): scratch for dL/dm (proj only).
    dh0 (B, R), dc0 (B, H): receive dL/dh_0 and dL/dc_0 (the gradient of the initial state).
    """
    T, B, G = act.shape
    H = G // 4
    one = act.dtype.type(1)
    wi, wf, wo = peep[0], peep[1], peep[2]
    dc0[:, :] = 0
    out = np.empty(G, act.dtype)
    dc = np.empty(H, act.dtype)
    for t in range(T - 1, -1, -1):
        if proj:
            mm_packed(dhs[t], whr, dm, 0)
        dmt = dm if proj else dhs[t]
        a = act[t]
        for b in range(B):
            ab = a[b]
            dcb = dc0[b]
            dh = dmt[b]
            tc = tcs[t, b]
            cp = cs[t, b]
            for j in range(H):
                dc[j] = dcb[j]
            for j in range(H):
                ig = ab[j]
                fg = ab[H + j]
                gg = ab[2 * H + j]
                og = ab[3 * H + j]
                d = dh[j]
                do = d * tc[j] * og * (one - og)
                dcv = dc[j] + d * og * (one - tc[j] * tc[j]) + do * wo[j]
                di = dcv * gg * ig * (one - ig)
                df = dcv * cp[j] * fg * (one - fg)
                dc[j] = dcv * fg + di * wi[j] + df * wf[j]
                out[j] = di
                out[H + j] = df
                out[2 * H + j] = dcv * ig * (one - gg * gg)
                out[3 * H + j] = do
            for j in range(G):
                ab[j] = out[j]
            for j in range(H):
                dcb[j] = dc[j]
        if t > 0:
            mm_packed(a, whh, dhs[t - 1], 1)
        else:
            mm_packed(a, whh, dh0, 0)


@njit(cache=True, nogil=True, error_model="numpy")
def peephole_grads(dg, cs, dci, dcf, dco):
    """dL/dw_ci, dL/dw_cf, dL/dw_co (H,) from `backward`'s dG (T, B, 4H) and cs (T+1, B, H):
    sums over T and B of dG_i * c(t-1), dG_f * c(t-1) and dG_o * c(t)."""
    T, B, G = dg.shape
    H = G // 4
    dci[:] = 0
    dcf[:] = 0
    dco[:] = 0
    for t in range(T):
        for b in range(B):
            d = dg[t, b]
            cp = cs[t, b]
            cn = cs[t + 1, b]
            for j in range(H):
                dci[j] += d[j] * cp[j]
                dcf[j] += d[H + j] * cp[j]
                dco[j] += d[3 * H + j] * cn[j]


# ----------------------------------------------------------------------------- fused sampling


@njit(**FUSED)
def _units(gi, pk, c, out, u0, nu):
    """New c and m (into out) of units u0..u0+nu from the pre-activations gi (B, 4Hp) of their
    part, gates stored as i/2, f/2, o/2, g; pk (3, Hp): the part's peepholes, halved."""
    hp = gi.shape[1] // 4
    for b in range(gi.shape[0]):
        g = gi[b]
        ob = out[b, u0 : u0 + nu]
        cb = c[b, u0 : u0 + nu]
        for j in range(nu):
            cp = cb[j]
            i = sigmoid_of_half(g[j] + pk[0, j] * cp)
            f = sigmoid_of_half(g[hp + j] + pk[1, j] * cp)
            cj = f * cp + i * tanh32(g[3 * hp + j])
            o = sigmoid_of_half(g[2 * hp + j] + pk[2, j] * cj)
            cb[j] = cj
            ob[j] = o * tanh32(cj)


@njit(**FUSED)
def _project(m, w, acc, dst, u0, nu):
    """dst[:, u0:u0+nu] = m (B, H) @ w (H, Pq), through acc (B, Pq)."""
    acc[:] = ZERO
    mm_acc(m, w, acc)
    for b in range(m.shape[0]):
        dst[b, u0 : u0 + nu] = acc[b, :nu]


@njit(**FUSED)
def run(wts, dec_t, dec_b, h, c, hb, work, pending, u, temperature, top_k, top_p, out, feed,
        lo, hi, flags, who):  # fmt: skip
    """The fused kernel (kernels/step.py). wts: table, w_ih, w_hh, bias, peep (L, P, 3, Hp),
    w_hr (L, P, H, Pq), proj. With a projection each layer takes two phases: every part makes
    its units of m into work (B, H), the threads meet, then every part makes its Pq outputs of
    h from all of m, and they meet again."""
    table, w_ih, w_hh, bias, peep, w_hr, proj = wts
    n_layers, nb, nr = h.shape
    nh = c.shape[2]
    hp = table.shape[2] // 4
    hq = w_hr.shape[3] if proj else hp  # outputs of h per part
    gi = np.empty((nb, table.shape[2]), np.float32)
    acc = np.empty((nb, w_hr.shape[3]), np.float32)
    logits = np.empty((nb, dec_b.shape[0]), np.float32)
    p = np.empty(dec_b.shape[0], np.float64)
    n = begin(h, hb, hq, lo, hi, flags, who)
    for t in range(out.shape[0]):
        src, dst = hb[t % 2], hb[1 - t % 2]
        ids = out[t] if feed else pending
        for k in range(n_layers):
            m = work if proj else dst[k]
            for q in range(lo, hi):
                input_side(k, q, ids, dst, table, w_ih, bias, gi)
                mm_acc(src[k], w_hh[k, q], gi)
                _units(gi, peep[k, q], c[k], m, q * hp, min(nh, (q + 1) * hp) - q * hp)
            n = meet(flags, who, n)
            if proj:
                for q in range(lo, hi):
                    _project(work, w_hr[k, q], acc, dst[k], q * hq, min(nr, (q + 1) * hq) - q * hq)
                n = meet(flags, who, n)
        n = draw(t, dst[n_layers - 1], dec_t, dec_b, logits, p, u, temperature, top_k, top_p,
                 pending, out, feed, lo, flags, who, n)  # fmt: skip
    end(hb, h, hq, lo, hi, out.shape[0])
