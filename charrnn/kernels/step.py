"""The shared pieces of the fused sampling kernels: T steps of a whole model, sampling included,
in one jitted call, on one core or split over two. Each cell's kernels module has its own `run`
(charrnn/cells/*_kernels.py) built from these pieces; charrnn/sample.py calls it.

The random numbers are not drawn here: the caller passes uniforms u (T, B) drawn from a
np.random.Generator, so this path and the NumPy path (charrnn/sample.py) consume the same stream
and apply the same sampling rule (see `pick` there); their texts differ only where float32
rounding of the two (BLAS vs these loops, libm vs rational tanh) moves a draw across a boundary.

Parts. A step at batch 1 reads every weight once, so it is bound by how fast one core streams
weights from the L3 cache; two cores stream twice as much. The hidden units of every layer are
cut into P parts (charrnn.step.split lays the weights out): part p owns units
[p*Hp, min(H, (p+1)*Hp)), the gate columns that feed them and their cell state. A call runs
parts [lo, hi). With two threads (who = 0 and 1), each runs one part of every layer; they meet at
a barrier (kernels/sync) after each layer, since the layer above reads all of h, and after each
draw, made by thread 0, since the next step needs its id. h is double-buffered by step parity,
so a thread writing its new units never races one still reading the old. Each unit's arithmetic
is the same whichever thread runs it: one thread and two give the same bits.

Arguments of every cell's `run`:
  wts                       the cell's part arrays (step.split): float32, sigmoid gates
                            pre-halved, each part's gate columns as G blocks of Hp (zero past H);
                            first table (P, V, G*Hp), w_ih (L-1, P, R, G*Hp), w_hh (L, P, R,
                            G*Hp), bias (L-1, P, G*Hp), then the cell's own
  dec_t (R, V), dec_b (V,)  the decoder
  h (L, B, R), c (L, B, H)  recurrent state, updated in place (c: cells with a cell state only,
                            any shape else)
  hb (2, L, B, R)           scratch shared by the threads: h by step parity
  work                      scratch shared by the threads, the cell's own (Cell.fused_work)
  pending (B,) int32        the next input of each row; updated in place (sample mode)
  u (T, B) float64          uniforms in [0, 1), one per step and row (sample mode)
  temperature float (0 = greedy), top_k int (>= V: off), top_p float (>= 1: off)
  out (T, B) int32          sample mode: the sampled ids; feed mode: the ids to feed
  feed bool                 True: feed out[t] for t < T and sample nothing (priming)
  lo, hi                    the parts this call runs
  flags (2 * sync.LINE,) int64, who   the barrier of a pair of threads; who = -1: no partner

The shape of every `run`:

    n = begin(h, hb, hq, lo, hi, flags, who)        # hq: units of h per part
    for t in range(T):
        src, dst, ids = hb[t % 2], hb[1 - t % 2], (out[t] if feed else pending)
        for k in range(L):
            for q in range(lo, hi): <the cell's part q of layer k>   # gates(...) then units
            n = meet(flags, who, n)
        n = draw(...)
    end(hb, h, hq, lo, hi, T)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from charrnn.kernels.activations import _tanh32 as tanh  # the same rational tanh as training
from charrnn.kernels.sync import meet, reached

FUSED = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)

# float32 constants, so the arithmetic stays float32
_HALF = np.float32(0.5)
ZERO = np.float32(0.0)


@njit(inline="always", **FUSED)
def sigmoid_of_half(x):
    """sigmoid(2x): the sigmoid of a gate whose weights were pre-halved by prepare."""
    return _HALF * tanh(x) + _HALF


@njit(**FUSED)
def mm_acc(x, w, acc):
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


@njit(**FUSED)
def pick(lg, u, temperature, top_k, top_p, p):
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


@njit(**FUSED)
def decode_and_pick(x, dec_t, dec_b, logits, u_t, temperature, top_k, top_p, p, pending, out_t):
    """logits = x @ dec_t + dec_b; then one sampled id per row into out_t and pending."""
    nb = x.shape[0]
    for b in range(nb):
        logits[b] = dec_b
    mm_acc(x, dec_t, logits)
    for b in range(nb):
        y = pick(logits[b], u_t[b], temperature, top_k, top_p, p)
        out_t[b] = y
        pending[b] = y


@njit(**FUSED)
def copy_units(a, b, hp, lo, hi):
    """b[..., units of parts lo..hi-1] = a[...] for (L, B, H) arrays."""
    nh = a.shape[2]
    for p in range(lo, hi):
        u0, u1 = p * hp, min(nh, (p + 1) * hp)
        b[:, :, u0:u1] = a[:, :, u0:u1]


@njit(**FUSED)
def input_side(k, q, ids, dst, table, w_ih, bias, gi):
    """gi (B, G*Hp) = layer k's input side for part q: the table row of each id (k = 0), else
    bias plus the layer below's new h (dst[k-1]) @ w_ih."""
    nb = gi.shape[0]
    if k == 0:
        for b in range(nb):
            gi[b] = table[q, ids[b]]
    else:
        for b in range(nb):
            gi[b] = bias[k - 1, q]
        mm_acc(dst[k - 1], w_ih[k - 1, q], gi)


@njit(**FUSED)
def begin(h, hb, hq, lo, hi, flags, who):
    """h's units of parts lo..hi-1 (hq per part) into hb[0]; returns the barrier count."""
    n = reached(flags, who)
    copy_units(h, hb[0], hq, lo, hi)
    return meet(flags, who, n)


@njit(**FUSED)
def draw(t, top, dec_t, dec_b, logits, p, u, temperature, top_k, top_p, pending, out, feed, lo,
         flags, who, n):  # fmt: skip
    """After step t's last layer (top (B, R)): in sample mode thread 0 decodes and draws into
    out[t] and pending (logits (B, V) float32, p (V,) float64 scratch), then both threads meet.
    Returns the barrier count."""
    if not feed:
        if lo == 0:
            decode_and_pick(top, dec_t, dec_b, logits, u[t], temperature, top_k, top_p, p,
                            pending, out[t])  # fmt: skip
        n = meet(flags, who, n)
    return n


@njit(**FUSED)
def end(hb, h, hq, lo, hi, nt):
    """h's units of parts lo..hi-1 from the h buffer of the last step (nt steps made)."""
    copy_units(hb[nt % 2], h, hq, lo, hi)
