"""The shared pieces of the split scoring kernels: a model's forward pass over T steps of B rows,
its loss included, with every layer's hidden units cut into parts, one core per part. Each
cell's kernels module has its own `infer_split` built from these pieces; charrnn/splitpass.py
lays the weights out (Cell.derive_parts) and calls it.

Why: read one character at a time, the pass is a chain of matrix-vector products that reads
every recurrent weight once per character. Cut into two parts by unit, each core reads only its
part's gate columns (half the weights, which then stay in its own L2 cache) and makes its half
of the units; the cores meet at a spinning barrier (kernels/sync.py) after each layer step,
since the next step reads all of h. Unlike segments guessed side by side, nothing is guessed:
each unit's arithmetic (a register-tiled product over the same K order, kernels/tiles.py, then
the cell's gate math) is the one-core pass's, so one core and two give the same bits.

Layout (Cell.derive_parts): part q owns units [q*Hp, (q+1)*Hp) and the G gate columns that feed
them; h is Rw = P*Hq wide and c Hw = P*Hp wide (Hq: outputs of h per part, Hp without a
projection), zero past R and H (padded units have zero weights and stay zero).

Arguments of every cell's `infer_split`:
  wts                     table (P, V, G*Hp), w_ih (L-1, P, G*Hp, Rw), b_ih (L-1, P, G*Hp),
                          whh (L, P, NP, Rw, PW) packed, then the cell's own (Cell.part_extras)
  x, y (N,) intp          input and target ids, time-major: row n is step n // B of row n % B
  dec (V, Rw), dec_b (V,) the decoder
  h (L, B, Rw), c (L, B, Hw)   state in and out (c: cells with a cell state, any array else)
  hs (L, T+1, B, Rw)      scratch shared by the threads: every layer's h at every step
  xg (P, N, G*Hp)         scratch: each part's input side, then its pre-activations
  work                    scratch shared by the threads, the cell's own (Cell.part_work)
  logits (N, V)           scratch;  out (N,) float64: -log p(y) of every row (the loss)
  lo, hi                  the parts this call makes
  flags (2 * sync.LINE,) int64, who   the barrier of a pair of threads; who = -1: no partner

The shape of every `infer_split`:

    n = enter(h, hs, hq, lo, hi, flags, who)
    for k in range(L):
        for q in range(lo, hi): input_part(k, q, x, table, w_ih, b_ih, hs, xg)
        for t in range(T):
            for q in range(lo, hi): <mm_packed(hs[k, t], whh[k, q], xg[q, t*B:(t+1)*B], 1),
                                     then the cell's units of part q>
            n = meet(flags, who, n)
    leave(hs, h, hq, lo, hi, dec, dec_b, y, logits, out, who)
"""

from __future__ import annotations

from numba import njit

from charrnn.kernels.layers import project
from charrnn.kernels.loss import xent_rows
from charrnn.kernels.sync import meet, reached

KERNEL = dict(cache=True, nogil=True, error_model="numpy")


@njit(**KERNEL)
def copy_parts(a, b, hq, lo, hi):
    """b[k, :, units of parts lo..hi-1] = a[k, :, ...] for (L, B, W) arrays (hq units a part)."""
    for k in range(a.shape[0]):
        for r in range(a.shape[1]):
            src = a[k, r, lo * hq : hi * hq]
            dst = b[k, r, lo * hq : hi * hq]
            for j in range(src.size):
                dst[j] = src[j]


@njit(**KERNEL)
def enter(h, hs, hq, lo, hi, flags, who):
    """Every layer's initial h (its units of parts lo..hi-1) into hs[:, 0]; then the threads
    meet. Returns the barrier count."""
    n = reached(flags, who)
    copy_parts(h, hs[:, 0], hq, lo, hi)
    return meet(flags, who, n)


@njit(**KERNEL)
def input_part(k, q, x, table, w_ih, b_ih, hs, xg):
    """xg[q] (N, G*Hp) = layer k's input side for part q, bias included: the table row of each
    id (k = 0), else one GEMM over all N rows of the layer below's outputs."""
    a = xg[q]
    if k == 0:
        tq = table[q]
        for i in range(x.size):
            src = tq[x[i]]
            dst = a[i]
            for j in range(src.size):
                dst[j] = src[j]
    else:
        below = hs[k - 1, 1:]
        n = below.shape[0] * below.shape[1]
        project(below.reshape(n, below.shape[2]), w_ih[k - 1, q], b_ih[k - 1, q], a)


@njit(**KERNEL)
def leave(hs, h, hq, lo, hi, dec, dec_b, y, logits, out, who):
    """After the last layer's last step: h's units of parts lo..hi-1 from hs[:, T]; then this
    thread's half of the rows (all of them for who < 0) through the decoder and the loss."""
    L, T1, B, R = hs.shape
    copy_parts(hs[:, T1 - 1], h, hq, lo, hi)
    top = hs[L - 1, 1:].reshape((T1 - 1) * B, R)
    n = top.shape[0]
    r0, r1 = (0, n) if who < 0 else (who * n // 2, (who + 1) * n // 2)
    if r1 > r0:
        project(top[r0:r1], dec, dec_b, logits[r0:r1])
        xent_rows(logits[r0:r1], y[r0:r1], out[r0:r1])
